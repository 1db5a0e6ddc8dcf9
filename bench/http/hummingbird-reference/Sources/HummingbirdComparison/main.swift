#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Hummingbird

// Usage: HummingbirdComparison PORT JOB_JSON_FILE
// GET /healthz answers {"status":"ok"}; GET /v1/jobs/{id} answers the constant job record read
// from JOB_JSON_FILE (bench/http.sh saves one real job from `stylist serve`), so both servers send
// the same bytes with the same Content-Type and Cache-Control headers.
let arguments = CommandLine.arguments
let port = arguments.count > 1 ? Int(arguments[1]) ?? 8081 : 8081
let jobBody: [UInt8]
if arguments.count > 2, let file = fopen(arguments[2], "rb") {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    fclose(file)
    jobBody = bytes
} else {
    jobBody = Array("{\"id\":\"constant\",\"status\":\"succeeded\"}\n".utf8)
}
let healthBody = Array("{\"status\":\"ok\"}\n".utf8)

func json(_ bytes: [UInt8]) -> Response {
    Response(status: .ok,
             headers: [.contentType: "application/json", .cacheControl: "no-store"],
             body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}

let router = Router()
router.get("/healthz") { _, _ in json(healthBody) }
router.get("/v1/jobs/:id") { _, _ in json(jobBody) }
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
