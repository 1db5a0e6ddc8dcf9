// swift-tools-version:6.0
import PackageDescription
import Foundation

// The engine is compiled for AVX2+FMA (x86-64-v3) by default, with AVX-512 micro-kernels beside it
// that run only on CPUs that have AVX-512 (checked at run time). Set STYLIST_PORTABLE=1 when
// building for CPUs without AVX2: the same Swift SIMD code then compiles to SSE2.
// A binary built with AVX2 checks the CPU at start-up and refuses to run with a clear message.
let portable = ProcessInfo.processInfo.environment["STYLIST_PORTABLE"] == "1"
#if arch(x86_64)
let simdFlags: [String] = portable ? [] : ["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c", "-Xcc", "-mbmi2"]
#else
let simdFlags: [String] = []
#endif
// Kernels are compiled optimised even in debug builds: the test suite runs real networks.
// Only the Engine and its AVX-512 kernels (with their own bounds discipline) drop runtime checks in release.
let optimized: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]
let simdSettings: [SwiftSetting] = (portable ? [] : [.unsafeFlags(simdFlags), .define("STYLIST_AVX2_BUILD")]) + optimized
let kernelSettings: [SwiftSetting] = simdSettings + [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
// The AVX-512 micro-kernels (EngineKernels512) add AVX-512 F/VL/DQ/BW to the x86-64 flags, so their
// SIMD16<Float> code compiles to zmm instructions; the Engine calls them only after checking the CPU
// (CCPUFeatures), and STYLIST_AVX512_KERNELS tells it they were built so. Feature flags without a
// CPU model keep 512-bit vectors whole: LLVM's 256-bit preference comes with models such as
// skylake-avx512 (-march), which would split each zmm operation into two ymm ones. Portable builds
// compile the module without these flags and define nothing: it is then never called.
#if arch(x86_64)
let avx512Flags: [String] = portable ? [] : simdFlags + ["-Xcc", "-mavx512f", "-Xcc", "-mavx512vl", "-Xcc", "-mavx512dq", "-Xcc", "-mavx512bw"]
#else
let avx512Flags: [String] = []
#endif
// The image codecs' C loops get AVX2+FMA too (not in portable builds), with FP contraction off so
// that every multiply and add is rounded exactly as written, as in Swift.
#if arch(x86_64)
let codecCFlags: [String] = ["-O2"] + (portable ? [] : ["-mavx2", "-mfma", "-ffp-contract=off"])
#else
let codecCFlags: [String] = ["-O2"]
#endif
let avx512KernelSettings: [SwiftSetting] = (avx512Flags.isEmpty ? [] : [.unsafeFlags(avx512Flags)]) + optimized
    + [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
let engineSettings: [SwiftSetting] = kernelSettings + (avx512Flags.isEmpty ? [] : [.define("STYLIST_AVX512_KERNELS")])

let package = Package(
    name: "Stylist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "stylist", targets: ["StylistCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C shim over libpng + libjpeg-turbo: owns every setjmp/longjmp. Its own deflate writes PNGs;
        // libdeflate (Debian's libdeflate-dev) inflates the common PNG without libpng and gives the
        // writer its Adler-32 and CRC-32. zlib is not linked here: only libpng uses it, and brings it.
        .target(
            name: "CImageCodecs",
            cSettings: [.unsafeFlags(codecCFlags)],
            linkerSettings: [.linkedLibrary("png"), .linkedLibrary("jpeg"), .linkedLibrary("deflate")]
        ),
        // PNG/JPEG decode and encode, EXIF orientation, resampling, RGB float planes.
        .target(name: "ImageCodecs", dependencies: ["CImageCodecs"], swiftSettings: simdSettings),
        // glibc's malloc_trim (malloc.h is not in the Glibc module).
        .target(name: "CSystemMemory"),
        // CPUID and XGETBV: may AVX-512 code run here? (C: Swift has no inline assembly.)
        .target(name: "CCPUFeatures"),
        // Two-input vector shuffles (interleaves, phase splits) and prefetch for the engine's kernels, header-only.
        .target(name: "CEngineSIMD"),
        // The AVX-512 micro-kernels, alone in a module compiled for AVX-512 (see avx512Flags).
        .target(name: "EngineKernels512", swiftSettings: avx512KernelSettings),
        // Tensors, SIMD kernels, thread pool. Knows nothing about files, images or HTTP.
        .target(name: "Engine", dependencies: ["CSystemMemory", "CCPUFeatures", "CEngineSIMD", "EngineKernels512"], swiftSettings: engineSettings),
        // safetensors reader, the adain-vgg19 and microast networks, style codes.
        .target(name: "Models", dependencies: ["Engine"], swiftSettings: simdSettings),
        // Image in, image out: resize, pad, colour preservation, model, crop, encode.
        .target(name: "StylePipeline", dependencies: ["ImageCodecs", "Models", "Engine"], swiftSettings: simdSettings),
        // PyTorch checkpoints (legacy pickle and zip formats) read without Python, mapped to our safetensors layout.
        .target(name: "Checkpoints", dependencies: ["Models"], swiftSettings: optimized),
        // OpenSSL (TLS, SHA-256) as a system library.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        // Linux's epoll, eventfd and prctl, for the HTTP server's event loops.
        .systemLibrary(name: "CEpoll", path: "Sources/CEpoll"),
        // HTTP/1.1: a pure request parser, multipart, and the socket server on epoll event loops (+TLS).
        .target(name: "HTTPCore", dependencies: ["COpenSSL", "CEpoll", .product(name: "Logging", package: "swift-log")]),
        // Durable job store, blob store, bounded FIFO queue, workers, TTL sweeper.
        .target(name: "Jobs", dependencies: ["COpenSSL", .product(name: "Logging", package: "swift-log")]),
        // libpq (Debian's libpq-dev) as a system library, and the small blocking client over it.
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ"),
        .target(name: "Postgres", dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")]),
        // The job system on PostgreSQL for many replicas: queue, leases, LISTEN/NOTIFY, blobs, styles.
        .target(name: "JobsPostgres", dependencies: ["Jobs", "Postgres", .product(name: "Logging", package: "swift-log")]),
        // The application: config, router, v1 API, metrics, openapi.yaml.
        .target(
            name: "StylistService",
            dependencies: ["HTTPCore", "Jobs", "JobsPostgres", "StylePipeline", .product(name: "Logging", package: "swift-log")],
            resources: [.copy("Resources")]
        ),
        // Test helpers that need nothing of Stylist: a raw-socket HTTP client, the `stylist` binary runner.
        .target(name: "TestSupport"),
        // Starts the real server on an ephemeral port for tests (and re-exports TestSupport's client).
        .target(name: "StylistTesting", dependencies: ["StylistService", "HTTPCore", "TestSupport"]),
        .executableTarget(
            name: "StylistCLI",
            dependencies: [
                "StylePipeline", "StylistService", "Checkpoints",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Engine"]),
        .testTarget(name: "ImageCodecsTests", dependencies: ["ImageCodecs", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PipelineTests", dependencies: ["StylePipeline", "ImageCodecs", "Models", "Engine"]),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore", "TestSupport"]),
        .testTarget(name: "JobsTests", dependencies: ["Jobs", "JobsPostgres", "Postgres", "TestSupport"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: ["StylistTesting", "StylistService"]),
        .testTarget(name: "CLITests", dependencies: ["StylistCLI", "ImageCodecs", "Models", "TestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoints", "Models", "StylistCLI", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)

// Fuzz targets (see FUZZING.md), declared only with STYLIST_FUZZ=1 so that the normal build and
// tests never see them. fuzz/run.sh builds them with --sanitize=fuzzer --sanitize=address; each
// exports LLVMFuzzerTestOneInput and takes main from the libFuzzer runtime (-parse-as-library).
if ProcessInfo.processInfo.environment["STYLIST_FUZZ"] == "1" {
    let fuzzSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzHTTPParser", ["HTTPCore"]),
        ("FuzzMultipart", ["HTTPCore"]),
        ("FuzzSafeTensors", ["Models"]),
        ("FuzzImageCodecs", ["ImageCodecs"]),
        ("FuzzCheckpoints", ["Checkpoints"]),
    ]
    for t in fuzzTargets {
        package.targets.append(.executableTarget(name: t.name, dependencies: t.dependencies, swiftSettings: fuzzSettings))
        package.products.append(.executable(name: t.name, targets: [t.name]))
    }
}
