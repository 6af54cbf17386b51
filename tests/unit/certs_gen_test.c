/*
 * certs_gen_test: certs-gen/pki.c and certs-gen/layout.c. Each test makes
 * a PKI in its own temporary directory and judges the files with OpenSSL's
 * own calls (X509_verify_cert, X509_check_private_key, PEM readers,
 * X509_digest), not with certs-gen's, so that a certs-gen bug cannot hide
 * itself.
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../../certs-gen/layout.h"
#include "../../certs-gen/pki.h"

#define HOST_SPEC	"nexthop=mx.mailprevent.test,localhost,127.0.0.1"
#define HOST_DNS	"mx.mailprevent.test"
#define PASS		"correct horse battery staple"

static char tdir[PATH_MAX];
static struct pki_host thost;
static char terr[1024];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tdir, sizeof(tdir), "%s/certs_gen_test.XXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	ck_assert_int_eq(pki_host_parse(HOST_SPEC, &thost, terr,
	    sizeof(terr)), 0);
}

static void
teardown(void)
{
	if (tdir[0] != '\0')
		nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *
path(const char *name)
{
	static char p[4][2 * PATH_MAX];
	static int i;
	int r;

	i = (i + 1) % 4;
	r = snprintf(p[i], sizeof(p[i]), "%s/%s", tdir, name);
	ck_assert(r > 0 && (size_t)r < sizeof(p[i]));
	return p[i];
}

static void
make_pki(int intermediate, enum pki_key_type kt, const char *pass, int days)
{
	struct layout_opts o;

	memset(&o, 0, sizeof(o));
	o.dir = tdir;
	o.intermediate = intermediate;
	o.days = days;
	o.key_type = kt;
	o.pass = pass;
	o.hosts = &thost;
	o.nhosts = 1;
	ck_assert_msg(layout_pki(&o, NULL, terr, sizeof(terr)) == 0, "%s",
	    terr);
}

static void
make_bad(const char *pass)
{
	struct layout_opts o;

	memset(&o, 0, sizeof(o));
	o.dir = tdir;
	o.days = 30;
	o.key_type = PKI_KEY_EC256;
	o.pass = pass;
	o.hosts = &thost;
	o.nhosts = 1;
	ck_assert_msg(layout_bad(&o, NULL, terr, sizeof(terr)) == 0, "%s",
	    terr);
}

/* Every certificate of a PEM file, read with OpenSSL alone. */
static STACK_OF(X509) *
read_pem_certs(const char *file)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;
	FILE *fp;

	ck_assert_ptr_nonnull(sk);
	fp = fopen(file, "r");
	ck_assert_msg(fp != NULL, "%s missing", file);
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	ERR_clear_error();
	fclose(fp);
	ck_assert_msg(sk_X509_num(sk) > 0, "%s: no certificate", file);
	return sk;
}

static int
count_certs(const char *file)
{
	STACK_OF(X509) *sk = read_pem_certs(file);
	int n = sk_X509_num(sk);

	sk_X509_pop_free(sk, X509_free);
	return n;
}

static X509 *
read_pem_cert(const char *file)
{
	STACK_OF(X509) *sk = read_pem_certs(file);
	X509 *x = sk_X509_shift(sk);

	sk_X509_pop_free(sk, X509_free);
	return x;
}

/* NULL pass with a callback that refuses: OpenSSL must not prompt. */
static int
no_pass_cb(char *buf, int size, int rw, void *u)
{
	return -1;
}

static EVP_PKEY *
read_pem_key(const char *file, const char *pass)
{
	EVP_PKEY *k;
	FILE *fp;

	fp = fopen(file, "r");
	ck_assert_msg(fp != NULL, "%s missing", file);
	k = pass != NULL ? PEM_read_PrivateKey(fp, NULL, NULL, (void *)pass) :
	    PEM_read_PrivateKey(fp, NULL, no_pass_cb, NULL);
	ERR_clear_error();
	fclose(fp);
	return k;
}

