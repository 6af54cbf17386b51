/*
 * layout: which certificates a deployment gets, who signs them, and the
 * file names they land in (see layout.h).
 */
#include "layout.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define DAY	86400L

static const char *const layout_defaults[] = {
	"proxy=proxy.mailprevent.test,localhost,127.0.0.1",
	"upstream=upstream.mailprevent.test,localhost,127.0.0.1",
	"downstream=downstream.mailprevent.test,localhost,127.0.0.1",
	"hosted=hosted.mailprevent.test,localhost,127.0.0.1",
};

static const struct layout_bad_desc {
	enum layout_bad	 kind;
	const char	*name;		/* file name part: LABEL-name.crt */
	const char	*what;
} layout_bads[LAYOUT_BAD_COUNT] = {
	{ LAYOUT_BAD_EXPIRED,	 "expired",	"expired a day ago" },
	{ LAYOUT_BAD_NOTYET,	 "notyet",	"valid from tomorrow" },
	{ LAYOUT_BAD_WRONGHOST,	 "wronghost",	"names only " LAYOUT_WRONG_HOST },
	{ LAYOUT_BAD_UNTRUSTED,	 "untrusted",	"signed by an unrelated root" },
	{ LAYOUT_BAD_SELFSIGNED, "selfsigned",	"signs itself" },
	{ LAYOUT_BAD_WRONGKEY,	 "wrongkey",	"the key does not match" },
};

/* File names a label must not take. */
static const char *const layout_reserved[] = { "root", "intermediate" };

static const char *const layout_leaf_files[] = {
	LAYOUT_CRT, LAYOUT_KEY, LAYOUT_CHAIN,
};

struct layout_ctx {
	const struct layout_opts *o;
	FILE			*report;
	char			*err;
	size_t			 errsz;
};

size_t
layout_default_hosts(struct pki_host *hosts, size_t max)
{
	char err[256];
	size_t i, n = 0;

	for (i = 0; i < sizeof(layout_defaults) / sizeof(layout_defaults[0]) &&
	    n < max; i++)
		if (pki_host_parse(layout_defaults[i], &hosts[n], err,
		    sizeof(err)) == 0)
			n++;
	return n;
}

const char *
layout_bad_name(enum layout_bad b)
{
	return b < LAYOUT_BAD_COUNT ? layout_bads[b].name : "?";
}

const char *
layout_bad_what(enum layout_bad b)
{
	return b < LAYOUT_BAD_COUNT ? layout_bads[b].what : "?";
}

int
layout_path(char *out, size_t outsz, const char *dir, const char *label,
    const char *suffix)
{
	int r;

	r = snprintf(out, outsz, "%s/%s%s", dir, label, suffix);
	return r < 0 || (size_t)r >= outsz ? -1 : 0;
}

static int
layout_fail_path(struct layout_ctx *c, const char *label, const char *suffix)
{
	snprintf(c->err, c->errsz, "%s/%s%s: path too long", c->o->dir, label,
	    suffix);
	return -1;
}

/* Refuse, before anything is made, to overwrite a file without --force. */
static int
layout_check_free(struct layout_ctx *c, const char *label,
    const char *suffix)
{
	char path[PATH_MAX];

	if (layout_path(path, sizeof(path), c->o->dir, label, suffix) == -1)
		return layout_fail_path(c, label, suffix);
	if (!c->o->force && pki_file_exists(path)) {
		snprintf(c->err, c->errsz, "%s: exists (--force replaces it)",
		    path);
		return -1;
	}
	return 0;
}

/*
 * A file from an earlier PKI of another shape (an intermediate, a root) in
 * the same directory would mislead `bad` and readers: --force removes it,
 * otherwise it stops the run.
 */
