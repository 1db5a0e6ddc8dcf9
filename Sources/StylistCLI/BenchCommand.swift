import ArgumentParser
import Engine
import Foundation
import ImageCodecs
import Models
import StylePipeline

/// `stylist bench`: times whole jobs (both encoders, AdaIN/modulation, decoder) on N x N content and
/// style, excluding file I/O, after a warm-up; prints per-layer time and GFLOP/s and peak RSS.
/// Inputs are the same pictures bench_ort.py uses (cornell + Matisse, bicubic to N x N).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark the engine on one model and size (per-layer time and GFLOP/s)."
    )

    @Option(help: "Model name or .safetensors path.")
    var model: String = ModelCatalog.defaultModel

    @Option(help: "Content and style are both size x size.")
    var size: Int = 512

    @Option(help: "Timed runs after one warm-up run.")
    var runs: Int = 5

    @Option(name: .customLong("min-seconds"), help: "Time at least this long in total (at most 20 runs), like bench_ort.py's --worker.")
    var minSeconds: Double = 0

    @Option(help: "Write {model, size, median_s, min_s, times_s, peak_rss_mb} to this file.")
    var json: String?

    @Option(help: "Directory of model files.")
    var models: String?

    @Option(help: "Engine threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("winograd-task-bytes"), help: ArgumentHelp("Bytes of transformed tiles per Winograd task (tuning; default: the L2 cache size).", visibility: .hidden))
    var winogradTaskBytes: Int?

    @Option(name: .customLong("conv"), help: ArgumentHelp("Time one 3x3 (or K x K) conv layer instead of a model: IN,OUT,SIZE[,K], every path side by side.", valueName: "in,out,size[,k]"))
    var convLayer: String?

    @Option(name: .customLong("conv-path"), help: ArgumentHelp("With --conv: time only this path (direct or f4).", visibility: .hidden))
    var convPath: String?


    @Flag(name: .customLong("no-winograd"), help: "Direct convolution only (for comparison).")
    var noWinograd = false

    @Option(name: .customLong("winograd-min-channels"), help: ArgumentHelp("Dense 3x3 convs with at least this many input and output channels use Winograd.", visibility: .hidden))
    var winogradMinChannels: Int?

    @Flag(name: .customLong("no-polyphase"), help: ArgumentHelp("Upsampled inputs of narrow layers take the Winograd or direct path instead of polyphase.", visibility: .hidden))
    var noPolyphase = false

    @Flag(name: .customLong("no-avx512"), help: "Run the AVX2 micro-kernels even on a CPU with AVX-512 (for comparison).")
    var noAVX512 = false

    @Flag(name: .customLong("no-layers"), help: "Skip the per-layer table.")
    var noLayers = false

    /// One of bench_ort.py's pictures, bicubic to size x size: from `STYLIST_SHARED/images`, an
    /// `images` directory beside a models directory, or `../shared/images`.
    func benchInput(_ file: String, catalog: ModelCatalog) throws -> Tensor {
        let roots = [ProcessInfo.processInfo.environment["STYLIST_SHARED"].map { $0 + "/images" }].compactMap { $0 }
            + catalog.directories.map { URL(fileURLWithPath: $0).appendingPathComponent("../images").standardized.path }
            + ["../shared/images"]
        guard let root = roots.first(where: { FileManager.default.fileExists(atPath: $0 + "/" + file) }) else {
            throw CLIError("bench needs the shared images (\(file)); set STYLIST_SHARED to the directory holding images/")
        }
        let img = try ImageDecoder.decode(contentsOf: root + "/" + file).resized(width: size, height: size)
        return Tensor(channels: 3, height: size, width: size, values: img.pixels)
    }

    func run() throws {
        try reportingErrors {
            try Parallel.withThreads(threads ?? Parallel.coreCount) { try benchmark() }
        }
    }

    /// The benchmark itself, run with the engine's loops limited to `--threads`.
    func benchmark() throws {
        do {
            guard size >= 16, runs >= 1 else { throw CLIError("--size must be >= 16 and --runs >= 1") }
            var options = EngineOptions()
            if let winogradTaskBytes { options.winogradTaskBytes = max(1, winogradTaskBytes) }
            if noWinograd { options.winograd = false }
            if noPolyphase { options.polyphase = false }
            if noAVX512 { options.avx512 = false }
            if let winogradMinChannels { options.winogradMinChannels = max(1, winogradMinChannels) }
            if let convLayer { try benchConvLayer(convLayer, options: options); return }
            let catalog = try commandLineCatalog(models: models, includeBenchmarkOnly: true, engineOptions: options)
            let network = try catalog.network(named: model)
            let content = try benchInput("content/cornell.jpg", catalog: catalog)
            let style = try benchInput("style/woman_with_hat_matisse.jpg", catalog: catalog)

            var times: [Double] = []
            var profile: [LayerTiming] = []
            var layerSeconds: [[Double]] = []     // per layer, every run
            func timedRun() throws -> (seconds: Double, timings: [LayerTiming]) {
                EngineMemory.beginRun()   // each timed run is a job of its own, as in the service
                let ctx = RunContext()
                ctx.recordTimings = true
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try network.run(content: content, styleImages: [style], weights: [1], alpha: 1, ctx)
                return (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, ctx.timings)
            }
            // Warm-up and run count exactly as bench_ort.py's worker does it: a second warm-up for
            // jobs under 2 s, then enough runs to cover --min-seconds (at most 20, at least --runs),
            // so both sides are timed over windows of the same length on a noisy machine.
            var warm = try timedRun().seconds
            if warm < 2.0 { warm = try timedRun().seconds }
            let count = max(runs, min(20, Int(minSeconds / max(warm, 1e-3)) + 1))
            for i in 0..<count {
                let run = try timedRun()
                times.append(run.seconds)
                if i == count - 1 { profile = run.timings }
                if layerSeconds.isEmpty { layerSeconds = Array(repeating: [], count: run.timings.count) }
                for (j, t) in run.timings.enumerated() where j < layerSeconds.count { layerSeconds[j].append(t.seconds) }
            }
            let sorted = times.sorted()
            func medianOf(_ xs: [Double]) -> Double {
                let s = xs.sorted()
                return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            }
            // Per-layer medians over the runs: on a shared machine one run's layers swing by 2x.
            if layerSeconds.count == profile.count {
                profile = zip(profile, layerSeconds).map { LayerTiming(name: $0.name, seconds: medianOf($1), flops: $0.flops, kind: $0.kind) }
            }
            let dense = profile.filter { $0.kind == "conv3x3" }
            let median = medianOf(times)
            let flops = profile.map(\.flops).reduce(0, +)
            let rss = peakRSSMegabytes()
            print("model \(model), \(size)x\(size) content and style, \(Parallel.threadCount) threads, \(times.count) runs after warm-up, \(options.avx512 && EngineBuild.runsAVX512Kernels ? "AVX-512" : "AVX2") micro-kernels")
            print(String(format: "median %.1f ms, min %.1f ms, %.1f GFLOP (direct conv), %.1f GFLOP/s, peak RSS %.0f MB",
                         median * 1000, sorted[0] * 1000, flops / 1e9, flops / 1e9 / median, rss))
            if !dense.isEmpty {
                let f = dense.map(\.flops).reduce(0, +), t = dense.map(\.seconds).reduce(0, +)
                print(String(format: "dense 3x3 convs (per-layer medians): %.1f GFLOP in %.1f ms, %.1f GFLOP/s counting direct-convolution FLOPs", f / 1e9, t * 1000, f / 1e9 / t))
            }
            if !noLayers {
                print("layer (median over runs)".padding(toLength: 44, withPad: " ", startingAt: 0) + "        ms   GFLOP/s    share")
                let total = profile.map(\.seconds).reduce(0, +)
                for t in profile {
                    let rate = t.flops > 0 ? t.flops / 1e9 / t.seconds : 0.0
                    print(t.name.padding(toLength: 44, withPad: " ", startingAt: 0)
                          + String(format: " %9.2f %9.1f %7.1f%%", t.seconds * 1000, rate, 100 * t.seconds / total))
                }
            }
            if let json {
                // Dense 3x3 convolutions (per-layer medians), counted in direct-convolution FLOPs.
                let dense3x3 = profile.filter { $0.kind == "conv3x3" }
                let object: [String: Any] = ["model": model, "size": size, "median_s": median, "min_s": sorted[0],
                                             "times_s": times, "peak_rss_mb": rss, "gflop": flops / 1e9,
                                             "conv3x3_gflop": dense3x3.map(\.flops).reduce(0, +) / 1e9,
                                             "conv3x3_s": dense3x3.map(\.seconds).reduce(0, +),
                                             "layers": profile.map { ["name": $0.name, "kind": $0.kind, "s": $0.seconds, "gflop": $0.flops / 1e9] }]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                guard FileManager.default.createFile(atPath: json, contents: data) else { throw CLIError("cannot write \(json)") }
            }
        }
    }
}

