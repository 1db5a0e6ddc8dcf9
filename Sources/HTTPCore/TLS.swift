#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import COpenSSL

/// A TLS setup failure (bad certificate or key, OpenSSL error).
public struct TLSError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, with OpenSSL's own message.
    public var description: String
    init(_ what: String) {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            messages.append(String(cString: buf))
        }
        description = messages.isEmpty ? what : "\(what): \(messages.joined(separator: "; "))"
    }
}

/// An OpenSSL server context (certificate + key), shared by all connections.
final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    /// The TLS 1.2 cipher suites offered (OpenSSL names).
    static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    init(configuration: TLSConfiguration) throws {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("cannot create an OpenSSL context") }
        self.ctx = ctx
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        // TLS 1.2 suites: forward-secret AEAD only (no CBC, no SHA-1 MACs, no RSA key exchange);
        // TLS 1.3 suites are all AEAD and keep OpenSSL's defaults. The server's order wins.
        guard SSL_CTX_set_cipher_list(ctx, TLSContext.tls12Ciphers) == 1 else { throw TLSError("cannot set the TLS cipher list") }
        _ = SSL_CTX_set_options(ctx, stylist_ssl_server_options())
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), nil)
        guard SSL_CTX_use_certificate_chain_file(ctx, configuration.certificatePath) == 1 else {
            throw TLSError("cannot load the TLS certificate from \(configuration.certificatePath)")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, configuration.privateKeyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError("cannot load the TLS private key from \(configuration.privateKeyPath)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError("the TLS private key does not match the certificate")
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

extension TLSConfiguration {
    /// Writes a fresh self-signed EC P-256 certificate (CN and SAN `commonName`, plus 127.0.0.1 and ::1) and its key
    /// into `directory` as cert.pem and key.pem, valid for `days`; for development and tests.
    public static func generateSelfSigned(directory: String, commonName: String = "localhost", days: Int = 365) throws -> TLSConfiguration {
        ERR_clear_error()
        guard let pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else { throw TLSError("EVP_PKEY_CTX_new_id failed") }
        defer { EVP_PKEY_CTX_free(pctx) }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(pctx) == 1,
              EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pctx, NID_X9_62_prime256v1) == 1,
              EVP_PKEY_keygen(pctx, &pkey) == 1, let key = pkey else {
            throw TLSError("EC key generation failed")
        }
        defer { EVP_PKEY_free(key) }
        guard let x509 = X509_new() else { throw TLSError("X509_new failed") }
        defer { X509_free(x509) }
        X509_set_version(x509, 2)
        ASN1_INTEGER_set(X509_get_serialNumber(x509), Int(UInt32.random(in: 1...UInt32.max >> 1)))
        X509_gmtime_adj(X509_getm_notBefore(x509), -3600)
        X509_gmtime_adj(X509_getm_notAfter(x509), days * 86400)
        X509_set_pubkey(x509, key)
        let name = X509_get_subject_name(x509)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0)
        X509_set_issuer_name(x509, name)
        let san = "DNS:\(commonName),IP:127.0.0.1,IP:::1"
        if let ext = X509V3_EXT_conf_nid(nil, nil, NID_subject_alt_name, san) {
            X509_add_ext(x509, ext, -1)
            X509_EXTENSION_free(ext)
        }
        guard X509_sign(x509, key, EVP_sha256()) > 0 else { throw TLSError("certificate signing failed") }

        let dir = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let certPath = dir + "/cert.pem", keyPath = dir + "/key.pem"
        guard let certFile = fopen(certPath, "w") else { throw TLSError("cannot write \(certPath)") }
        let certOK = PEM_write_X509(certFile, x509) == 1
        fclose(certFile)
        let keyFD = open(keyPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard keyFD >= 0, let keyFile = fdopen(keyFD, "w") else { throw TLSError("cannot write \(keyPath)") }
        let keyOK = PEM_write_PrivateKey(keyFile, key, nil, nil, 0, nil, nil) == 1
        fclose(keyFile)
        guard certOK, keyOK else { throw TLSError("cannot write the PEM files") }
        return TLSConfiguration(certificatePath: certPath, privateKeyPath: keyPath)
    }
}

/// Outcome of one non-blocking transport operation.
enum IOResult {
    case done(Int)
    case wouldBlock
    case eof
    case failed(String)
}

/// A byte stream over a non-blocking socket: plain or TLS.
protocol Transport: AnyObject {
    /// Completes the TLS handshake; `.done` when finished, `.wouldBlock` to retry on readiness.
    func handshake() -> IOResult
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    func write(_ buffer: UnsafeRawBufferPointer) -> IOResult
    /// Whether the last `.wouldBlock` needs the socket writable (else readable).
    var wantsWrite: Bool { get }
    /// Sends close_notify / FIN for our direction.
    func shutdownWrite()
    func free()
}

final class PlainTransport: Transport {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    var wantsWrite: Bool { true }
    func handshake() -> IOResult { .done(0) }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return .done(n) }
            if n == 0 { return .eof }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(String(cString: strerror(errno)))
            }
        }
    }

    func write(_ buffer: UnsafeRawBufferPointer) -> IOResult {
        while true {
            let n = send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .done(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(String(cString: strerror(errno)))
            }
        }
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    func free() {}
}

final class TLSTransport: Transport {
    let fd: Int32
    let ssl: OpaquePointer
    private(set) var wantsWrite = false
    var handshakeDone = false

    init?(fd: Int32, context: TLSContext) {
        guard let ssl = SSL_new(context.ctx) else { return nil }
        self.ssl = ssl
        self.fd = fd
        SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
    }

    private func classify(_ ret: Int32) -> IOResult {
        let err = SSL_get_error(ssl, ret)
        switch err {
        case SSL_ERROR_WANT_READ: wantsWrite = false; return .wouldBlock
        case SSL_ERROR_WANT_WRITE: wantsWrite = true; return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .eof
        case SSL_ERROR_SYSCALL:
            let e = errno
            ERR_clear_error()
            if e == 0 { return .eof }
            if e == EAGAIN || e == EINTR { wantsWrite = false; return .wouldBlock }
            return .failed(String(cString: strerror(e)))
        default:
            return .failed(TLSError("TLS error").description)
        }
    }

    func handshake() -> IOResult {
        if handshakeDone { return .done(0) }
        ERR_clear_error()
        errno = 0
        let r = SSL_do_handshake(ssl)
        if r == 1 { handshakeDone = true; return .done(0) }
        return classify(r)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        ERR_clear_error()
        errno = 0
        let r = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if r > 0 { return .done(Int(r)) }
        return classify(r)
    }

    func write(_ buffer: UnsafeRawBufferPointer) -> IOResult {
        if buffer.count == 0 { return .done(0) }
        ERR_clear_error()
        errno = 0
        let r = SSL_write(ssl, buffer.baseAddress, Int32(min(buffer.count, 1 << 20)))
        if r > 0 { return .done(Int(r)) }
        return classify(r)
    }

    func shutdownWrite() {
        ERR_clear_error()
        if handshakeDone { _ = SSL_shutdown(ssl) }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    func free() { SSL_free(ssl) }
}
