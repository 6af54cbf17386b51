/*
 * certs_gen_test: bin/certs-gen as a user runs it. Exit codes, the file
 * layout docs/tls.md promises, what verify and show print, and the file
 * conversions, each judged with OpenSSL's own readers. The PKI logic itself
 * is covered in tests/unit/certs_gen_test.c.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "harness.h"

#define CG_ARGS_MAX	24
#define PASS		"e2e passphrase"

struct run {
	int		 status;	/* exit status; 128 + signal if killed */
	const char	*out;
	const char	*err;
};

/* Run certs-gen with the arguments (NULL-terminated) and wait for it. */
static struct run __attribute__((sentinel))
cg(const char *arg, ...)
{
	char *argv[CG_ARGS_MAX + 2];
	struct proc *p;
	struct run r;
	va_list ap;
	size_t n = 0;
	int st;

	argv[n++] = h_strf("%s/certs-gen", h_bindir());
	va_start(ap, arg);
	for (; arg != NULL && n <= CG_ARGS_MAX; arg = va_arg(ap, const char *))
		argv[n++] = (char *)arg;
	va_end(ap);
	argv[n] = NULL;
	p = proc_start("certs-gen", argv);
	H_CHECK(proc_wait_exit(p, H_DEADLINE_MS, &st), "certs-gen %s did not "
	    "exit", argv[1] != NULL ? argv[1] : "");
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r.out = proc_output(p, H_STDOUT, NULL);
	r.err = proc_output(p, H_STDERR, NULL);
	return r;
}

#define CK_STATUS(r, want) H_CHECK((r).status == (want),		\
	"exit %d, want %d; stdout: %s stderr: %s", (r).status, (want),	\
	(r).out, (r).err)

static X509 *
pem_cert(const char *path)
{
	X509 *x;
	FILE *fp;

	fp = fopen(path, "r");
	H_CHECK(fp != NULL, "%s missing", path);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	H_CHECK(x != NULL, "%s: no PEM certificate", path);
	return x;
}

static int
pem_count(const char *path)
{
	X509 *x;
	FILE *fp;
	int n = 0;

	fp = fopen(path, "r");
	H_CHECK(fp != NULL, "%s missing", path);
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
		X509_free(x);
		n++;
	}
	ERR_clear_error();
	fclose(fp);
	return n;
}

static int
refuse_cb(char *buf, int size, int rw, void *u)
{
	return -1;
}

/* The key in a PEM file, with pass or (NULL) with none at all. */
static EVP_PKEY *
pem_key(const char *path, const char *pass)
{
	EVP_PKEY *k;
	FILE *fp;

	fp = fopen(path, "r");
	H_CHECK(fp != NULL, "%s missing", path);
	k = pass != NULL ? PEM_read_PrivateKey(fp, NULL, NULL, (void *)pass) :
	    PEM_read_PrivateKey(fp, NULL, refuse_cb, NULL);
	ERR_clear_error();
	fclose(fp);
	return k;
}

static const char *
pass_file(const char *dir, const char *name, const char *pass)
{
	char *path = h_strf("%s/%s", dir, name);
	char *text = h_strf("%s\n", pass);

	h_write_file(path, text, strlen(text));
	return path;
}

START_TEST(usage_errors_exit_2)
{
	const char *d = h_tmpdir("cg");
	struct run r;

	r = cg((const char *)NULL, NULL);
	CK_STATUS(r, 2);
	r = cg("frobnicate", NULL);
	CK_STATUS(r, 2);
	H_CHECK(strstr(r.err, "unknown command") != NULL, "%s", r.err);
	r = cg("pki", NULL);
	CK_STATUS(r, 2);
	H_CHECK(strstr(r.err, "--out") != NULL, "%s", r.err);
	r = cg("pki", "--out", d, "--bogus", NULL);
	CK_STATUS(r, 2);
	r = cg("pki", "--out", d, "--days", "0", NULL);
	CK_STATUS(r, 2);
	r = cg("pki", "--out", d, "--host", "bad name", NULL);
	CK_STATUS(r, 2);
	r = cg("pki", "--out", d, "--host", "root=localhost", NULL);
	CK_STATUS(r, 2);
	r = cg("bad", "--out", d, NULL);
	CK_STATUS(r, 2);
	r = cg("convert", "--in", "x", "--out", "y", "--to", "xml", NULL);
	CK_STATUS(r, 2);
	r = cg("verify", "x.crt", NULL);
	CK_STATUS(r, 2);
	/* None of those wrote anything. */
	H_CHECK(!h_read_file(h_strf("%s/root.crt", d), NULL), "root.crt");
	r = cg("verify", "--help", NULL);
	CK_STATUS(r, 0);
	H_CHECK(strstr(r.out, "usage: certs-gen verify") != NULL, "%s", r.out);
	r = cg("--help", NULL);
	CK_STATUS(r, 0);
	H_CHECK(strstr(r.out, "passwd") != NULL, "%s", r.out);
}
END_TEST

