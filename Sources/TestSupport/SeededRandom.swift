/// A seeded pseudo-random generator (SplitMix64) for tests: the same seed gives the same values on
/// every run and platform, so a randomised test that fails reproduces its failure.
public struct SeededRandom: RandomNumberGenerator {
    /// The generator's whole state; a seed is any starting value.
    public var state: UInt64

    /// A generator whose sequence is determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A float in [-1, 1) on a grid of 2^-23 (24 random bits, exact in a Float).
    public mutating func signedUnitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }

    /// `count` floats from `signedUnitFloat()`.
    public mutating func signedUnitFloats(_ count: Int) -> [Float] { (0..<count).map { _ in signedUnitFloat() } }
}
