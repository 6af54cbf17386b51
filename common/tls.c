/*
 * tls: OpenSSL context helpers (see tls.h).
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static void
tls_err(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_peek_last_error();
	char ebuf[256];

	ERR_error_string_n(e, ebuf, sizeof(ebuf));
	snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "",
	    file ? file : "", e ? ebuf : "unknown error");
	ERR_clear_error();
}

static int
tls_passwd_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pw = u;
	size_t n;

	if (pw == NULL)
		return 0;
	n = strlen(pw);
	if (n >= (size_t)size)
		return 0;
	memcpy(buf, pw, n);
	return (int)n;
}

struct ssl_ctx_st *
tls_server_ctx(const char *cert_file, const char *key_file,
    const char *passphrase, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	EVP_PKEY *key;
	BIO *bio;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_err(err, errlen, "SSL_CTX_new", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_err(err, errlen, "cannot load certificate", cert_file);
		goto fail;
	}
	if ((bio = BIO_new_file(key_file, "r")) == NULL) {
		snprintf(err, errlen, "cannot open key %s: %s", key_file,
		    strerror(errno));
		ERR_clear_error();
		goto fail;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, tls_passwd_cb,
	    (void *)passphrase);
	BIO_free(bio);
	if (key == NULL) {
		tls_err(err, errlen, passphrase ? "cannot load key (wrong "
		    "passphrase?)" : "cannot load key (encrypted? set a "
		    "passphrase)", key_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		EVP_PKEY_free(key);
		tls_err(err, errlen, "cannot use key", key_file);
		goto fail;
	}
	EVP_PKEY_free(key);
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "key %s does not match certificate %s",
		    key_file, cert_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct ssl_ctx_st *
tls_client_ctx(const char *trust_file, int verify, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_err(err, errlen, "SSL_CTX_new", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (trust_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, trust_file, NULL) != 1) {
			tls_err(err, errlen, "cannot load trust file",
			    trust_file);
			SSL_CTX_free(ctx);
			return NULL;
		}
		/* A self-signed next hop listed in the bundle is an anchor too. */
		X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx),
		    X509_V_FLAG_PARTIAL_CHAIN);
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_err(err, errlen, "cannot load the system trust store", NULL);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct ssl_st *
tls_client_ssl(struct ssl_ctx_st *ctx, const char *name)
{
	struct in6_addr a;
	SSL *ssl;
	X509_VERIFY_PARAM *vp;
	int is_ip;

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if (name == NULL || *name == '\0')
		return ssl;
	is_ip = inet_pton(AF_INET, name, &a) == 1 ||
	    inet_pton(AF_INET6, name, &a) == 1;
	vp = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(vp,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1)
			goto fail;
	} else {
		if (SSL_set_tlsext_host_name(ssl, name) != 1 ||
		    X509_VERIFY_PARAM_set1_host(vp, name, 0) != 1)
			goto fail;
	}
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

const char *
tls_describe(struct ssl_st *ssl, char *dst, size_t dstsz)
{
	X509 *peer = SSL_get1_peer_certificate(ssl);
	char cn[128] = "none";
	long vr = SSL_get_verify_result(ssl);
	const char *verify;

	if (peer != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
		    NID_commonName, cn, sizeof(cn));
		for (char *p = cn; *p; p++)
			if (*p <= ' ' || *p == '"' || *p == '=' || *p >= 0x7f)
				*p = '_';
		X509_free(peer);
	}
	if (peer == NULL)
		verify = "none";
	else if (vr == X509_V_OK)
		verify = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) ?
		    "ok" : "unchecked";
	else
		verify = "failed";
	snprintf(dst, dstsz, "proto=%s cipher=%s verify=%s peer=%s",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl), verify, cn);
	return dst;
}

const char *
tls_error(struct ssl_st *ssl, unsigned long err, char *dst, size_t dstsz)
{
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	char ebuf[256];

	if (vr != X509_V_OK) {
		snprintf(dst, dstsz, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		return dst;
	}
	if (err == 0)
		err = ERR_peek_last_error();
	if (err == 0) {
		snprintf(dst, dstsz, "handshake failed");
		return dst;
	}
	ERR_error_string_n(err, ebuf, sizeof(ebuf));
	snprintf(dst, dstsz, "handshake failed: %s", ebuf);
	ERR_clear_error();
	return dst;
}

int
tls_read_passphrase(const char *path, char *dst, size_t dstsz, char *err,
    size_t errlen)
{
	FILE *f;
	size_t n;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fgets(dst, (int)dstsz, f) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s is empty", path);
		return -1;
	}
	fclose(f);
	n = strcspn(dst, "\r\n");
	dst[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "%s: the first line is empty", path);
		return -1;
	}
	return 0;
}
