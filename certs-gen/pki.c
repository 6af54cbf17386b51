/*
 * pki: keys, certificates, their files, verification and summaries, on the
 * OpenSSL 3 C API (see pki.h).
 */
#include "pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define PKI_FILE_MAX	(8 * 1024 * 1024)	/* no PKI file is bigger */
#define PKI_CN_MAX	64			/* ub-common-name */
#define PKI_ORG		"mailprevent test PKI"

static const struct {
	const char		*name;
	enum pki_key_type	 type;
} pki_key_types[] = {
	{ "ec256",	PKI_KEY_EC256 },
	{ "rsa2048",	PKI_KEY_RSA2048 },
};

/* What a passphrase callback was given, and whether it was asked. */
struct pki_pass {
	const char	*pass;
	int		 asked;
};

/*
 * Write a message to err, followed by the most recent OpenSSL reason if
 * there is one, and empty the error queue. Always returns -1.
 */
static int __attribute__((format(printf, 3, 4)))
pki_fail(char *err, size_t errsz, const char *fmt, ...)
{
	const char *reason;
	unsigned long e;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	e = ERR_peek_last_error();
	if (e != 0 && (reason = ERR_reason_error_string(e)) != NULL) {
		n = strlen(err);
		if (n < errsz)
			snprintf(err + n, errsz - n, " (%s)", reason);
	}
	ERR_clear_error();
	return -1;
}

int
pki_key_type_parse(const char *s, enum pki_key_type *t)
{
	size_t i;

	for (i = 0; i < sizeof(pki_key_types) / sizeof(pki_key_types[0]); i++)
		if (strcmp(s, pki_key_types[i].name) == 0) {
			*t = pki_key_types[i].type;
			return 0;
		}
	return -1;
}

const char *
pki_key_type_name(enum pki_key_type t)
{
	size_t i;

	for (i = 0; i < sizeof(pki_key_types) / sizeof(pki_key_types[0]); i++)
		if (pki_key_types[i].type == t)
			return pki_key_types[i].name;
	return "?";
}

int
pki_name_is_ip(const char *s, unsigned char *addr, size_t *addrlen)
{
	unsigned char tmp[16];

	if (addr == NULL)
		addr = tmp;
	if (inet_pton(AF_INET, s, addr) == 1) {
		if (addrlen != NULL)
			*addrlen = 4;
		return 1;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		if (addrlen != NULL)
			*addrlen = 16;
		return 1;
	}
	return 0;
}

/* A host name of letters, digits and hyphens; "*." may lead. */
static int
pki_dns_name_ok(const char *s)
{
	size_t lablen = 0;

	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (lablen == 0)
				return 0;
			lablen = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-'))
			return 0;
		if (++lablen > 63)
			return 0;
	}
	return lablen > 0;
}

static int
pki_label_ok(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	    (*s >= '0' && *s <= '9')))
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		    *s == '.'))
			return 0;
	return 1;
}

/* "[LABEL=]NAME[,NAME...]": each NAME a DNS name or an IP address. */
int
pki_host_parse(const char *spec, struct pki_host *h, char *err, size_t errsz)
{
	const char *p, *eq, *comma;
	size_t len;

	memset(h, 0, sizeof(*h));
	p = spec;
	if ((eq = strchr(spec, '=')) != NULL) {
		len = (size_t)(eq - spec);
		if (len == 0 || len > PKI_LABEL_MAX) {
			snprintf(err, errsz, "%s: the label before '=' must "
			    "have 1 to %d characters", spec, PKI_LABEL_MAX);
			return -1;
		}
		memcpy(h->label, spec, len);
		h->label[len] = '\0';
		if (!pki_label_ok(h->label)) {
			snprintf(err, errsz, "%s: a label is made of letters, "
			    "digits, '.', '-' and '_', and starts with a "
			    "letter or digit", spec);
			return -1;
		}
		p = eq + 1;
	}
	for (;;) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len == 0) {
			snprintf(err, errsz, "%s: empty name", spec);
			return -1;
		}
		if (len > PKI_NAME_MAX) {
			snprintf(err, errsz, "%s: a name is longer than %d "
			    "characters", spec, PKI_NAME_MAX);
			return -1;
		}
		if (h->nnames == PKI_NAMES_MAX) {
			snprintf(err, errsz, "%s: more than %d names", spec,
			    PKI_NAMES_MAX);
			return -1;
		}
		memcpy(h->names[h->nnames], p, len);
		h->names[h->nnames][len] = '\0';
		if (!pki_name_is_ip(h->names[h->nnames], NULL, NULL) &&
		    !pki_dns_name_ok(h->names[h->nnames])) {
			snprintf(err, errsz, "%s: \"%s\" is neither an IP "
			    "address nor a DNS name", spec, h->names[h->nnames]);
			return -1;
		}
		h->nnames++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (h->label[0] == '\0') {
		if (strlen(h->names[0]) > PKI_LABEL_MAX ||
		    !pki_label_ok(h->names[0])) {
			snprintf(err, errsz, "%s: \"%s\" cannot name files; "
			    "give a label: LABEL=%s", spec, h->names[0], spec);
			return -1;
		}
		memcpy(h->label, h->names[0], strlen(h->names[0]) + 1);
	}
	return 0;
}