extension BenchCommand {
    /// The layer microbenchmark: one conv with random weights on a random SIZE x SIZE input, each
    /// applicable path (direct, Winograd F(4x4)) timed in alternation, GFLOP/s in direct-conv FLOPs.
    func benchConvLayer(_ spec: String, options: EngineOptions) throws {
        let parts = spec.split(separator: ",").compactMap { Int($0) }
        guard parts.count == 3 || parts.count == 4, parts.allSatisfy({ $0 > 0 }) else { throw CLIError("--conv wants IN,OUT,SIZE[,K]") }
        let (c, oc, n, k) = (parts[0], parts[1], parts[2], parts.count == 4 ? parts[3] : 3)
        var rng = SplitMix64(seed: 42)
        let scale = Float(1 / Double(c * k * k).squareRoot())
        let weight = (0..<(oc * c * k * k)).map { _ in Float.random(in: -scale...scale, using: &rng) }
        let bias = (0..<oc).map { _ in Float.random(in: -0.1...0.1, using: &rng) }
        let input = Tensor(channels: c, height: n, width: n, values: (0..<(c * n * n)).map { _ in Float.random(in: 0...1, using: &rng) })
        func build(winograd: Bool) -> Conv2D {
            var o = options
            o.winograd = winograd
            o.winogradMinChannels = 1
            return Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: k, activation: .relu, options: o)
        }
        let direct = build(winograd: false)
        var paths: [(String, Conv2D)] = [("direct", direct)]
        if k == 3 && !noWinograd { paths.append(("winograd F(4x4)", build(winograd: true))) }
        if let convPath {
            let names = ["direct": "direct", "f4": "winograd F(4x4)"]
            guard let name = names[convPath] else { throw CLIError("--conv-path must be direct or f4") }
            paths = paths.filter { $0.0 == name }
        }
        let flops = direct.flops(outputHeight: n, outputWidth: n)
        var times = Array(repeating: [Double](), count: paths.count)
        for round in 0...runs {
            for (i, path) in paths.enumerated() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = path.1(input)
                if round > 0 { times[i].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
            }
        }
        print("conv \(c)->\(oc) \(k)x\(k) on \(n)x\(n), \(Parallel.threadCount) threads, \(runs) runs per path (alternating), \(String(format: "%.3f", flops / 1e9)) GFLOP direct")
        for (i, path) in paths.enumerated() {
            let sorted = times[i].sorted(), median = sorted[sorted.count / 2]
            print(path.0.padding(toLength: 18, withPad: " ", startingAt: 0)
                  + String(format: "median %8.3f ms  min %8.3f ms  %7.1f GFLOP/s (median)", median * 1000, sorted[0] * 1000, flops / 1e9 / median))
        }
    }
}

/// A small deterministic generator for benchmark inputs (the system one is a syscall per value).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// This process's peak resident set (VmHWM), in MB.
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? .nan
        return kb / 1024
    }
    return .nan
}
