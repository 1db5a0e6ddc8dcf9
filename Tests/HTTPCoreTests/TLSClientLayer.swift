import COpenSSL
import TestSupport

/// TLS for the test client (OpenSSL, certificate not verified: the tests' certificates are self-signed).
final class TLSClientLayer: ClientStreamLayer {
    private let context: OpaquePointer?
    private let ssl: OpaquePointer?

    /// Runs the handshake on a connected socket.
    static func handshake(_ fd: Int32) throws -> ClientStreamLayer { try TLSClientLayer(fd: fd) }

    private init(fd: Int32) throws {
        context = SSL_CTX_new(TLS_client_method())
        ssl = SSL_new(context)
        SSL_set_fd(ssl, fd)
        guard SSL_connect(ssl) == 1 else {
            SSL_free(ssl)
            SSL_CTX_free(context)
            throw ClientError("TLS handshake failed")
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Int { Int(SSL_write(ssl, bytes.baseAddress, Int32(bytes.count))) }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int { Int(SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))) }

    func close() {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }
}