EVP_PKEY *
pki_key_new(enum pki_key_type t, char *err, size_t errsz)
{
	EVP_PKEY *k = NULL;

	switch (t) {
	case PKI_KEY_EC256:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case PKI_KEY_RSA2048:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	}
	if (k == NULL)
		pki_fail(err, errsz, "cannot generate a %s key",
		    pki_key_type_name(t));
	return k;
}

static int
pki_add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_conf_nid(NULL, v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int
pki_add_san(X509 *x, const struct pki_host *h)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *g = NULL;
	ASN1_OCTET_STRING *os;
	ASN1_IA5STRING *ia5;
	unsigned char addr[16];
	size_t i, alen;
	int ret = -1;

	if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
		return -1;
	for (i = 0; i < h->nnames; i++) {
		if ((g = GENERAL_NAME_new()) == NULL)
			goto out;
		if (pki_name_is_ip(h->names[i], addr, &alen)) {
			if ((os = ASN1_OCTET_STRING_new()) == NULL)
				goto out;
			if (!ASN1_OCTET_STRING_set(os, addr, (int)alen)) {
				ASN1_OCTET_STRING_free(os);
				goto out;
			}
			GENERAL_NAME_set0_value(g, GEN_IPADD, os);
		} else {
			if ((ia5 = ASN1_IA5STRING_new()) == NULL)
				goto out;
			if (!ASN1_STRING_set(ia5, h->names[i], -1)) {
				ASN1_IA5STRING_free(ia5);
				goto out;
			}
			GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
		}
		if (!sk_GENERAL_NAME_push(gens, g))
			goto out;
		g = NULL;
	}
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
	    X509V3_ADD_DEFAULT) == 1)
		ret = 0;
out:
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(gens);
	return ret;
}

