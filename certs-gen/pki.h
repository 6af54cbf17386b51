/*
 * pki: the OpenSSL building blocks of certs-gen. Keys, certificates, the
 * files that hold them, chain verification and the human-readable summary.
 * Nothing here knows the layout of a deployment (layout.c does) or the
 * command line (main.c does).
 *
 * Functions that can fail take (err, errsz) and write one line there, with
 * the OpenSSL reason appended when OpenSSL said why; they return NULL or -1.
 * The OpenSSL error queue is left empty either way.
 */
#ifndef CG_PKI_H
#define CG_PKI_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"

#define PKI_NAMES_MAX	16	/* subject alternative names per certificate */
#define PKI_NAME_MAX	253	/* a DNS name, and room for any IP literal */
#define PKI_LABEL_MAX	64
#define PKI_PASS_MAX	1023	/* longest passphrase read from a file */
#define PKI_DAYS_MAX	36500
#define PKI_BACKDATE	300	/* seconds; fresh certificates verify at once */
#define PKI_FPR_LEN	96	/* "AB:CD:..." for SHA-256, with the NUL */

enum pki_key_type {
	PKI_KEY_EC256,		/* ECDSA on NIST P-256 (the default) */
	PKI_KEY_RSA2048,
};

enum pki_cert_kind {
	PKI_CERT_ROOT,		/* self-signed CA */
	PKI_CERT_INTERMEDIATE,	/* CA, path length 0 */
	PKI_CERT_LEAF,		/* end entity for TLS server and client use */
	PKI_CERT_SELF_LEAF,	/* end entity that signs itself (keytool style) */
};

/* One leaf's identity: the file label and its DNS names and IP addresses. */
struct pki_host {
	char	label[PKI_LABEL_MAX + 1];
	char	names[PKI_NAMES_MAX][PKI_NAME_MAX + 1];
	size_t	nnames;
};

struct pki_cert_req {
	enum pki_cert_kind	 kind;
	const char		*cn;		/* subject common name */
	const struct pki_host	*host;		/* SANs; leaves only */
	long			 not_before;	/* seconds from now, may be < 0 */
	long			 not_after;	/* seconds from now, may be < 0 */
	EVP_PKEY		*key;		/* the subject's key */
	X509			*issuer;	/* NULL: self-signed */
	EVP_PKEY		*issuer_key;	/* NULL: self-signed */
};

/* pki.c: parsing */
int	 pki_key_type_parse(const char *, enum pki_key_type *);
const char *pki_key_type_name(enum pki_key_type);
int	 pki_host_parse(const char *spec, struct pki_host *, char *err,
	    size_t errsz);
int	 pki_name_is_ip(const char *, unsigned char *addr, size_t *addrlen);

/* keys and certificates */
EVP_PKEY *pki_key_new(enum pki_key_type, char *err, size_t errsz);
X509	*pki_cert_new(const struct pki_cert_req *, char *err, size_t errsz);
void	 pki_describe_key(const EVP_PKEY *, char *out, size_t outsz);
int	 pki_fingerprint(const X509 *, char *out, size_t outsz);
int	 pki_pubkey_fingerprint(const EVP_PKEY *, char *out, size_t outsz);
int	 pki_is_ca(X509 *);

/* files */
int	 pki_file_read(const char *path, struct buf *, char *err, size_t errsz);
int	 pki_file_write(const char *path, const void *, size_t, mode_t,
	    int force, char *err, size_t errsz);
int	 pki_file_exists(const char *path);
/* Overwrite, then free: for buffers that held a key or a passphrase. */
void	 pki_buf_wipe(struct buf *);
/* Whether the bytes hold a PEM block (else they are taken as DER). */
int	 pki_buf_is_pem(const struct buf *);
int	 pki_passphrase_read(const char *path, char *out, size_t outsz,
	    char *err, size_t errsz);

/*
 * Every certificate in a PEM file (other blocks are skipped) or the one in a
 * DER file. Returns the count (0: none found; not an error here) or -1.
 */
int	 pki_certs_load(const char *path, STACK_OF(X509) **, char *err,
	    size_t errsz);
X509	*pki_cert_load(const char *path, char *err, size_t errsz);
/*
 * A private key in PEM or DER, PKCS#8 (encrypted or not) or traditional.
 * pass may be NULL; an encrypted key then fails with a message that says so.
 */
EVP_PKEY *pki_key_load(const char *path, const char *pass, char *err,
	    size_t errsz);

/* Encoders append to a buf. pass NULL: the key is written in clear. */
int	 pki_certs_pem(STACK_OF(X509) *, struct buf *);
int	 pki_cert_pem(X509 *, struct buf *);
int	 pki_cert_der(X509 *, struct buf *);
int	 pki_key_pem(EVP_PKEY *, const char *pass, struct buf *);
int	 pki_key_der(EVP_PKEY *, const char *pass, struct buf *);

/*
 * Verify certs[0] (the leaf) with certs[1..] as untrusted intermediates
 * against the trust certificates, for TLS server use (client use when
 * client is set). host, when not NULL, is a DNS name or an IP address the
 * leaf must carry. Returns 1 (verified), 0 (not: *code and *depth say why;
 * X509_verify_cert_error_string(*code) says it in words) or -1 (error).
 */
int	 pki_verify(STACK_OF(X509) *trust, STACK_OF(X509) *certs,
	    const char *host, int client, int *code, int *depth, char *err,
	    size_t errsz);

/* A readable summary of every certificate or key found in a file. */
int	 pki_show_file(FILE *, const char *path, const char *pass, char *err,
	    size_t errsz);
void	 pki_show_cert(FILE *, X509 *);

#endif