/*
 * X509_verify_cert of chain_file (leaf first) against trust_file as a TLS
 * client checks a server; host is a DNS name, an IP address or NULL.
 * Returns the X509_V_* code (X509_V_OK when it verified).
 */
static int
verify(const char *trust_file, const char *chain_file, const char *host)
{
	STACK_OF(X509) *trust, *chain;
	X509_STORE_CTX *ctx;
	X509_VERIFY_PARAM *vp;
	X509_STORE *store;
	X509 *leaf;
	int i, r, code;

	trust = read_pem_certs(trust_file);
	chain = read_pem_certs(chain_file);
	leaf = sk_X509_shift(chain);
	store = X509_STORE_new();
	ck_assert_ptr_nonnull(store);
	for (i = 0; i < sk_X509_num(trust); i++)
		ck_assert_int_eq(X509_STORE_add_cert(store,
		    sk_X509_value(trust, i)), 1);
	ctx = X509_STORE_CTX_new();
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
	ck_assert_int_eq(X509_STORE_CTX_set_purpose(ctx,
	    X509_PURPOSE_SSL_SERVER), 1);
	vp = X509_STORE_CTX_get0_param(ctx);
	if (host != NULL && pki_name_is_ip(host, NULL, NULL))
		ck_assert_int_eq(X509_VERIFY_PARAM_set1_ip_asc(vp, host), 1);
	else if (host != NULL)
		ck_assert_int_eq(X509_VERIFY_PARAM_set1_host(vp, host, 0), 1);
	r = X509_verify_cert(ctx);
	code = X509_STORE_CTX_get_error(ctx);
	ck_assert_msg((r == 1) == (code == X509_V_OK), "r=%d code=%d", r,
	    code);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(trust, X509_free);
	ERR_clear_error();
	return code;
}

#define CK_VERIFY(trust, chain, host, want) do {			\
	int code_ = verify(path(trust), path(chain), host);		\
	ck_assert_msg(code_ == (want), "%s for %s: got %d (%s), "	\
	    "want %d (%s)", chain, (host) ? (host) : "-", code_,	\
	    X509_verify_cert_error_string(code_), (want),		\
	    X509_verify_cert_error_string(want));			\
} while (0)

static void
assert_key_matches(const char *crt, const char *key, const char *pass,
    int want)
{
	X509 *x = read_pem_cert(path(crt));
	EVP_PKEY *k = read_pem_key(path(key), pass);

	ck_assert_msg(k != NULL, "%s does not load", key);
	ck_assert_msg(X509_check_private_key(x, k) == want,
	    "%s and %s: match should be %d", crt, key, want);
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(x);
}