static int
layout_stale(struct layout_ctx *c, const char *label, const char *suffix)
{
	char path[PATH_MAX];

	if (layout_path(path, sizeof(path), c->o->dir, label, suffix) == -1)
		return layout_fail_path(c, label, suffix);
	if (!pki_file_exists(path))
		return 0;
	if (!c->o->force) {
		snprintf(c->err, c->errsz, "%s: left from a PKI of another "
		    "shape (--force removes it)", path);
		return -1;
	}
	if (unlink(path) == -1) {
		snprintf(c->err, c->errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (c->report != NULL)
		fprintf(c->report, "%s  (removed: left from an earlier PKI)\n",
		    path);
	return 0;
}

int
layout_label_ok(const char *label)
{
	size_t i;

	for (i = 0; i < sizeof(layout_reserved) / sizeof(layout_reserved[0]);
	    i++)
		if (strcmp(label, layout_reserved[i]) == 0)
			return 0;
	return 1;
}

static int
layout_check_opts(struct layout_ctx *c)
{
	const struct layout_opts *o = c->o;
	size_t i, j;

	if (o->days < 1 || o->days > PKI_DAYS_MAX) {
		snprintf(c->err, c->errsz, "days: %d is not within 1..%d",
		    o->days, PKI_DAYS_MAX);
		return -1;
	}
	if (o->nhosts > LAYOUT_HOSTS_MAX) {
		snprintf(c->err, c->errsz, "more than %d hosts",
		    LAYOUT_HOSTS_MAX);
		return -1;
	}
	for (i = 0; i < o->nhosts; i++) {
		if (!layout_label_ok(o->hosts[i].label)) {
			snprintf(c->err, c->errsz, "label \"%s\" is taken by "
			    "the CA files", o->hosts[i].label);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(o->hosts[i].label, o->hosts[j].label) == 0) {
				snprintf(c->err, c->errsz, "two hosts have "
				    "the label \"%s\"", o->hosts[i].label);
				return -1;
			}
	}
	return 0;
}

static int
layout_mkdir(struct layout_ctx *c)
{
	struct stat st;

	if (mkdir(c->o->dir, 0755) == -1 && errno != EEXIST) {
		snprintf(c->err, c->errsz, "%s: %s", c->o->dir,
		    strerror(errno));
		return -1;
	}
	if (stat(c->o->dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(c->err, c->errsz, "%s: not a directory", c->o->dir);
		return -1;
	}
	return 0;
}

static int
layout_write(struct layout_ctx *c, const char *label, const char *suffix,
    const struct buf *b, mode_t mode, const char *what)
{
	char path[PATH_MAX];

	if (layout_path(path, sizeof(path), c->o->dir, label, suffix) == -1)
		return layout_fail_path(c, label, suffix);
	if (pki_file_write(path, b->data, b->len, mode, c->o->force, c->err,
	    c->errsz) == -1)
		return -1;
	if (c->report != NULL)
		fprintf(c->report, "%s  (%s)\n", path, what);
	return 0;
}

static int
layout_write_certs(struct layout_ctx *c, const char *label,
    const char *suffix, X509 *first, X509 *second, const char *what)
{
	struct buf b = BUF_INIT;
	int ret = -1;

	if (pki_cert_pem(first, &b) == -1 ||
	    (second != NULL && pki_cert_pem(second, &b) == -1)) {
		snprintf(c->err, c->errsz, "%s: cannot encode", label);
		goto out;
	}
	ret = layout_write(c, label, suffix, &b, 0644, what);
out:
	buf_free(&b);
	return ret;
}

static int
layout_write_key(struct layout_ctx *c, const char *label, const char *suffix,
    EVP_PKEY *k, const char *what)
{
	struct buf b = BUF_INIT;
	int ret = -1;

	if (pki_key_pem(k, c->o->pass, &b) == -1) {
		snprintf(c->err, c->errsz, "%s: cannot encode the key", label);
		goto out;
	}
	ret = layout_write(c, label, suffix, &b, 0600, what);
out:
	pki_buf_wipe(&b);
	return ret;
}

/* LABEL.crt, LABEL.key and LABEL.chain.pem (the leaf, then inter). */
static int
layout_write_leaf(struct layout_ctx *c, const char *base, X509 *leaf,
    EVP_PKEY *k, X509 *inter, const char *what)
{
	char desc[128];

	snprintf(desc, sizeof(desc), "%s: certificate", what);
	if (layout_write_certs(c, base, LAYOUT_CRT, leaf, NULL, desc) == -1)
		return -1;
	snprintf(desc, sizeof(desc), "%s: private key%s", what,
	    c->o->pass != NULL ? ", encrypted" : "");
	if (layout_write_key(c, base, LAYOUT_KEY, k, desc) == -1)
		return -1;
	snprintf(desc, sizeof(desc), "%s: certificate chain", what);
	return layout_write_certs(c, base, LAYOUT_CHAIN, leaf, inter, desc);
}

/* The CN: the first DNS name when it fits, else the label. */
static const char *
layout_cn(const struct pki_host *h)
{
	size_t i;

	for (i = 0; i < h->nnames; i++)
		if (!pki_name_is_ip(h->names[i], NULL, NULL) &&
		    strlen(h->names[i]) <= 64)
			return h->names[i];
	return h->label;
}

/* A random tag in CA names, so that no two generated CAs share a name. */
static void
layout_ca_cn(char *out, size_t outsz, const char *what)
{
	unsigned char r[3] = { 0, 0, 0 };

	if (RAND_bytes(r, sizeof(r)) != 1)
		ERR_clear_error();
	snprintf(out, outsz, "mailprevent %s %02x%02x%02x", what, r[0], r[1],
	    r[2]);
}

static X509 *
layout_make_ca(struct layout_ctx *c, enum pki_cert_kind kind,
    const char *what, EVP_PKEY **key, X509 *issuer, EVP_PKEY *issuer_key)
{
	struct pki_cert_req r;
	char cn[64];

	if ((*key = pki_key_new(c->o->key_type, c->err, c->errsz)) == NULL)
		return NULL;
	layout_ca_cn(cn, sizeof(cn), what);
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.cn = cn;
	r.not_before = -PKI_BACKDATE;
	r.not_after = c->o->days * DAY;
	r.key = *key;
	r.issuer = issuer;
	r.issuer_key = issuer_key;
	return pki_cert_new(&r, c->err, c->errsz);
}

int
layout_pki(const struct layout_opts *o, FILE *report, char *err,
    size_t errsz)
{
	struct layout_ctx c = { o, report, err, errsz };
	struct pki_cert_req r;
	STACK_OF(X509) *trust = NULL;
	EVP_PKEY *root_key = NULL, *inter_key = NULL, *k = NULL;
	X509 *root = NULL, *inter = NULL, *leaf = NULL;
	X509 *signer;
	EVP_PKEY *signer_key;
	struct buf b = BUF_INIT;
	size_t i, j;
	int ret = -1;

	if (layout_check_opts(&c) == -1)
		return -1;
	if (o->self_signed && o->intermediate) {
		snprintf(err, errsz, "self-signed leaves have no "
		    "intermediate CA");
		return -1;
	}
	if (o->nhosts == 0) {
		snprintf(err, errsz, "no host to make a certificate for");
		return -1;
	}
	if (layout_mkdir(&c) == -1)
		return -1;
	if (!o->self_signed && (layout_check_free(&c, "root", ".crt") == -1 ||
	    layout_check_free(&c, "root", ".key") == -1))
		return -1;
	if (o->intermediate && (layout_check_free(&c, "intermediate",
	    ".crt") == -1 || layout_check_free(&c, "intermediate", ".key") == -1))
		return -1;
	if (layout_check_free(&c, "trust", ".pem") == -1)
		return -1;
	if (!o->intermediate && (layout_stale(&c, "intermediate", ".crt") == -1 ||
	    layout_stale(&c, "intermediate", ".key") == -1))
		return -1;
	if (o->self_signed && (layout_stale(&c, "root", ".crt") == -1 ||
	    layout_stale(&c, "root", ".key") == -1))
		return -1;
	for (i = 0; i < o->nhosts; i++)
		for (j = 0; j < 3; j++)
			if (layout_check_free(&c, o->hosts[i].label,
			    layout_leaf_files[j]) == -1)
				return -1;

	if ((trust = sk_X509_new_null()) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	signer = NULL;
	signer_key = NULL;
	if (!o->self_signed) {
		if ((root = layout_make_ca(&c, PKI_CERT_ROOT, "test root CA",
		    &root_key, NULL, NULL)) == NULL)
			goto out;
		if (layout_write_certs(&c, "root", ".crt", root, NULL,
		    "root CA certificate") == -1 ||
		    layout_write_key(&c, "root", ".key", root_key,
		    "root CA private key") == -1)
			goto out;
		if (!sk_X509_push(trust, root))
			goto nomem;
		X509_up_ref(root);
		signer = root;
		signer_key = root_key;
	}
	if (o->intermediate) {
		if ((inter = layout_make_ca(&c, PKI_CERT_INTERMEDIATE,
		    "test intermediate CA", &inter_key, root, root_key)) == NULL)
			goto out;
		if (layout_write_certs(&c, "intermediate", ".crt", inter, NULL,
		    "intermediate CA certificate") == -1 ||
		    layout_write_key(&c, "intermediate", ".key", inter_key,
		    "intermediate CA private key") == -1)
			goto out;
		signer = inter;
		signer_key = inter_key;
	}
	for (i = 0; i < o->nhosts; i++) {
		if ((k = pki_key_new(o->key_type, err, errsz)) == NULL)
			goto out;
		memset(&r, 0, sizeof(r));
		r.kind = o->self_signed ? PKI_CERT_SELF_LEAF : PKI_CERT_LEAF;
		r.cn = layout_cn(&o->hosts[i]);
		r.host = &o->hosts[i];
		r.not_before = -PKI_BACKDATE;
		r.not_after = o->days * DAY;
		r.key = k;
		r.issuer = signer;
		r.issuer_key = signer_key;
		if ((leaf = pki_cert_new(&r, err, errsz)) == NULL)
			goto out;
		if (layout_write_leaf(&c, o->hosts[i].label, leaf, k, inter,
		    o->hosts[i].label) == -1)
			goto out;
		/* Without a CA, each leaf is its own trust anchor. */
		if (o->self_signed) {
			if (!sk_X509_push(trust, leaf))
				goto nomem;
		} else
			X509_free(leaf);
		leaf = NULL;
		EVP_PKEY_free(k);
		k = NULL;
	}
	if (pki_certs_pem(trust, &b) == -1)
		goto nomem;
	if (layout_write(&c, "trust", ".pem", &b, 0644, o->self_signed ?
	    "trust bundle: every self-signed leaf" :
	    "trust bundle: the root CA") == -1)
		goto out;
	ret = 0;
	goto out;
nomem:
	snprintf(err, errsz, "out of memory");
out:
	buf_free(&b);
	sk_X509_pop_free(trust, X509_free);
	X509_free(leaf);
	EVP_PKEY_free(k);
	X509_free(inter);
	EVP_PKEY_free(inter_key);
	X509_free(root);
	EVP_PKEY_free(root_key);
	return ret;
}

/* The CA of an existing PKI directory: the intermediate when there is one. */
static int
layout_load_ca(struct layout_ctx *c, X509 **ca, EVP_PKEY **ca_key,
    X509 **inter)
{
	char crt[PATH_MAX], key[PATH_MAX], ipath[PATH_MAX];
	const char *base = "root";

	*ca = *inter = NULL;
	*ca_key = NULL;
	if (layout_path(ipath, sizeof(ipath), c->o->dir, "intermediate",
	    ".crt") == -1)
		return layout_fail_path(c, "intermediate", ".crt");
	if (pki_file_exists(ipath))
		base = "intermediate";
	if (layout_path(crt, sizeof(crt), c->o->dir, base, ".crt") == -1 ||
	    layout_path(key, sizeof(key), c->o->dir, base, ".key") == -1)
		return layout_fail_path(c, base, ".key");
	if (!pki_file_exists(crt) || !pki_file_exists(key)) {
		snprintf(c->err, c->errsz, "%s holds no CA (%s, %s): make "
		    "one first with certs-gen pki --out %s", c->o->dir, crt,
		    key, c->o->dir);
		return -1;
	}
	if ((*ca = pki_cert_load(crt, c->err, c->errsz)) == NULL ||
	    (*ca_key = pki_key_load(key, c->o->pass, c->err, c->errsz)) == NULL)
		return -1;
	if (X509_check_private_key(*ca, *ca_key) != 1) {
		ERR_clear_error();
		snprintf(c->err, c->errsz, "%s does not match %s", key, crt);
		return -1;
	}
	if (!pki_is_ca(*ca)) {
		snprintf(c->err, c->errsz, "%s is not a CA certificate", crt);
		return -1;
	}
	if (strcmp(base, "intermediate") == 0) {
		*inter = *ca;
		X509_up_ref(*inter);
	}
	return 0;
}

/* LABEL-VARIANT.{crt,key,chain.pem} for one host and one variant. */
static int
layout_bad_one(struct layout_ctx *c, const struct pki_host *h,
    enum layout_bad kind, X509 *ca, EVP_PKEY *ca_key, X509 *inter)
{
	const struct layout_opts *o = c->o;
	struct pki_host wrong;
	struct pki_cert_req r;
	EVP_PKEY *k = NULL, *other_key = NULL, *written;
	X509 *leaf = NULL, *other = NULL, *chain_inter = inter;
	char base[PKI_LABEL_MAX + 32], label[PKI_LABEL_MAX + 32], what[128];
	int ret = -1;

	snprintf(base, sizeof(base), "%s-%s", h->label, layout_bad_name(kind));
	snprintf(what, sizeof(what), "%s, %s", base, layout_bad_what(kind));
	if ((k = pki_key_new(o->key_type, c->err, c->errsz)) == NULL)
		return -1;
	memset(&r, 0, sizeof(r));
	r.kind = PKI_CERT_LEAF;
	r.cn = layout_cn(h);
	r.host = h;
	r.not_before = -PKI_BACKDATE;
	r.not_after = o->days * DAY;
	r.key = k;
	r.issuer = ca;
	r.issuer_key = ca_key;
	written = k;
	switch (kind) {
	case LAYOUT_BAD_EXPIRED:
		r.not_before = -30 * DAY;
		r.not_after = -DAY;
		break;
	case LAYOUT_BAD_NOTYET:
		r.not_before = DAY;
		r.not_after = DAY + o->days * DAY;
		break;
	case LAYOUT_BAD_WRONGHOST:
		memset(&wrong, 0, sizeof(wrong));
		snprintf(wrong.label, sizeof(wrong.label), "%s", h->label);
		snprintf(wrong.names[0], sizeof(wrong.names[0]), "%s",
		    LAYOUT_WRONG_HOST);
		wrong.nnames = 1;
		r.host = &wrong;
		r.cn = LAYOUT_WRONG_HOST;
		break;
	case LAYOUT_BAD_UNTRUSTED:
		if ((other = layout_make_ca(c, PKI_CERT_ROOT,
		    "untrusted root CA", &other_key, NULL, NULL)) == NULL)
			goto out;
		snprintf(label, sizeof(label), "%s%s", h->label,
		    LAYOUT_UNTRUSTED_ROOT);
		if (layout_write_certs(c, label, "", other, NULL,
		    "the root that signs the untrusted variant") == -1)
			goto out;
		r.issuer = other;
		r.issuer_key = other_key;
		/* The unrelated root is not in the chain: the verifier must
		 * miss the issuer, not refuse a self-signed one. */
		chain_inter = NULL;
		break;
	case LAYOUT_BAD_SELFSIGNED:
		r.kind = PKI_CERT_SELF_LEAF;
		r.issuer = NULL;
		r.issuer_key = NULL;
		chain_inter = NULL;
		break;
	case LAYOUT_BAD_WRONGKEY:
		if ((other_key = pki_key_new(o->key_type, c->err,
		    c->errsz)) == NULL)
			goto out;
		written = other_key;
		break;
	case LAYOUT_BAD_COUNT:
		break;
	}
	if ((leaf = pki_cert_new(&r, c->err, c->errsz)) == NULL)
		goto out;
	ret = layout_write_leaf(c, base, leaf, written, chain_inter, what);
out:
	X509_free(leaf);
	X509_free(other);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(k);
	return ret;
}

int
layout_bad(const struct layout_opts *o, FILE *report, char *err,
    size_t errsz)
{
	struct layout_ctx c = { o, report, err, errsz };
	char base[PKI_LABEL_MAX + 32];
	EVP_PKEY *ca_key = NULL;
	X509 *ca = NULL, *inter = NULL;
	size_t i, j;
	int v, ret = -1;

	if (layout_check_opts(&c) == -1)
		return -1;
	if (o->nhosts == 0) {
		snprintf(err, errsz, "no host to make variants for (--host)");
		return -1;
	}
	for (i = 0; i < o->nhosts; i++) {
		for (v = 0; v < LAYOUT_BAD_COUNT; v++) {
			snprintf(base, sizeof(base), "%s-%s",
			    o->hosts[i].label, layout_bad_name(v));
			for (j = 0; j < 3; j++)
				if (layout_check_free(&c, base,
				    layout_leaf_files[j]) == -1)
					return -1;
		}
		if (layout_check_free(&c, o->hosts[i].label,
		    LAYOUT_UNTRUSTED_ROOT) == -1)
			return -1;
	}
	if (layout_load_ca(&c, &ca, &ca_key, &inter) == -1)
		goto out;
	for (i = 0; i < o->nhosts; i++)
		for (v = 0; v < LAYOUT_BAD_COUNT; v++)
			if (layout_bad_one(&c, &o->hosts[i], v, ca, ca_key,
			    inter) == -1)
				goto out;
	ret = 0;
out:
	X509_free(inter);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return ret;
}