/* A random positive 159-bit serial number, as RFC 5280 allows 20 octets. */
static int
pki_set_serial(X509 *x)
{
	BIGNUM *bn;
	int ok;

	if ((bn = BN_new()) == NULL)
		return -1;
	ok = BN_rand(bn, 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int
pki_set_time(ASN1_TIME *t, long secs)
{
	/* Days and seconds apart, so that 100 years fit any long. */
	return X509_time_adj_ex(t, (int)(secs / 86400), secs % 86400,
	    NULL) != NULL ? 0 : -1;
}

X509 *
pki_cert_new(const struct pki_cert_req *r, char *err, size_t errsz)
{
	X509V3_CTX v3;
	X509_NAME *name = NULL;
	X509 *x;
	EVP_PKEY *signer;
	const char *ku;
	int leaf, rsa;

	if (strlen(r->cn) > PKI_CN_MAX) {
		snprintf(err, errsz, "common name \"%s\" is longer than %d "
		    "characters", r->cn, PKI_CN_MAX);
		return NULL;
	}
	leaf = r->kind == PKI_CERT_LEAF || r->kind == PKI_CERT_SELF_LEAF;
	if ((r->issuer == NULL) != (r->issuer_key == NULL) ||
	    (r->issuer == NULL && r->kind != PKI_CERT_ROOT &&
	    r->kind != PKI_CERT_SELF_LEAF) || (leaf && r->host == NULL)) {
		snprintf(err, errsz, "pki_cert_new: inconsistent request");
		return NULL;
	}
	if ((x = X509_new()) == NULL)
		goto fail;
	if (!X509_set_version(x, X509_VERSION_3) || pki_set_serial(x) == -1)
		goto fail;
	if ((name = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	    (const unsigned char *)PKI_ORG, -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)r->cn, -1, -1, 0))
		goto fail;
	if (!X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, r->issuer != NULL ?
	    X509_get_subject_name(r->issuer) : name))
		goto fail;
	if (pki_set_time(X509_getm_notBefore(x), r->not_before) == -1 ||
	    pki_set_time(X509_getm_notAfter(x), r->not_after) == -1)
		goto fail;
	if (!X509_set_pubkey(x, r->key))
		goto fail;

	X509V3_set_ctx(&v3, r->issuer != NULL ? r->issuer : x, x, NULL, NULL,
	    0);
	if (pki_add_ext(x, &v3, NID_subject_key_identifier, "hash") == -1)
		goto fail;
	/* A self-signed certificate names no other key. */
	if (r->issuer != NULL && pki_add_ext(x, &v3,
	    NID_authority_key_identifier, "keyid:always") == -1)
		goto fail;
	switch (r->kind) {
	case PKI_CERT_ROOT:
		if (pki_add_ext(x, &v3, NID_basic_constraints,
		    "critical,CA:TRUE") == -1 ||
		    pki_add_ext(x, &v3, NID_key_usage,
		    "critical,keyCertSign,cRLSign") == -1)
			goto fail;
		break;
	case PKI_CERT_INTERMEDIATE:
		if (pki_add_ext(x, &v3, NID_basic_constraints,
		    "critical,CA:TRUE,pathlen:0") == -1 ||
		    pki_add_ext(x, &v3, NID_key_usage,
		    "critical,keyCertSign,cRLSign") == -1)
			goto fail;
		break;
	case PKI_CERT_LEAF:
	case PKI_CERT_SELF_LEAF:
		/*
		 * RSA key exchange (TLS 1.2) encrypts to the key; ECDSA only
		 * signs. A self-signed leaf gets the same usages: it is
		 * trusted as itself, not as a CA, so it needs no keyCertSign.
		 */
		rsa = EVP_PKEY_is_a(r->key, "RSA");
		ku = rsa ? "critical,digitalSignature,keyEncipherment" :
		    "critical,digitalSignature";
		if (pki_add_ext(x, &v3, NID_basic_constraints,
		    "critical,CA:FALSE") == -1 ||
		    pki_add_ext(x, &v3, NID_key_usage, ku) == -1 ||
		    pki_add_ext(x, &v3, NID_ext_key_usage,
		    "serverAuth,clientAuth") == -1 ||
		    pki_add_san(x, r->host) == -1)
			goto fail;
		break;
	}
	signer = r->issuer_key != NULL ? r->issuer_key : r->key;
	if (X509_sign(x, signer, EVP_sha256()) <= 0)
		goto fail;
	X509_NAME_free(name);
	return x;
fail:
	pki_fail(err, errsz, "cannot make the certificate for \"%s\"", r->cn);
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

void
pki_describe_key(const EVP_PKEY *k, char *out, size_t outsz)
{
	char group[64];
	const char *nist;
	size_t glen;

	if (EVP_PKEY_is_a(k, "RSA")) {
		snprintf(out, outsz, "RSA %d bits", EVP_PKEY_get_bits(k));
		return;
	}
	if (EVP_PKEY_is_a(k, "EC") &&
	    EVP_PKEY_get_group_name(k, group, sizeof(group), &glen)) {
		nist = EC_curve_nid2nist(OBJ_txt2nid(group));
		snprintf(out, outsz, "EC %s", nist != NULL ? nist : group);
		return;
	}
	snprintf(out, outsz, "%s %d bits", EVP_PKEY_get0_type_name(k),
	    EVP_PKEY_get_bits(k));
}

static int
pki_hex(const unsigned char *md, size_t mdlen, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	if (mdlen == 0 || outsz < mdlen * 3)
		return -1;
	for (i = 0; i < mdlen; i++) {
		out[i * 3] = hex[md[i] >> 4];
		out[i * 3 + 1] = hex[md[i] & 0xf];
		out[i * 3 + 2] = i + 1 < mdlen ? ':' : '\0';
	}
	return 0;
}

int
pki_fingerprint(const X509 *x, char *out, size_t outsz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	if (!X509_digest(x, EVP_sha256(), md, &mdlen)) {
		ERR_clear_error();
		return -1;
	}
	return pki_hex(md, mdlen, out, outsz);
}

/* SHA-256 of the SubjectPublicKeyInfo: the same for a key and its cert. */
int
pki_pubkey_fingerprint(const EVP_PKEY *k, char *out, size_t outsz)
{
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen;
	int len, ok;

	if ((len = i2d_PUBKEY(k, &der)) <= 0) {
		ERR_clear_error();
		return -1;
	}
	ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (!ok) {
		ERR_clear_error();
		return -1;
	}
	return pki_hex(md, mdlen, out, outsz);
}

int
pki_is_ca(X509 *x)
{
	return X509_check_ca(x) > 0;
}

void
pki_buf_wipe(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	buf_free(b);
}

int
pki_file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int
pki_file_read(const char *path, struct buf *b, char *err, size_t errsz)
{
	struct stat st;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	/* The size limit is checked before anything is read. */
	if (st.st_size > PKI_FILE_MAX) {
		snprintf(err, errsz, "%s: larger than %d bytes", path,
		    PKI_FILE_MAX);
		close(fd);
		return -1;
	}
	if (buf_reserve(b, (size_t)st.st_size + 1) == -1) {
		snprintf(err, errsz, "%s: out of memory", path);
		close(fd);
		return -1;
	}
	for (;;) {
		if (b->len >= PKI_FILE_MAX) {
			snprintf(err, errsz, "%s: larger than %d bytes", path,
			    PKI_FILE_MAX);
			close(fd);
			return -1;
		}
		if (buf_reserve(b, 4096) == -1) {
			snprintf(err, errsz, "%s: out of memory", path);
			close(fd);
			return -1;
		}
		n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errsz, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
	close(fd);
	return 0;
}

/*
 * Write through a temporary file in the same directory, so that a reader
 * never sees half a key. Without force, link() refuses to replace a file
 * that appeared meanwhile.
 */
int
pki_file_write(const char *path, const void *data, size_t len, mode_t mode,
    int force, char *err, size_t errsz)
{
	char tmp[PATH_MAX];
	const char *p = data;
	ssize_t n;
	int fd, r;

	r = snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
	if (r < 0 || (size_t)r >= sizeof(tmp)) {
		snprintf(err, errsz, "%s: path too long", path);
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1)
		goto fail;
	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (force) {
		if (rename(tmp, path) == -1)
			goto fail;
		return 0;
	}
	if (link(tmp, path) == -1) {
		if (errno == EEXIST) {
			snprintf(err, errsz, "%s: exists (--force replaces it)",
			    path);
			unlink(tmp);
			return -1;
		}
		goto fail;
	}
	unlink(tmp);
	return 0;
fail:
	snprintf(err, errsz, "%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

/* The first line of the file, without its line end. */
int
pki_passphrase_read(const char *path, char *out, size_t outsz, char *err,
    size_t errsz)
{
	struct buf b = BUF_INIT;
	size_t len;
	int ret = -1;

	if (pki_file_read(path, &b, err, errsz) == -1)
		goto out;
	for (len = 0; len < b.len && b.data[len] != '\n'; len++)
		;
	if (len > 0 && b.data[len - 1] == '\r')
		len--;
	if (len == 0) {
		snprintf(err, errsz, "%s: the first line (the passphrase) is "
		    "empty", path);
		goto out;
	}
	if (memchr(b.data, '\0', len) != NULL) {
		snprintf(err, errsz, "%s: the passphrase holds a NUL byte",
		    path);
		goto out;
	}
	if (len >= outsz || len > PKI_PASS_MAX) {
		snprintf(err, errsz, "%s: the passphrase is longer than %d "
		    "bytes", path, PKI_PASS_MAX);
		goto out;
	}
	memcpy(out, b.data, len);
	out[len] = '\0';
	ret = 0;
out:
	pki_buf_wipe(&b);
	return ret;
}

int
pki_buf_is_pem(const struct buf *b)
{
	return b->len > 0 && memmem(b->data, b->len, "-----BEGIN ", 11) != NULL;
}

static int
pki_certs_decode(const struct buf *b, const char *path,
    STACK_OF(X509) **out, char *err, size_t errsz)
{
	STACK_OF(X509) *sk;
	unsigned long e;
	X509 *x;
	BIO *bio;

	if ((sk = sk_X509_new_null()) == NULL ||
	    (bio = BIO_new_mem_buf(b->data, (int)b->len)) == NULL) {
		sk_X509_free(sk);
		return pki_fail(err, errsz, "%s: out of memory", path);
	}
	if (pki_buf_is_pem(b)) {
		while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
			if (!sk_X509_push(sk, x)) {
				X509_free(x);
				goto fail;
			}
		/* Running out of PEM blocks ends the loop; anything else is
		 * a damaged certificate. */
		e = ERR_peek_last_error();
		if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
		    ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
			goto fail;
		ERR_clear_error();
	} else if ((x = d2i_X509_bio(bio, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto fail;
		}
	} else
		ERR_clear_error();	/* not a DER certificate: none here */
	BIO_free(bio);
	*out = sk;
	return sk_X509_num(sk);
fail:
	BIO_free(bio);
	sk_X509_pop_free(sk, X509_free);
	return pki_fail(err, errsz, "%s: damaged certificate", path);
}

int
pki_certs_load(const char *path, STACK_OF(X509) **out, char *err,
    size_t errsz)
{
	struct buf b = BUF_INIT;
	int n;

	*out = NULL;
	if (pki_file_read(path, &b, err, errsz) == -1)
		return -1;
	n = pki_certs_decode(&b, path, out, err, errsz);
	buf_free(&b);
	return n;
}

X509 *
pki_cert_load(const char *path, char *err, size_t errsz)
{
	STACK_OF(X509) *sk;
	X509 *x;
	int n;

	if ((n = pki_certs_load(path, &sk, err, errsz)) == -1)
		return NULL;
	if (n == 0) {
		snprintf(err, errsz, "%s: no certificate found", path);
		sk_X509_free(sk);
		return NULL;
	}
	x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return x;
}

static int
pki_pem_pass_cb(char *buf, int size, int rwflag, void *arg)
{
	struct pki_pass *pp = arg;
	size_t len;

	pp->asked = 1;
	/* No passphrase: fail rather than let OpenSSL prompt on a tty. */
	if (pp->pass == NULL || size <= 0)
		return -1;
	len = strlen(pp->pass);
	if (len > (size_t)size)
		return -1;
	memcpy(buf, pp->pass, len);
	return (int)len;
}

static int
pki_dec_pass_cb(char *buf, size_t size, size_t *len, const OSSL_PARAM p[],
    void *arg)
{
	struct pki_pass *pp = arg;
	size_t n;

	pp->asked = 1;
	if (pp->pass == NULL)
		return 0;
	if ((n = strlen(pp->pass)) > size)
		return 0;
	memcpy(buf, pp->pass, n);
	*len = n;
	return 1;
}

/* *asked tells whether the key turned out to need a passphrase. */
static EVP_PKEY *
pki_key_decode(const struct buf *b, const char *pass, int *asked)
{
	struct pki_pass pp = { pass, 0 };
	OSSL_DECODER_CTX *dctx;
	const unsigned char *p;
	EVP_PKEY *k = NULL;
	size_t len;
	BIO *bio;

	if (pki_buf_is_pem(b)) {
		/* Skips other PEM blocks, so a combined file works too. */
		if ((bio = BIO_new_mem_buf(b->data, (int)b->len)) != NULL) {
			k = PEM_read_bio_PrivateKey(bio, NULL, pki_pem_pass_cb,
			    &pp);
			BIO_free(bio);
		}
	} else {
		dctx = OSSL_DECODER_CTX_new_for_pkey(&k, "DER", NULL, NULL,
		    EVP_PKEY_KEYPAIR, NULL, NULL);
		if (dctx != NULL &&
		    OSSL_DECODER_CTX_set_passphrase_cb(dctx, pki_dec_pass_cb,
		    &pp)) {
			p = (const unsigned char *)b->data;
			len = b->len;
			if (!OSSL_DECODER_from_data(dctx, &p, &len)) {
				EVP_PKEY_free(k);
				k = NULL;
			}
		}
		OSSL_DECODER_CTX_free(dctx);
	}
	*asked = pp.asked;
	return k;
}

EVP_PKEY *
pki_key_load(const char *path, const char *pass, char *err, size_t errsz)
{
	struct buf b = BUF_INIT;
	EVP_PKEY *k;
	int asked;

	if (pki_file_read(path, &b, err, errsz) == -1)
		return NULL;
	k = pki_key_decode(&b, pass, &asked);
	pki_buf_wipe(&b);
	if (k != NULL) {
		ERR_clear_error();
		return k;
	}
	if (asked && pass == NULL) {
		ERR_clear_error();
		snprintf(err, errsz, "%s: the key is encrypted; a passphrase "
		    "is needed (--passphrase-file)", path);
	} else if (asked)
		pki_fail(err, errsz, "%s: cannot decrypt the key: wrong "
		    "passphrase?", path);
	else
		pki_fail(err, errsz, "%s: no private key found", path);
	return NULL;
}

/* Copy a memory BIO's contents to b. */
static int
pki_bio_to_buf(BIO *bio, struct buf *b)
{
	char *p;
	long n;

	n = BIO_get_mem_data(bio, &p);
	if (n <= 0)
		return -1;
	return buf_append(b, p, (size_t)n);
}

int
pki_certs_pem(STACK_OF(X509) *sk, struct buf *b)
{
	BIO *bio;
	int i, ret = -1;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	for (i = 0; i < sk_X509_num(sk); i++)
		if (!PEM_write_bio_X509(bio, sk_X509_value(sk, i)))
			goto out;
	ret = pki_bio_to_buf(bio, b);
out:
	BIO_free(bio);
	ERR_clear_error();
	return ret;
}

int
pki_cert_pem(X509 *x, struct buf *b)
{
	BIO *bio;
	int ret = -1;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	if (PEM_write_bio_X509(bio, x))
		ret = pki_bio_to_buf(bio, b);
	BIO_free(bio);
	ERR_clear_error();
	return ret;
}

int
pki_cert_der(X509 *x, struct buf *b)
{
	unsigned char *der = NULL;
	int len, ret;

	if ((len = i2d_X509(x, &der)) <= 0) {
		ERR_clear_error();
		return -1;
	}
	ret = buf_append(b, der, (size_t)len);
	OPENSSL_free(der);
	return ret;
}

/*
 * PKCS#8, encrypted with AES-256-CBC under PBES2 when a passphrase is
 * given. Secure-heap BIOs keep the clear key out of ordinary memory.
 */
int
pki_key_pem(EVP_PKEY *k, const char *pass, struct buf *b)
{
	BIO *bio;
	int ret = -1, ok;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return -1;
	ok = PEM_write_bio_PKCS8PrivateKey(bio, k,
	    pass != NULL ? EVP_aes_256_cbc() : NULL, pass,
	    pass != NULL ? (int)strlen(pass) : 0, NULL, NULL);
	if (ok)
		ret = pki_bio_to_buf(bio, b);
	BIO_free(bio);
	ERR_clear_error();
	return ret;
}

int
pki_key_der(EVP_PKEY *k, const char *pass, struct buf *b)
{
	BIO *bio;
	int ret = -1, ok;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return -1;
	ok = i2d_PKCS8PrivateKey_bio(bio, k,
	    pass != NULL ? EVP_aes_256_cbc() : NULL, pass,
	    pass != NULL ? (int)strlen(pass) : 0, NULL, NULL);
	if (ok)
		ret = pki_bio_to_buf(bio, b);
	BIO_free(bio);
	ERR_clear_error();
	return ret;
}

int
pki_verify(STACK_OF(X509) *trust, STACK_OF(X509) *certs, const char *host,
    int client, int *code, int *depth, char *err, size_t errsz)
{
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *vp;
	X509_STORE *store;
	int i, r, ret = -1;

	*code = X509_V_OK;
	*depth = 0;
	if (sk_X509_num(certs) < 1) {
		snprintf(err, errsz, "no certificate to verify");
		return -1;
	}
	if ((store = X509_STORE_new()) == NULL)
		goto fail;
	for (i = 0; i < sk_X509_num(trust); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(trust, i)))
			goto fail;
	if ((untrusted = sk_X509_new_null()) == NULL)
		goto fail;
	for (i = 1; i < sk_X509_num(certs); i++)
		if (!sk_X509_push(untrusted, sk_X509_value(certs, i)))
			goto fail;
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, store, sk_X509_value(certs, 0),
	    untrusted))
		goto fail;
	/* What a TLS peer checks: the purpose first, then the name. */
	if (!X509_STORE_CTX_set_default(ctx, client ? "ssl_client" :
	    "ssl_server"))
		goto fail;
	vp = X509_STORE_CTX_get0_param(ctx);
	if (host != NULL) {
		if (pki_name_is_ip(host, NULL, NULL)) {
			if (!X509_VERIFY_PARAM_set1_ip_asc(vp, host))
				goto fail;
		} else {
			X509_VERIFY_PARAM_set_hostflags(vp,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (!X509_VERIFY_PARAM_set1_host(vp, host, 0))
				goto fail;
		}
	}
	r = X509_verify_cert(ctx);
	if (r < 0)
		goto fail;
	*code = X509_STORE_CTX_get_error(ctx);
	*depth = X509_STORE_CTX_get_error_depth(ctx);
	ret = r == 1 && *code == X509_V_OK ? 1 : 0;
	ERR_clear_error();
	goto out;
fail:
	pki_fail(err, errsz, "cannot run the verification");
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	return ret;
}

static void
pki_show_name(FILE *fp, const char *what, const X509_NAME *name)
{
	char *p;
	BIO *bio;
	long n;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return;
	/* RFC 2253 escapes control bytes, so a hostile name cannot forge
	 * a line of this output. */
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(bio, &p)) >= 0)
		fprintf(fp, "  %s: %.*s\n", what, (int)n, p);
	BIO_free(bio);
}

static void
pki_show_time(FILE *fp, const char *what, const ASN1_TIME *t)
{
	char *p;
	BIO *bio;
	long n;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (ASN1_TIME_print_ex(bio, t, ASN1_DTFLGS_ISO8601) &&
	    (n = BIO_get_mem_data(bio, &p)) >= 0)
		fprintf(fp, "  %s: %.*s\n", what, (int)n, p);
	BIO_free(bio);
}

static void
pki_show_ia5(FILE *fp, const char *prefix, const ASN1_STRING *s)
{
	const unsigned char *p = ASN1_STRING_get0_data(s);
	int i, len = ASN1_STRING_length(s);

	fputs(prefix, fp);
	for (i = 0; i < len; i++)
		fputc(p[i] > 0x20 && p[i] < 0x7f ? p[i] : '?', fp);
}

static void
pki_show_sans(FILE *fp, X509 *x)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	const unsigned char *ip;
	char addr[INET6_ADDRSTRLEN];
	int i, len;

	fputs("  names:", fp);
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens == NULL || sk_GENERAL_NAME_num(gens) == 0)
		fputs(" none", fp);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		fputs(i > 0 ? ", " : " ", fp);
		switch (g->type) {
		case GEN_DNS:
			pki_show_ia5(fp, "DNS:", g->d.dNSName);
			break;
		case GEN_EMAIL:
			pki_show_ia5(fp, "email:", g->d.rfc822Name);
			break;
		case GEN_URI:
			pki_show_ia5(fp, "URI:", g->d.uniformResourceIdentifier);
			break;
		case GEN_IPADD:
			ip = ASN1_STRING_get0_data(g->d.iPAddress);
			len = ASN1_STRING_length(g->d.iPAddress);
			if ((len == 4 && inet_ntop(AF_INET, ip, addr,
			    sizeof(addr)) != NULL) || (len == 16 &&
			    inet_ntop(AF_INET6, ip, addr, sizeof(addr)) != NULL))
				fprintf(fp, "IP:%s", addr);
			else
				fputs("IP:?", fp);
			break;
		default:
			fputs("other", fp);
			break;
		}
	}
	fputc('\n', fp);
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
}