START_TEST(pki_writes_the_documented_layout)
{
	static const char *const files[] = {
		"root.crt", "root.key", "intermediate.crt", "intermediate.key",
		"trust.pem", "proxy.crt", "proxy.key", "proxy.chain.pem",
		"upstream.crt", "upstream.key", "upstream.chain.pem",
		"downstream.crt", "downstream.key", "downstream.chain.pem",
		"hosted.crt", "hosted.key", "hosted.chain.pem",
	};
	static const char *const variants[] = {
		"expired", "notyet", "wronghost", "untrusted", "selfsigned",
		"wrongkey",
	};
	static const char *const exts[] = { ".crt", ".key", ".chain.pem" };
	const char *d = h_strf("%s/pki", h_tmpdir("cg"));
	struct stat st;
	struct run r;
	size_t i, j;
	char *f;

	r = cg("pki", "--out", d, "--intermediate", NULL);
	CK_STATUS(r, 0);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		f = h_strf("%s/%s", d, files[i]);
		H_CHECK(stat(f, &st) == 0, "%s missing", f);
		H_CHECK(strstr(r.out, f) != NULL, "%s not reported: %s", f,
		    r.out);
		if (strstr(files[i], ".key") != NULL)
			H_CHECK((st.st_mode & 0777) == 0600, "%s mode %o", f,
			    (unsigned)(st.st_mode & 0777));
	}
	H_CHECK(pem_count(h_strf("%s/trust.pem", d)) == 1, "trust.pem");
	H_CHECK(pem_count(h_strf("%s/proxy.chain.pem", d)) == 2, "chain");

	r = cg("bad", "--out", d, "--host", "nexthop=localhost,127.0.0.1",
	    NULL);
	CK_STATUS(r, 0);
	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		for (j = 0; j < 3; j++) {
			f = h_strf("%s/nexthop-%s%s", d, variants[i], exts[j]);
			H_CHECK(stat(f, &st) == 0, "%s missing", f);
		}
	f = h_strf("%s/nexthop-untrusted-root.crt", d);
	H_CHECK(stat(f, &st) == 0, "%s missing", f);

	/* Existing files stay unless --force. */
	r = cg("pki", "--out", d, "--intermediate", NULL);
	CK_STATUS(r, 1);
	H_CHECK(strstr(r.err, "exists") != NULL, "%s", r.err);
	r = cg("pki", "--out", d, "--intermediate", "--force", NULL);
	CK_STATUS(r, 0);
}
END_TEST

struct verify_case {
	const char	*chain;
	const char	*host;
	int		 code;		/* X509_V_*; -1: the key check fails */
};

static const struct verify_case verify_cases[] = {
	{ "nexthop.chain.pem", "localhost", X509_V_OK },
	{ "nexthop.chain.pem", "127.0.0.1", X509_V_OK },
	{ "nexthop.chain.pem", "127.0.0.9", X509_V_ERR_IP_ADDRESS_MISMATCH },
	{ "nexthop-expired.chain.pem", "localhost",
	    X509_V_ERR_CERT_HAS_EXPIRED },
	{ "nexthop-notyet.chain.pem", "localhost",
	    X509_V_ERR_CERT_NOT_YET_VALID },
	{ "nexthop-wronghost.chain.pem", "localhost",
	    X509_V_ERR_HOSTNAME_MISMATCH },
	{ "nexthop-untrusted.chain.pem", "localhost",
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY },
	{ "nexthop-selfsigned.chain.pem", "localhost",
	    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT },
	{ "nexthop-wrongkey.chain.pem", "localhost", -1 },
};

