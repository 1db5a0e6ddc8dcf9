#ifndef STYLIST_COPENSSL_SHIM_H
#define STYLIST_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#endif