void
pki_show_cert(FILE *fp, X509 *x)
{
	char fpr[PKI_FPR_LEN], desc[64];
	const ASN1_TIME *nb, *na;
	EVP_PKEY *k;
	BIGNUM *bn;
	char *hex;
	long pathlen;

	pki_show_name(fp, "subject", X509_get_subject_name(x));
	pki_show_name(fp, "issuer", X509_get_issuer_name(x));
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) != NULL &&
	    (hex = BN_bn2hex(bn)) != NULL) {
		fprintf(fp, "  serial: %s\n", hex);
		OPENSSL_free(hex);
	}
	BN_free(bn);
	nb = X509_get0_notBefore(x);
	na = X509_get0_notAfter(x);
	pki_show_time(fp, "not before", nb);
	pki_show_time(fp, "not after", na);
	fprintf(fp, "  validity: %s\n", X509_cmp_current_time(nb) > 0 ?
	    "not yet valid" : X509_cmp_current_time(na) < 0 ? "expired" :
	    "valid now");
	pki_show_sans(fp, x);
	if (pki_is_ca(x)) {
		pathlen = X509_get_pathlen(x);
		if (pathlen >= 0)
			fprintf(fp, "  ca: yes (path length %ld)\n", pathlen);
		else
			fprintf(fp, "  ca: yes\n");
	} else
		fprintf(fp, "  ca: no\n");
	fprintf(fp, "  self-signed: %s\n", X509_self_signed(x, 1) == 1 ?
	    "yes" : "no");
	if ((k = X509_get0_pubkey(x)) != NULL) {
		pki_describe_key(k, desc, sizeof(desc));
		fprintf(fp, "  key: %s\n", desc);
	}
	if (pki_fingerprint(x, fpr, sizeof(fpr)) == 0)
		fprintf(fp, "  sha256 fingerprint: %s\n", fpr);
	if (k != NULL && pki_pubkey_fingerprint(k, fpr, sizeof(fpr)) == 0)
		fprintf(fp, "  public key sha256: %s\n", fpr);
	ERR_clear_error();
}

