// swift-tools-version:6.0
// The reference server for bench/http.sh: Hummingbird 2.28 answering the two routes the
// benchmark measures, with the same bodies and headers as `stylist serve`. Not part of Stylist.
import PackageDescription

let package = Package(
    name: "HummingbirdComparison",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "HummingbirdComparison",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")]
        ),
    ]
)