START_TEST(good_chain_verifies_for_its_names)
{
	make_pki(1, PKI_KEY_EC256, NULL, 30);

	CK_VERIFY("trust.pem", "nexthop.chain.pem", HOST_DNS, X509_V_OK);
	CK_VERIFY("trust.pem", "nexthop.chain.pem", "localhost", X509_V_OK);
	CK_VERIFY("trust.pem", "nexthop.chain.pem", "127.0.0.1", X509_V_OK);
	CK_VERIFY("trust.pem", "nexthop.chain.pem", NULL, X509_V_OK);
	/* Names it does not carry. */
	CK_VERIFY("trust.pem", "nexthop.chain.pem", "other.mailprevent.test",
	    X509_V_ERR_HOSTNAME_MISMATCH);
	CK_VERIFY("trust.pem", "nexthop.chain.pem", "127.0.0.2",
	    X509_V_ERR_IP_ADDRESS_MISMATCH);
	/* The leaf alone misses its intermediate: the chain file matters. */
	CK_VERIFY("trust.pem", "nexthop.crt", HOST_DNS,
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	/* trust.pem is the root alone, not the intermediate. */
	ck_assert_int_eq(count_certs(path("trust.pem")), 1);
	assert_key_matches("nexthop.crt", "nexthop.key", NULL, 1);
	assert_key_matches("intermediate.crt", "intermediate.key", NULL, 1);
	assert_key_matches("root.crt", "root.key", NULL, 1);
}
END_TEST

START_TEST(root_only_chain_verifies)
{
	make_pki(0, PKI_KEY_EC256, NULL, 30);

	CK_VERIFY("trust.pem", "nexthop.chain.pem", HOST_DNS, X509_V_OK);
	CK_VERIFY("trust.pem", "nexthop.crt", "127.0.0.1", X509_V_OK);
	ck_assert(!pki_file_exists(path("intermediate.crt")));
	/* Without an intermediate, the chain file holds the leaf only. */
	ck_assert_int_eq(count_certs(path("nexthop.chain.pem")), 1);
}
END_TEST

START_TEST(leaf_extensions_and_validity)
{
	X509 *leaf, *inter, *root;
	const ASN1_INTEGER *s1, *s2;
	int pday, psec;

	make_pki(1, PKI_KEY_EC256, NULL, 2);
	leaf = read_pem_cert(path("nexthop.crt"));
	root = read_pem_cert(path("root.crt"));

	/* TLS server and client both. */
	ck_assert_uint_eq(X509_get_extended_key_usage(leaf) &
	    (XKU_SSL_SERVER | XKU_SSL_CLIENT), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	ck_assert_int_eq(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0),
	    1);
	ck_assert_int_eq(X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0),
	    1);
	ck_assert_int_eq(X509_check_ca(leaf), 0);
	ck_assert_int_gt(X509_check_ca(root), 0);
	ck_assert(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
	ck_assert(!(X509_get_key_usage(leaf) & KU_KEY_CERT_SIGN));
	ck_assert_int_eq(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
	ck_assert_int_eq(X509_get_signature_nid(root), NID_ecdsa_with_SHA256);
	ck_assert_int_eq(X509_get_version(leaf), X509_VERSION_3);

	/* Backdated by PKI_BACKDATE; ends `days` from now. */
	ck_assert_int_eq(ASN1_TIME_diff(&pday, &psec, NULL,
	    X509_get0_notBefore(leaf)), 1);
	ck_assert_int_eq(pday, 0);
	ck_assert_int_le(psec, -PKI_BACKDATE + 60);
	ck_assert_int_ge(psec, -PKI_BACKDATE - 60);
	ck_assert_int_eq(ASN1_TIME_diff(&pday, &psec, NULL,
	    X509_get0_notAfter(leaf)), 1);
	ck_assert_int_ge((long)pday * 86400 + psec, 2 * 86400L - 60);
	ck_assert_int_le((long)pday * 86400 + psec, 2 * 86400L + 60);

	/* Random serials: positive, long, and not repeated. */
	inter = read_pem_cert(path("intermediate.crt"));
	s1 = X509_get0_serialNumber(leaf);
	s2 = X509_get0_serialNumber(inter);
	ck_assert_int_ge(ASN1_STRING_length(s1), 16);
	ck_assert_int_eq(ASN1_STRING_type(s1), V_ASN1_INTEGER);
	ck_assert_int_ne(ASN1_INTEGER_cmp(s1, s2), 0);
	X509_free(inter);
	X509_free(leaf);
	X509_free(root);
}
END_TEST

struct bad_case {
	const char	*chain;
	const char	*host;
	int		 code;
};

static const struct bad_case bad_cases[] = {
	{ "nexthop-expired.chain.pem", HOST_DNS, X509_V_ERR_CERT_HAS_EXPIRED },
	{ "nexthop-notyet.chain.pem", HOST_DNS, X509_V_ERR_CERT_NOT_YET_VALID },
	{ "nexthop-wronghost.chain.pem", HOST_DNS,
	    X509_V_ERR_HOSTNAME_MISMATCH },
	{ "nexthop-wronghost.chain.pem", "127.0.0.1",
	    X509_V_ERR_IP_ADDRESS_MISMATCH },
	{ "nexthop-untrusted.chain.pem", HOST_DNS,
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY },
	{ "nexthop-selfsigned.chain.pem", HOST_DNS,
	    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT },
	/* The wrong key's certificate itself is fine. */
	{ "nexthop-wrongkey.chain.pem", HOST_DNS, X509_V_OK },
};

START_TEST(negative_variants_fail_as_named)
{
	const struct bad_case *c = &bad_cases[_i];

	make_pki(_i % 2, PKI_KEY_EC256, NULL, 30);
	make_bad(NULL);
	CK_VERIFY("trust.pem", c->chain, c->host, c->code);
	/* The good one made from the same CA still verifies. */
	CK_VERIFY("trust.pem", "nexthop.chain.pem", c->host, X509_V_OK);
}
END_TEST

START_TEST(negative_variants_fail_for_one_reason)
{
	make_pki(1, PKI_KEY_EC256, NULL, 30);
	make_bad(NULL);
	/* Trusting the unrelated root, or the self-signed leaf itself, is
	 * all those two lack. */
	CK_VERIFY("nexthop-untrusted-root.crt", "nexthop-untrusted.chain.pem",
	    HOST_DNS, X509_V_OK);
	CK_VERIFY("nexthop-selfsigned.crt", "nexthop-selfsigned.chain.pem",
	    HOST_DNS, X509_V_OK);
	/* Without a name to check, the wrong host verifies. */
	CK_VERIFY("trust.pem", "nexthop-wronghost.chain.pem", NULL, X509_V_OK);
	/* Every variant key loads; only the wrongkey one is not its cert's. */
	assert_key_matches("nexthop-expired.crt", "nexthop-expired.key", NULL,
	    1);
	assert_key_matches("nexthop-untrusted.crt", "nexthop-untrusted.key",
	    NULL, 1);
	assert_key_matches("nexthop-selfsigned.crt", "nexthop-selfsigned.key",
	    NULL, 1);
	assert_key_matches("nexthop-wrongkey.crt", "nexthop-wrongkey.key",
	    NULL, 0);
}
END_TEST

START_TEST(bad_needs_a_ca)
{
	struct layout_opts o;

	memset(&o, 0, sizeof(o));
	o.dir = tdir;
	o.days = 30;
	o.hosts = &thost;
	o.nhosts = 1;
	ck_assert_int_eq(layout_bad(&o, NULL, terr, sizeof(terr)), -1);
	ck_assert_ptr_nonnull(strstr(terr, "no CA"));
	ck_assert(!pki_file_exists(path("nexthop-expired.crt")));
}
END_TEST

START_TEST(encrypted_key_needs_its_passphrase)
{
	char buf[64];
	X509_SIG *p8;
	const X509_ALGOR *alg;
	PBE2PARAM *pbe2;
	EVP_PKEY *k;
	FILE *fp;

	make_pki(1, PKI_KEY_RSA2048, PASS, 30);
	make_bad(PASS);

	fp = fopen(path("nexthop.key"), "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
	ck_assert_str_eq(buf, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n");
	/* PKCS#8 under PBES2 with AES-256-CBC. */
	rewind(fp);
	p8 = PEM_read_PKCS8(fp, NULL, NULL, NULL);
	fclose(fp);
	ck_assert_ptr_nonnull(p8);
	X509_SIG_get0(p8, &alg, NULL);
	ck_assert_int_eq(OBJ_obj2nid(alg->algorithm), NID_pbes2);
	pbe2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM),
	    alg->parameter);
	ck_assert_ptr_nonnull(pbe2);
	ck_assert_int_eq(OBJ_obj2nid(pbe2->encryption->algorithm),
	    NID_aes_256_cbc);
	PBE2PARAM_free(pbe2);
	X509_SIG_free(p8);

	/* OpenSSL's reader: only the right passphrase opens it. */
	ck_assert_ptr_null(read_pem_key(path("nexthop.key"), NULL));
	ck_assert_ptr_null(read_pem_key(path("nexthop.key"), "wrong"));
	assert_key_matches("nexthop.crt", "nexthop.key", PASS, 1);
	assert_key_matches("root.crt", "root.key", PASS, 1);
	assert_key_matches("nexthop-expired.crt", "nexthop-expired.key", PASS,
	    1);

	/* certs-gen's reader says which of the two went wrong. */
	ck_assert_ptr_null(pki_key_load(path("nexthop.key"), NULL, terr,
	    sizeof(terr)));
	ck_assert_ptr_nonnull(strstr(terr, "passphrase is needed"));
	ck_assert_ptr_null(pki_key_load(path("nexthop.key"), "wrong", terr,
	    sizeof(terr)));
	ck_assert_ptr_nonnull(strstr(terr, "wrong passphrase"));
	k = pki_key_load(path("nexthop.key"), PASS, terr, sizeof(terr));
	ck_assert_msg(k != NULL, "%s", terr);
	ck_assert(EVP_PKEY_is_a(k, "RSA"));
	ck_assert_int_eq(EVP_PKEY_get_bits(k), 2048);
	EVP_PKEY_free(k);
	ck_assert_int_eq(ERR_peek_error(), 0);

	/* bad reads the encrypted CA key only with the passphrase. */
	{
		struct layout_opts o;

		memset(&o, 0, sizeof(o));
		o.dir = tdir;
		o.days = 30;
		o.force = 1;
		o.hosts = &thost;
		o.nhosts = 1;
		ck_assert_int_eq(layout_bad(&o, NULL, terr, sizeof(terr)), -1);
		ck_assert_ptr_nonnull(strstr(terr, "intermediate.key"));
	}
}
END_TEST

START_TEST(rsa_leaf_can_encipher)
{
	X509 *leaf;

	make_pki(0, PKI_KEY_RSA2048, NULL, 30);
	leaf = read_pem_cert(path("nexthop.crt"));
	ck_assert(X509_get_key_usage(leaf) & KU_KEY_ENCIPHERMENT);
	ck_assert_int_eq(X509_get_signature_nid(leaf),
	    NID_sha256WithRSAEncryption);
	X509_free(leaf);
	CK_VERIFY("trust.pem", "nexthop.chain.pem", HOST_DNS, X509_V_OK);
}
END_TEST

static void
write_buf(const char *file, const struct buf *b)
{
	ck_assert_msg(pki_file_write(file, b->data, b->len, 0600, 0, terr,
	    sizeof(terr)) == 0, "%s", terr);
}

START_TEST(der_pem_round_trips)
{
	struct buf der = BUF_INIT, pem = BUF_INIT, kder = BUF_INIT;
	struct buf kenc = BUF_INIT, kpem = BUF_INIT;
	const unsigned char *p;
	X509 *orig, *back, *direct;
	EVP_PKEY *k, *kback;

	make_pki(0, PKI_KEY_EC256, NULL, 30);
	orig = read_pem_cert(path("nexthop.crt"));

	/* Certificate: PEM -> DER -> PEM, byte for byte the same cert. */
	ck_assert_int_eq(pki_cert_der(orig, &der), 0);
	p = (const unsigned char *)der.data;
	direct = d2i_X509(NULL, &p, (long)der.len);
	ck_assert_ptr_nonnull(direct);
	ck_assert_int_eq(X509_cmp(orig, direct), 0);
	write_buf(path("c.der"), &der);
	back = pki_cert_load(path("c.der"), terr, sizeof(terr));
	ck_assert_msg(back != NULL, "%s", terr);
	ck_assert_int_eq(X509_cmp(orig, back), 0);
	ck_assert_int_eq(pki_cert_pem(back, &pem), 0);
	write_buf(path("c.pem"), &pem);
	X509_free(back);
	back = read_pem_cert(path("c.pem"));
	ck_assert_int_eq(X509_cmp(orig, back), 0);

	/* Key: PEM -> DER in clear and encrypted -> back, same key. */
	k = read_pem_key(path("nexthop.key"), NULL);
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(pki_key_der(k, NULL, &kder), 0);
	write_buf(path("k.der"), &kder);
	kback = pki_key_load(path("k.der"), NULL, terr, sizeof(terr));
	ck_assert_msg(kback != NULL, "%s", terr);
	ck_assert_int_eq(EVP_PKEY_eq(k, kback), 1);
	EVP_PKEY_free(kback);

	ck_assert_int_eq(pki_key_der(k, PASS, &kenc), 0);
	write_buf(path("k.enc.der"), &kenc);
	ck_assert_ptr_null(pki_key_load(path("k.enc.der"), NULL, terr,
	    sizeof(terr)));
	ck_assert_ptr_null(pki_key_load(path("k.enc.der"), "wrong", terr,
	    sizeof(terr)));
	kback = pki_key_load(path("k.enc.der"), PASS, terr, sizeof(terr));
	ck_assert_msg(kback != NULL, "%s", terr);
	ck_assert_int_eq(EVP_PKEY_eq(k, kback), 1);
	ck_assert_int_eq(pki_key_pem(kback, NULL, &kpem), 0);
	write_buf(path("k.pem"), &kpem);
	EVP_PKEY_free(kback);
	kback = read_pem_key(path("k.pem"), NULL);
	ck_assert_ptr_nonnull(kback);
	ck_assert_int_eq(EVP_PKEY_eq(k, kback), 1);
	ck_assert_int_eq(X509_check_private_key(orig, kback), 1);

	/* Written keys are private to their owner. */
	{
		struct stat st;

		ck_assert_int_eq(stat(path("nexthop.key"), &st), 0);
		ck_assert_int_eq(st.st_mode & 0777, 0600);
		ck_assert_int_eq(stat(path("nexthop.crt"), &st), 0);
		ck_assert_int_eq(st.st_mode & 0777, 0644);
	}

	EVP_PKEY_free(kback);
	EVP_PKEY_free(k);
	X509_free(back);
	X509_free(direct);
	X509_free(orig);
	buf_free(&der);
	buf_free(&pem);
	buf_free(&kder);
	buf_free(&kenc);
	buf_free(&kpem);
}
END_TEST

/* The value after "label: " on the first line that has it, or NULL. */
static char *
find_value(const char *text, const char *label, char *out, size_t outsz)
{
	const char *p, *end;

	if ((p = strstr(text, label)) == NULL)
		return NULL;
	p += strlen(label);
	end = strchr(p, '\n');
	snprintf(out, outsz, "%.*s", (int)(end != NULL ? end - p :
	    (long)strlen(p)), p);
	return out;
}

START_TEST(show_prints_the_digest)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char want[3 * EVP_MAX_MD_SIZE + 1], got[256], got2[256];
	unsigned int mdlen, i;
	char *text = NULL;
	size_t textlen = 0;
	X509 *leaf;
	FILE *fp;

	make_pki(1, PKI_KEY_EC256, PASS, 30);
	leaf = read_pem_cert(path("nexthop.crt"));
	ck_assert_int_eq(X509_digest(leaf, EVP_sha256(), md, &mdlen), 1);
	for (i = 0; i < mdlen; i++)
		snprintf(want + i * 3, sizeof(want) - i * 3, "%02X%s", md[i],
		    i + 1 < mdlen ? ":" : "");

	fp = open_memstream(&text, &textlen);
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(pki_show_file(fp, path("nexthop.chain.pem"), NULL,
	    terr, sizeof(terr)), 0);
	fclose(fp);
	ck_assert_ptr_nonnull(find_value(text, "sha256 fingerprint: ", got,
	    sizeof(got)));
	ck_assert_str_eq(got, want);
	ck_assert_ptr_nonnull(strstr(text, "certificate 1 of 2"));
	ck_assert_ptr_nonnull(strstr(text, "certificate 2 of 2"));
	ck_assert_ptr_nonnull(strstr(text, "subject: CN=" HOST_DNS ","));
	ck_assert_ptr_nonnull(strstr(text, "names: DNS:" HOST_DNS
	    ", DNS:localhost, IP:127.0.0.1\n"));
	ck_assert_ptr_nonnull(strstr(text, "key: EC P-256\n"));
	ck_assert_ptr_nonnull(strstr(text, "validity: valid now\n"));
	ck_assert_ptr_nonnull(find_value(text, "public key sha256: ", got,
	    sizeof(got)));
	free(text);
	text = NULL;

	/* The key's public half has the same digest as the certificate's. */
	fp = open_memstream(&text, &textlen);
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(pki_show_file(fp, path("nexthop.key"), PASS, terr,
	    sizeof(terr)), 0);
	fclose(fp);
	ck_assert_ptr_nonnull(strstr(text, "encrypted: yes\n"));
	ck_assert_ptr_nonnull(find_value(text, "public key sha256: ", got2,
	    sizeof(got2)));
	ck_assert_str_eq(got, got2);
	free(text);
	X509_free(leaf);

	/* A wrong passphrase is an error, not a silent "encrypted". */
	fp = open_memstream(&text, &textlen);
	ck_assert_int_eq(pki_show_file(fp, path("nexthop.key"), "wrong", terr,
	    sizeof(terr)), -1);
	fclose(fp);
	free(text);
}
END_TEST

START_TEST(self_signed_layout_trusts_each_leaf)
{
	struct pki_host hosts[2];
	struct layout_opts o;

	ck_assert_int_eq(pki_host_parse("a=a.mailprevent.test,127.0.0.1",
	    &hosts[0], terr, sizeof(terr)), 0);
	ck_assert_int_eq(pki_host_parse("b=b.mailprevent.test", &hosts[1], terr,
	    sizeof(terr)), 0);
	memset(&o, 0, sizeof(o));
	o.dir = tdir;
	o.self_signed = 1;
	o.days = 30;
	o.hosts = hosts;
	o.nhosts = 2;
	ck_assert_msg(layout_pki(&o, NULL, terr, sizeof(terr)) == 0, "%s",
	    terr);
	ck_assert(!pki_file_exists(path("root.crt")));
	ck_assert_int_eq(count_certs(path("trust.pem")), 2);
	CK_VERIFY("trust.pem", "a.crt", "a.mailprevent.test", X509_V_OK);
	CK_VERIFY("trust.pem", "b.chain.pem", "b.mailprevent.test", X509_V_OK);
	CK_VERIFY("a.crt", "b.crt", "b.mailprevent.test",
	    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
}
END_TEST

START_TEST(files_are_not_replaced_without_force)
{
	struct layout_opts o;
	X509 *before, *after;

	make_pki(1, PKI_KEY_EC256, NULL, 30);
	before = read_pem_cert(path("root.crt"));
	memset(&o, 0, sizeof(o));
	o.dir = tdir;
	o.intermediate = 1;
	o.days = 30;
	o.hosts = &thost;
	o.nhosts = 1;
	ck_assert_int_eq(layout_pki(&o, NULL, terr, sizeof(terr)), -1);
	ck_assert_ptr_nonnull(strstr(terr, "exists"));
	after = read_pem_cert(path("root.crt"));
	ck_assert_int_eq(X509_cmp(before, after), 0);
	X509_free(after);

	/* --force remakes, and drops the intermediate it no longer makes. */
	o.force = 1;
	o.intermediate = 0;
	ck_assert_msg(layout_pki(&o, NULL, terr, sizeof(terr)) == 0, "%s",
	    terr);
	after = read_pem_cert(path("root.crt"));
	ck_assert_int_ne(X509_cmp(before, after), 0);
	ck_assert(!pki_file_exists(path("intermediate.crt")));
	ck_assert(!pki_file_exists(path("intermediate.key")));
	CK_VERIFY("trust.pem", "nexthop.chain.pem", HOST_DNS, X509_V_OK);
	X509_free(after);
	X509_free(before);
}
END_TEST

struct host_case {
	const char	*spec;
	int		 ret;
	const char	*label;
	size_t		 nnames;
};

static const struct host_case host_cases[] = {
	{ "mx.example.test", 0, "mx.example.test", 1 },
	{ "mx=mx.example.test,127.0.0.5,::1", 0, "mx", 3 },
	{ "proxy=localhost", 0, "proxy", 1 },
	{ "127.0.0.1", 0, "127.0.0.1", 1 },
	{ "w=*.example.test", 0, "w", 1 },
	{ "*.example.test", -1, NULL, 0 },	/* no label from a wildcard */
	{ "::1", -1, NULL, 0 },			/* nor from an IPv6 address */
	{ "", -1, NULL, 0 },
	{ "mx=", -1, NULL, 0 },
	{ "=mx.example.test", -1, NULL, 0 },
	{ "mx.example.test,", -1, NULL, 0 },
	{ "a,,b", -1, NULL, 0 },
	{ "bad name", -1, NULL, 0 },
	{ "../x=localhost", -1, NULL, 0 },
	{ "x/y=localhost", -1, NULL, 0 },
	{ "a..b", -1, NULL, 0 },
	{ "under_score.test", -1, NULL, 0 },
	{ "x=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p", 0, "x", 16 },
	{ "x=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", -1, NULL, 0 },
};

START_TEST(host_specs)
{
	const struct host_case *c = &host_cases[_i];
	struct pki_host h;
	int r;

	r = pki_host_parse(c->spec, &h, terr, sizeof(terr));
	ck_assert_msg(r == c->ret, "\"%s\": got %d (%s)", c->spec, r, terr);
	if (r == 0) {
		ck_assert_str_eq(h.label, c->label);
		ck_assert_uint_eq(h.nnames, c->nnames);
	}
}
END_TEST

START_TEST(passphrase_file_first_line)
{
	char pass[PKI_PASS_MAX + 1];
	FILE *fp;

	fp = fopen(path("p1"), "w");
	ck_assert_ptr_nonnull(fp);
	fputs("s3cret words\r\nsecond line\n", fp);
	fclose(fp);
	ck_assert_int_eq(pki_passphrase_read(path("p1"), pass, sizeof(pass),
	    terr, sizeof(terr)), 0);
	ck_assert_str_eq(pass, "s3cret words");

	fp = fopen(path("p2"), "w");
	ck_assert_ptr_nonnull(fp);
	fputs("\nlater\n", fp);
	fclose(fp);
	ck_assert_int_eq(pki_passphrase_read(path("p2"), pass, sizeof(pass),
	    terr, sizeof(terr)), -1);
	ck_assert_ptr_nonnull(strstr(terr, "empty"));
	ck_assert_int_eq(pki_passphrase_read(path("none"), pass, sizeof(pass),
	    terr, sizeof(terr)), -1);
}
END_TEST

static Suite *
certs_gen_suite(void)
{
	Suite *s = suite_create("certs_gen");
	TCase *tc;

	tc = tcase_create("pki");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, good_chain_verifies_for_its_names);
	tcase_add_test(tc, root_only_chain_verifies);
	tcase_add_test(tc, leaf_extensions_and_validity);
	tcase_add_loop_test(tc, negative_variants_fail_as_named, 0,
	    sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(tc, negative_variants_fail_for_one_reason);
	tcase_add_test(tc, bad_needs_a_ca);
	tcase_add_test(tc, encrypted_key_needs_its_passphrase);
	tcase_add_test(tc, rsa_leaf_can_encipher);
	tcase_add_test(tc, der_pem_round_trips);
	tcase_add_test(tc, show_prints_the_digest);
	tcase_add_test(tc, self_signed_layout_trusts_each_leaf);
	tcase_add_test(tc, files_are_not_replaced_without_force);
	tcase_add_loop_test(tc, host_specs, 0,
	    sizeof(host_cases) / sizeof(host_cases[0]));
	tcase_add_test(tc, passphrase_file_first_line);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(certs_gen_suite());
	int nfailed;

	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