START_TEST(verify_prints_ok_or_the_error)
{
	const struct verify_case *c = &verify_cases[_i];
	const char *d = h_tmpdir("cg");
	char *chain, *key, *want;
	struct run r;

	r = cg("pki", "--out", d, "--intermediate", "--host",
	    "nexthop=localhost,127.0.0.1", NULL);
	CK_STATUS(r, 0);
	r = cg("bad", "--out", d, "--host", "nexthop=localhost,127.0.0.1",
	    NULL);
	CK_STATUS(r, 0);
	chain = h_strf("%s/%s", d, c->chain);
	key = h_strf("%.*s.key", (int)(strlen(chain) - strlen(".chain.pem")),
	    chain);
	r = cg("verify", "--trust", h_strf("%s/trust.pem", d), "--host",
	    c->host, "--key", key, chain, NULL);
	if (c->code == X509_V_OK) {
		CK_STATUS(r, 0);
		H_CHECK(strcmp(r.out, "OK\n") == 0, "%s", r.out);
		return;
	}
	CK_STATUS(r, 1);
	if (c->code == -1)
		want = h_strf("FAILED: the private key in %s does not match",
		    key);
	else
		want = h_strf("FAILED: %s (error %d at depth 0)\n",
		    X509_verify_cert_error_string(c->code), c->code);
	H_CHECK(strncmp(r.out, want, strlen(want)) == 0, "got \"%s\", want "
	    "\"%s\"", r.out, want);
}
END_TEST

START_TEST(show_prints_the_x509_digest)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char want[3 * EVP_MAX_MD_SIZE + 1];
	const char *d = h_tmpdir("cg"), *line;
	unsigned int mdlen, i;
	struct run r;
	X509 *x;

	r = cg("pki", "--out", d, "--host", "mx=mx.mailprevent.test,127.0.0.3",
	    NULL);
	CK_STATUS(r, 0);
	x = pem_cert(h_strf("%s/mx.crt", d));
	H_CHECK(X509_digest(x, EVP_sha256(), md, &mdlen) == 1, "digest");
	X509_free(x);
	for (i = 0; i < mdlen; i++)
		snprintf(want + i * 3, sizeof(want) - i * 3, "%02X%s", md[i],
		    i + 1 < mdlen ? ":" : "");
	r = cg("show", h_strf("%s/mx.crt", d), h_strf("%s/mx.key", d), NULL);
	CK_STATUS(r, 0);
	line = strstr(r.out, "sha256 fingerprint: ");
	H_CHECK(line != NULL, "%s", r.out);
	H_CHECK(strncmp(line + 20, want, strlen(want)) == 0 &&
	    line[20 + strlen(want)] == '\n', "got %.120s, want %s", line, want);
	H_CHECK(strstr(r.out, "names: DNS:mx.mailprevent.test, "
	    "IP:127.0.0.3\n") != NULL, "%s", r.out);
	H_CHECK(strstr(r.out, "subject: CN=mx.mailprevent.test,") != NULL,
	    "%s", r.out);
	H_CHECK(strstr(r.out, "mx.key: private key\n  key: EC P-256\n") !=
	    NULL, "%s", r.out);
	r = cg("show", h_strf("%s/nothing", d), NULL);
	CK_STATUS(r, 1);
}
END_TEST

