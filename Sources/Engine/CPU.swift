/// How the engine was compiled. The CPU check itself lives in the executable (built for baseline
/// x86-64), because this module's own code may already use AVX2 instructions.
public enum EngineBuild {
    /// True when the engine was compiled for AVX2+FMA (the default; STYLIST_PORTABLE=1 builds turn it off).
    public static var requiresAVX2FMA: Bool {
        #if arch(x86_64) && STYLIST_AVX2_BUILD
        return true
        #else
        return false
        #endif
    }
}
