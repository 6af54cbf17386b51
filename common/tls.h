/*
 * tls: OpenSSL contexts and per-connection set-up shared by the proxy and
 * mta-sim. STARTTLS itself (discarding plaintext, swapping the transport)
 * lives with each role; this file only knows certificates, keys,
 * verification and how to describe a session for the log.
 */
#ifndef MP_TLS_H
#define MP_TLS_H

#include <stddef.h>

struct ssl_ctx_st;
struct ssl_st;

/*
 * A server context: TLS 1.2 or later, certificate chain and key from PEM
 * files. passphrase may be NULL (key not encrypted). The key must match
 * the certificate. NULL on error with a message in err.
 */
struct ssl_ctx_st *tls_server_ctx(const char *cert_file, const char *key_file,
	    const char *passphrase, char *err, size_t errlen);
/*
 * A client context that verifies peers: against trust_file (PEM bundle of
 * CAs or of a peer's own self-signed certificate), or against the system's
 * store when trust_file is NULL. verify = 0 makes a context that encrypts
 * without checking (mta-sim only; the proxy always verifies).
 */
struct ssl_ctx_st *tls_client_ctx(const char *trust_file, int verify,
	    char *err, size_t errlen);
/*
 * A client SSL for one connection: SNI and the name checked against the
 * certificate are `name` when it is a host name; an IP literal is checked
 * against the certificate's IP addresses instead.
 */
struct ssl_st	*tls_client_ssl(struct ssl_ctx_st *, const char *name);
/* "proto=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 verify=ok peer=CN" for logs. */
const char	*tls_describe(struct ssl_st *, char *dst, size_t dstsz);
/* Why a handshake failed: the verification error if any, else OpenSSL's. */
const char	*tls_error(struct ssl_st *, unsigned long err, char *dst,
		    size_t dstsz);
/* Read a passphrase: first line of a file, without its newline. */
int		 tls_read_passphrase(const char *path, char *dst, size_t dstsz,
		    char *err, size_t errlen);

#endif