START_TEST(convert_bundle_passwd)
{
	const char *d = h_tmpdir("cg");
	const char *pw = pass_file(d, "pw", PASS);
	const char *pw2 = pass_file(d, "pw2", "another one");
	EVP_PKEY *k, *k2;
	X509 *x, *x2;
	struct run r;
	FILE *fp;

	r = cg("pki", "--out", d, "--passphrase-file", pw, "--host",
	    "mx=localhost", NULL);
	CK_STATUS(r, 0);

	/* Certificate to DER and back. */
	r = cg("convert", "--in", h_strf("%s/mx.crt", d), "--out",
	    h_strf("%s/mx.der", d), "--to", "der", NULL);
	CK_STATUS(r, 0);
	x = pem_cert(h_strf("%s/mx.crt", d));
	fp = fopen(h_strf("%s/mx.der", d), "r");
	H_CHECK(fp != NULL, "mx.der");
	x2 = d2i_X509_fp(fp, NULL);
	fclose(fp);
	H_CHECK(x2 != NULL && X509_cmp(x, x2) == 0, "DER differs");
	X509_free(x2);
	r = cg("convert", "--in", h_strf("%s/mx.der", d), "--out",
	    h_strf("%s/mx2.pem", d), "--to", "pem", NULL);
	CK_STATUS(r, 0);
	x2 = pem_cert(h_strf("%s/mx2.pem", d));
	H_CHECK(X509_cmp(x, x2) == 0, "PEM differs");
	X509_free(x2);

	/* The encrypted key to DER stays encrypted under the same words. */
	r = cg("convert", "--in", h_strf("%s/mx.key", d), "--out",
	    h_strf("%s/mx.key.der", d), "--to", "der", NULL);
	CK_STATUS(r, 1);
	H_CHECK(strstr(r.err, "passphrase") != NULL, "%s", r.err);
	r = cg("convert", "--in", h_strf("%s/mx.key", d), "--out",
	    h_strf("%s/mx.key.der", d), "--to", "der", "--passphrase-file",
	    pw, NULL);
	CK_STATUS(r, 0);
	fp = fopen(h_strf("%s/mx.key.der", d), "r");
	H_CHECK(fp != NULL, "mx.key.der");
	k = d2i_PKCS8PrivateKey_fp(fp, NULL, NULL, (void *)PASS);
	fclose(fp);
	H_CHECK(k != NULL && X509_check_private_key(x, k) == 1, "DER key");
	EVP_PKEY_free(k);

	/* A bundle keeps one copy of each certificate. */
	r = cg("bundle", "--out", h_strf("%s/bundle.pem", d),
	    h_strf("%s/root.crt", d), h_strf("%s/trust.pem", d),
	    h_strf("%s/mx.crt", d), NULL);
	CK_STATUS(r, 0);
	H_CHECK(pem_count(h_strf("%s/bundle.pem", d)) == 2, "bundle");
	H_CHECK(strstr(r.err, "neither a CA nor self-signed") != NULL, "%s",
	    r.err);

	/* passwd: the old words stop working, the new ones open it. */
	r = cg("passwd", "--key", h_strf("%s/mx.key", d), "--passphrase-file",
	    pw, "--new-passphrase-file", pw2, NULL);
	CK_STATUS(r, 0);
	H_CHECK(pem_key(h_strf("%s/mx.key", d), PASS) == NULL, "old works");
	k = pem_key(h_strf("%s/mx.key", d), "another one");
	H_CHECK(k != NULL && X509_check_private_key(x, k) == 1, "new fails");
	r = cg("passwd", "--key", h_strf("%s/mx.key", d), "--passphrase-file",
	    pw2, "--no-passphrase", NULL);
	CK_STATUS(r, 0);
	k2 = pem_key(h_strf("%s/mx.key", d), NULL);
	H_CHECK(k2 != NULL && EVP_PKEY_eq(k, k2) == 1, "clear key differs");
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
	X509_free(x);
}
END_TEST

static Suite *
certs_gen_suite(void)
{
	Suite *s = suite_create("certs_gen_e2e");
	TCase *tc = h_tcase("certs-gen");

	tcase_add_test(tc, usage_errors_exit_2);
	tcase_add_test(tc, pki_writes_the_documented_layout);
	tcase_add_loop_test(tc, verify_prints_ok_or_the_error, 0,
	    sizeof(verify_cases) / sizeof(verify_cases[0]));
	tcase_add_test(tc, show_prints_the_x509_digest);
	tcase_add_test(tc, convert_bundle_passwd);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return h_run(certs_gen_suite());
}
