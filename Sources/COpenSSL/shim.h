#ifndef STYLIST_COPENSSL_SHIM_H
#define STYLIST_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdint.h>

/* SSL_OP_* are function-like macros in OpenSSL 3, which Swift does not import. */
static inline uint64_t stylist_ssl_server_options(void) {
    return SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
}
#endif