int
pki_show_file(FILE *fp, const char *path, const char *pass, char *err,
    size_t errsz)
{
	struct buf b = BUF_INIT;
	STACK_OF(X509) *sk = NULL;
	char desc[64], fpr[PKI_FPR_LEN];
	EVP_PKEY *k = NULL;
	int i, n, asked, found, ret = -1;

	if (pki_file_read(path, &b, err, errsz) == -1)
		return -1;
	if ((n = pki_certs_decode(&b, path, &sk, err, errsz)) == -1)
		goto out;
	for (i = 0; i < n; i++) {
		fprintf(fp, "%s: certificate %d of %d\n", path, i + 1, n);
		pki_show_cert(fp, sk_X509_value(sk, i));
	}
	found = n > 0;
	/* A key, alone or next to the certificates in a PEM file. */
	if (n == 0 || memmem(b.data, b.len, "PRIVATE KEY-----", 16) != NULL) {
		k = pki_key_decode(&b, pass, &asked);
		if (k != NULL) {
			fprintf(fp, "%s: private key\n", path);
			pki_describe_key(k, desc, sizeof(desc));
			fprintf(fp, "  key: %s\n", desc);
			fprintf(fp, "  encrypted: %s\n", asked ? "yes" : "no");
			if (pki_pubkey_fingerprint(k, fpr, sizeof(fpr)) == 0)
				fprintf(fp, "  public key sha256: %s\n", fpr);
			found = 1;
		} else if (asked && pass == NULL) {
			fprintf(fp, "%s: private key\n  encrypted: yes "
			    "(--passphrase-file reads it)\n", path);
			found = 1;
		} else if (asked) {
			pki_fail(err, errsz, "%s: cannot decrypt the key: "
			    "wrong passphrase?", path);
			goto out;
		}
	}
	if (!found) {
		snprintf(err, errsz, "%s: no certificate or private key found",
		    path);
		goto out;
	}
	ret = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	sk_X509_pop_free(sk, X509_free);
	pki_buf_wipe(&b);
	return ret;
}
