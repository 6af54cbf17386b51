/*
 * certs-gen: test PKIs and certificate chores for mailprevent deployments,
 * on OpenSSL's C API. One subcommand per chore, from a table; the work is
 * done in layout.c (which files a deployment gets) and pki.c (OpenSSL).
 *
 * Exit status: 0 done (verify: the chain verified), 1 failed (verify: it
 * did not), 2 the command line is wrong.
 */
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "layout.h"
#include "pki.h"

#define EXIT_USAGE	2
#define ERRSZ		1024

struct cmd {
	const char	*name;
	int		(*run)(const struct cmd *, int, char **);
	const char	*usage;
	const char	*summary;
};

static int	cmd_pki(const struct cmd *, int, char **);
static int	cmd_bad(const struct cmd *, int, char **);
static int	cmd_show(const struct cmd *, int, char **);
static int	cmd_convert(const struct cmd *, int, char **);
static int	cmd_bundle(const struct cmd *, int, char **);
static int	cmd_verify(const struct cmd *, int, char **);
static int	cmd_passwd(const struct cmd *, int, char **);

static const struct cmd cmds[] = {
	{ "pki", cmd_pki,
	    "certs-gen pki --out DIR [--host [LABEL=]NAME[,NAME|IP...]]...\n"
	    "              [--intermediate | --self-signed] [--days N]\n"
	    "              [--key-type ec256|rsa2048] [--passphrase-file F]"
	    " [--force]",
	    "a root CA, an optional intermediate, and a leaf per host" },
	{ "bad", cmd_bad,
	    "certs-gen bad --out DIR --host [LABEL=]NAME[,NAME|IP...]...\n"
	    "              [--days N] [--key-type ec256|rsa2048]"
	    " [--passphrase-file F] [--force]",
	    "negative variants of a leaf, from the CA of a pki directory" },
	{ "show", cmd_show,
	    "certs-gen show [--passphrase-file F] FILE...",
	    "subject, issuer, names, validity, fingerprints, key type" },
	{ "convert", cmd_convert,
	    "certs-gen convert --in F --out G --to der|pem"
	    " [--passphrase-file P] [--force]",
	    "a certificate or a key between PEM and DER" },
	{ "bundle", cmd_bundle,
	    "certs-gen bundle --out F [--force] CERT...",
	    "a PEM trust bundle from chosen certificates" },
	{ "verify", cmd_verify,
	    "certs-gen verify --trust F [--host NAME|IP] [--client]\n"
	    "                 [--key F [--passphrase-file P]] CERT [CHAIN...]",
	    "verify a chain as a TLS peer would; prints OK or the error" },
	{ "passwd", cmd_passwd,
	    "certs-gen passwd --key F [--passphrase-file OLD]\n"
	    "                 (--new-passphrase-file NEW | --no-passphrase)",
	    "change, set or remove the passphrase of a key file" },
};

#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))

/* Passphrases live here only, and are wiped at exit. */
static char main_pass[PKI_PASS_MAX + 1];
static char main_new_pass[PKI_PASS_MAX + 1];
static struct pki_host main_hosts[LAYOUT_HOSTS_MAX];

static void
main_wipe(void)
{
	OPENSSL_cleanse(main_pass, sizeof(main_pass));
	OPENSSL_cleanse(main_new_pass, sizeof(main_new_pass));
}

static void
main_usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: certs-gen COMMAND [options]   "
	    "(certs-gen COMMAND --help)\n\ncommands:\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(fp, "  %-8s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(fp, "\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(fp, "%s\n", cmds[i].usage);
	fprintf(fp, "\nFiles and options: docs/tls.md\n");
}

static int __attribute__((format(printf, 2, 3)))
main_usage_error(const struct cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "certs-gen %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", cmd->usage);
	return EXIT_USAGE;
}

static int
main_error(const struct cmd *cmd, const char *err)
{
	fprintf(stderr, "certs-gen %s: %s\n", cmd->name, err);
	return 1;
}

static int
main_help(const struct cmd *cmd)
{
	printf("usage: %s\n%s\n", cmd->usage, cmd->summary);
	return 0;
}

/* getopt_long, quiet: the caller words the complaint. */
static int
main_getopt(int argc, char **argv, const struct option *lo)
{
	int ch;

	opterr = 0;
	ch = getopt_long(argc, argv, "h", lo, NULL);
	return ch;
}

static int
main_bad_option(const struct cmd *cmd, int argc, char **argv)
{
	const char *arg = optind - 1 < argc ? argv[optind - 1] : "?";

	return main_usage_error(cmd, "unknown option or missing value: %s",
	    arg);
}

static int
main_days(const struct cmd *cmd, const char *s, int *days)
{
	char *end;
	long v;

	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > PKI_DAYS_MAX)
		return main_usage_error(cmd, "--days: \"%s\" is not a number "
		    "within 1..%d", s, PKI_DAYS_MAX);
	*days = (int)v;
	return 0;
}

static int
main_read_pass(const struct cmd *cmd, const char *path, char *out)
{
	char err[ERRSZ];

	if (pki_passphrase_read(path, out, PKI_PASS_MAX + 1, err,
	    sizeof(err)) == -1)
		return main_error(cmd, err);
	return 0;
}

/* The options pki and bad share. */
struct main_layout_args {
	struct layout_opts	 o;
	const char		*pass_file;
	int			 self_signed_ok;	/* pki, not bad */
};

enum {
	OPT_OUT = 256, OPT_HOST, OPT_DAYS, OPT_KEY_TYPE, OPT_PASS_FILE,
	OPT_NEW_PASS_FILE, OPT_NO_PASS, OPT_FORCE, OPT_INTER, OPT_SELF, OPT_IN,
	OPT_TO, OPT_TRUST, OPT_CLIENT, OPT_KEY,
};

static int
main_layout_args(const struct cmd *cmd, int argc, char **argv,
    struct main_layout_args *a)
{
	static const struct option lo[] = {
		{ "out",		required_argument, NULL, OPT_OUT },
		{ "host",		required_argument, NULL, OPT_HOST },
		{ "days",		required_argument, NULL, OPT_DAYS },
		{ "key-type",		required_argument, NULL, OPT_KEY_TYPE },
		{ "passphrase-file",	required_argument, NULL, OPT_PASS_FILE },
		{ "force",		no_argument,	   NULL, OPT_FORCE },
		{ "intermediate",	no_argument,	   NULL, OPT_INTER },
		{ "self-signed",	no_argument,	   NULL, OPT_SELF },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char err[ERRSZ];
	int ch, r;

	memset(a, 0, sizeof(*a));
	a->self_signed_ok = strcmp(cmd->name, "pki") == 0;
	a->o.days = 365;
	a->o.key_type = PKI_KEY_EC256;
	a->o.hosts = main_hosts;
	while ((ch = main_getopt(argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_OUT:
			a->o.dir = optarg;
			break;
		case OPT_HOST:
			if (a->o.nhosts == LAYOUT_HOSTS_MAX)
				return main_usage_error(cmd, "more than %d "
				    "--host", LAYOUT_HOSTS_MAX);
			if (pki_host_parse(optarg, &main_hosts[a->o.nhosts],
			    err, sizeof(err)) == -1)
				return main_usage_error(cmd, "--host %s", err);
			if (!layout_label_ok(main_hosts[a->o.nhosts].label))
				return main_usage_error(cmd, "--host %s: the "
				    "label \"%s\" names CA files; put "
				    "another before '='", optarg,
				    main_hosts[a->o.nhosts].label);
			a->o.nhosts++;
			break;
		case OPT_DAYS:
			if ((r = main_days(cmd, optarg, &a->o.days)) != 0)
				return r;
			break;
		case OPT_KEY_TYPE:
			if (pki_key_type_parse(optarg, &a->o.key_type) == -1)
				return main_usage_error(cmd, "--key-type: "
				    "\"%s\" is neither ec256 nor rsa2048",
				    optarg);
			break;
		case OPT_PASS_FILE:
			a->pass_file = optarg;
			break;
		case OPT_FORCE:
			a->o.force = 1;
			break;
		case OPT_INTER:
		case OPT_SELF:
			if (!a->self_signed_ok)
				return main_bad_option(cmd, argc, argv);
			if (ch == OPT_INTER)
				a->o.intermediate = 1;
			else
				a->o.self_signed = 1;
			break;
		case 'h':
			return -1;
		default:
			return main_bad_option(cmd, argc, argv);
		}
	}
	if (optind < argc)
		return main_usage_error(cmd, "unexpected argument: %s",
		    argv[optind]);
	if (a->o.dir == NULL)
		return main_usage_error(cmd, "--out DIR is required");
	if (a->o.intermediate && a->o.self_signed)
		return main_usage_error(cmd, "--intermediate and --self-signed "
		    "exclude each other");
	if (a->pass_file != NULL) {
		if ((r = main_read_pass(cmd, a->pass_file, main_pass)) != 0)
			return r;
		a->o.pass = main_pass;
	}
	return 0;
}

static int
cmd_pki(const struct cmd *cmd, int argc, char **argv)
{
	struct main_layout_args a;
	char err[ERRSZ];
	int r;

	if ((r = main_layout_args(cmd, argc, argv, &a)) != 0)
		return r == -1 ? main_help(cmd) : r;
	if (a.o.nhosts == 0)
		a.o.nhosts = layout_default_hosts(main_hosts,
		    LAYOUT_HOSTS_MAX);
	if (layout_pki(&a.o, stdout, err, sizeof(err)) == -1)
		return main_error(cmd, err);
	return 0;
}

static int
cmd_bad(const struct cmd *cmd, int argc, char **argv)
{
	struct main_layout_args a;
	char err[ERRSZ];
	int r;

	if ((r = main_layout_args(cmd, argc, argv, &a)) != 0)
		return r == -1 ? main_help(cmd) : r;
	if (a.o.nhosts == 0)
		return main_usage_error(cmd, "at least one --host is needed");
	if (layout_bad(&a.o, stdout, err, sizeof(err)) == -1)
		return main_error(cmd, err);
	return 0;
}

static int
cmd_show(const struct cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "passphrase-file",	required_argument, NULL, OPT_PASS_FILE },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *pass = NULL;
	char err[ERRSZ];
	int ch, i, r, ret = 0;

	while ((ch = main_getopt(argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_PASS_FILE:
			if ((r = main_read_pass(cmd, optarg, main_pass)) != 0)
				return r;
			pass = main_pass;
			break;
		case 'h':
			return main_help(cmd);
		default:
			return main_bad_option(cmd, argc, argv);
		}
	}
	if (optind == argc)
		return main_usage_error(cmd, "no FILE to show");
	/* One bad file does not hide the others. */
	for (i = optind; i < argc; i++)
		if (pki_show_file(stdout, argv[i], pass, err,
		    sizeof(err)) == -1) {
			fflush(stdout);
			main_error(cmd, err);
			ret = 1;
		}
	return ret;
}

static int
cmd_convert(const struct cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "in",			required_argument, NULL, OPT_IN },
		{ "out",		required_argument, NULL, OPT_OUT },
		{ "to",			required_argument, NULL, OPT_TO },
		{ "passphrase-file",	required_argument, NULL, OPT_PASS_FILE },
		{ "force",		no_argument,	   NULL, OPT_FORCE },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *in = NULL, *out = NULL, *to = NULL, *pass = NULL;
	STACK_OF(X509) *sk = NULL;
	struct buf b = BUF_INIT;
	EVP_PKEY *k = NULL;
	char err[ERRSZ];
	int ch, r, n, der, force = 0, ret = 1;

	while ((ch = main_getopt(argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_IN:
			in = optarg;
			break;
		case OPT_OUT:
			out = optarg;
			break;
		case OPT_TO:
			to = optarg;
			break;
		case OPT_PASS_FILE:
			if ((r = main_read_pass(cmd, optarg, main_pass)) != 0)
				return r;
			pass = main_pass;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		case 'h':
			return main_help(cmd);
		default:
			return main_bad_option(cmd, argc, argv);
		}
	}
	if (optind < argc)
		return main_usage_error(cmd, "unexpected argument: %s",
		    argv[optind]);
	if (in == NULL || out == NULL || to == NULL)
		return main_usage_error(cmd, "--in, --out and --to are "
		    "required");
	if (strcmp(to, "der") != 0 && strcmp(to, "pem") != 0)
		return main_usage_error(cmd, "--to: \"%s\" is neither der nor "
		    "pem", to);
	der = strcmp(to, "der") == 0;

	if ((n = pki_certs_load(in, &sk, err, sizeof(err))) == -1)
		goto fail;
	if (n > 0) {
		if (der && n > 1) {
			snprintf(err, sizeof(err), "%s holds %d certificates; "
			    "a DER file holds one", in, n);
			goto fail;
		}
		r = der ? pki_cert_der(sk_X509_value(sk, 0), &b) :
		    pki_certs_pem(sk, &b);
		if (r == -1) {
			snprintf(err, sizeof(err), "%s: cannot encode", in);
			goto fail;
		}
		if (pki_file_write(out, b.data, b.len, 0644, force, err,
		    sizeof(err)) == -1)
			goto fail;
		printf("%s  (%d certificate%s, %s)\n", out, n, n > 1 ? "s" : "",
		    to);
		ret = 0;
		goto out;
	}
	/* No certificate: a key, kept under the same passphrase if any. */
	if ((k = pki_key_load(in, pass, err, sizeof(err))) == NULL)
		goto fail;
	r = der ? pki_key_der(k, pass, &b) : pki_key_pem(k, pass, &b);
	if (r == -1) {
		snprintf(err, sizeof(err), "%s: cannot encode the key", in);
		goto fail;
	}
	if (pki_file_write(out, b.data, b.len, 0600, force, err,
	    sizeof(err)) == -1)
		goto fail;
	printf("%s  (private key, PKCS#8 %s%s)\n", out, to,
	    pass != NULL ? ", encrypted" : "");
	ret = 0;
	goto out;
fail:
	main_error(cmd, err);
out:
	pki_buf_wipe(&b);
	EVP_PKEY_free(k);
	sk_X509_pop_free(sk, X509_free);
	return ret;
}

static int
cmd_bundle(const struct cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out",	required_argument, NULL, OPT_OUT },
		{ "force",	no_argument,	   NULL, OPT_FORCE },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	STACK_OF(X509) *all = NULL, *sk = NULL;
	char err[ERRSZ], fpr[PKI_FPR_LEN], seen[PKI_FPR_LEN];
	const char *out = NULL;
	struct buf b = BUF_INIT;
	X509 *x;
	int ch, i, j, k, n, dup, force = 0, ret = 1;

	while ((ch = main_getopt(argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_OUT:
			out = optarg;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		case 'h':
			return main_help(cmd);
		default:
			return main_bad_option(cmd, argc, argv);
		}
	}
	if (out == NULL)
		return main_usage_error(cmd, "--out F is required");
	if (optind == argc)
		return main_usage_error(cmd, "no CERT to bundle");
	if ((all = sk_X509_new_null()) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	for (i = optind; i < argc; i++) {
		if ((n = pki_certs_load(argv[i], &sk, err, sizeof(err))) == -1)
			goto fail;
		if (n == 0) {
			snprintf(err, sizeof(err), "%s: no certificate found",
			    argv[i]);
			goto fail;
		}
		while ((x = sk_X509_shift(sk)) != NULL) {
			/* The same certificate twice is kept once. */
			dup = 0;
			if (pki_fingerprint(x, fpr, sizeof(fpr)) == -1)
				fpr[0] = '\0';
			for (j = 0; j < sk_X509_num(all) && !dup; j++)
				dup = pki_fingerprint(sk_X509_value(all, j),
				    seen, sizeof(seen)) == 0 &&
				    strcmp(fpr, seen) == 0;
			if (dup) {
				X509_free(x);
				continue;
			}
			if (!pki_is_ca(x) && X509_self_signed(x, 0) != 1)
				fprintf(stderr, "certs-gen bundle: note: %s "
				    "holds a certificate that is neither a CA "
				    "nor self-signed; a verifier will not take "
				    "it as a trust anchor\n", argv[i]);
			if (!sk_X509_push(all, x)) {
				X509_free(x);
				snprintf(err, sizeof(err), "out of memory");
				goto fail;
			}
		}
		sk_X509_free(sk);
		sk = NULL;
	}
	ERR_clear_error();
	if (pki_certs_pem(all, &b) == -1) {
		snprintf(err, sizeof(err), "cannot encode the bundle");
		goto fail;
	}
	if (pki_file_write(out, b.data, b.len, 0644, force, err,
	    sizeof(err)) == -1)
		goto fail;
	k = sk_X509_num(all);
	printf("%s  (%d certificate%s)\n", out, k, k == 1 ? "" : "s");
	ret = 0;
	goto out;
fail:
	main_error(cmd, err);
out:
	buf_free(&b);
	sk_X509_pop_free(sk, X509_free);
	sk_X509_pop_free(all, X509_free);
	return ret;
}

/* Append every certificate of path to sk. */
static int
main_certs_append(const char *path, STACK_OF(X509) *sk, char *err,
    size_t errsz)
{
	STACK_OF(X509) *got;
	X509 *x;
	int n;

	if ((n = pki_certs_load(path, &got, err, errsz)) == -1)
		return -1;
	if (n == 0) {
		snprintf(err, errsz, "%s: no certificate found", path);
		sk_X509_free(got);
		return -1;
	}
	while ((x = sk_X509_shift(got)) != NULL)
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			sk_X509_pop_free(got, X509_free);
			snprintf(err, errsz, "out of memory");
			return -1;
		}
	sk_X509_free(got);
	return 0;
}

static int
cmd_verify(const struct cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "trust",		required_argument, NULL, OPT_TRUST },
		{ "host",		required_argument, NULL, OPT_HOST },
		{ "client",		no_argument,	   NULL, OPT_CLIENT },
		{ "key",		required_argument, NULL, OPT_KEY },
		{ "passphrase-file",	required_argument, NULL, OPT_PASS_FILE },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *trust_file = NULL, *host = NULL, *key_file = NULL;
	const char *pass = NULL;
	STACK_OF(X509) *trust = NULL, *certs = NULL;
	EVP_PKEY *k = NULL;
	char err[ERRSZ];
	int ch, i, r, code, depth, client = 0, ret = 1;

	while ((ch = main_getopt(argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_TRUST:
			trust_file = optarg;
			break;
		case OPT_HOST:
			host = optarg;
			break;
		case OPT_CLIENT:
			client = 1;
			break;
		case OPT_KEY:
			key_file = optarg;
			break;
		case OPT_PASS_FILE:
			if ((r = main_read_pass(cmd, optarg, main_pass)) != 0)
				return r;
			pass = main_pass;
			break;
		case 'h':
			return main_help(cmd);
		default:
			return main_bad_option(cmd, argc, argv);
		}
	}
	if (trust_file == NULL)
		return main_usage_error(cmd, "--trust F is required");
	if (optind == argc)
		return main_usage_error(cmd, "no CERT to verify");
	if ((trust = sk_X509_new_null()) == NULL ||
	    (certs = sk_X509_new_null()) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (main_certs_append(trust_file, trust, err, sizeof(err)) == -1)
		goto fail;
	/* The first certificate of CERT is the leaf; the rest, and every
	 * CHAIN file, are untrusted intermediates. */
	for (i = optind; i < argc; i++)
		if (main_certs_append(argv[i], certs, err, sizeof(err)) == -1)
			goto fail;
	r = pki_verify(trust, certs, host, client, &code, &depth, err,
	    sizeof(err));
	if (r == -1)
		goto fail;
	if (r == 0) {
		printf("FAILED: %s (error %d at depth %d)\n",
		    X509_verify_cert_error_string(code), code, depth);
		goto out;
	}
	if (key_file != NULL) {
		if ((k = pki_key_load(key_file, pass, err, sizeof(err))) ==
		    NULL)
			goto fail;
		if (X509_check_private_key(sk_X509_value(certs, 0), k) != 1) {
			ERR_clear_error();
			printf("FAILED: the private key in %s does not match "
			    "the certificate\n", key_file);
			goto out;
		}
	}
	printf("OK\n");
	ret = 0;
	goto out;
fail:
	main_error(cmd, err);
out:
	EVP_PKEY_free(k);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(trust, X509_free);
	return ret;
}

static int
cmd_passwd(const struct cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "key",		 required_argument, NULL, OPT_KEY },
		{ "passphrase-file",	 required_argument, NULL, OPT_PASS_FILE },
		{ "new-passphrase-file", required_argument, NULL,
		    OPT_NEW_PASS_FILE },
		{ "no-passphrase",	 no_argument,	    NULL, OPT_NO_PASS },
		{ "help",		 no_argument,	    NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *key_file = NULL, *pass = NULL, *new_pass = NULL;
	struct buf in = BUF_INIT, out = BUF_INIT;
	EVP_PKEY *k = NULL;
	char err[ERRSZ];
	int ch, r, no_pass = 0, ret = 1;

	while ((ch = main_getopt(argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_KEY:
			key_file = optarg;
			break;
		case OPT_PASS_FILE:
			if ((r = main_read_pass(cmd, optarg, main_pass)) != 0)
				return r;
			pass = main_pass;
			break;
		case OPT_NEW_PASS_FILE:
			if ((r = main_read_pass(cmd, optarg,
			    main_new_pass)) != 0)
				return r;
			new_pass = main_new_pass;
			break;
		case OPT_NO_PASS:
			no_pass = 1;
			break;
		case 'h':
			return main_help(cmd);
		default:
			return main_bad_option(cmd, argc, argv);
		}
	}
	if (optind < argc)
		return main_usage_error(cmd, "unexpected argument: %s",
		    argv[optind]);
	if (key_file == NULL)
		return main_usage_error(cmd, "--key F is required");
	if ((new_pass == NULL) == (no_pass == 0))
		return main_usage_error(cmd, "give one of --new-passphrase-file "
		    "and --no-passphrase");
	if (pki_file_read(key_file, &in, err, sizeof(err)) == -1)
		goto fail;
	if ((k = pki_key_load(key_file, pass, err, sizeof(err))) == NULL)
		goto fail;
	/* The file keeps its encoding; only the protection changes. */
	r = pki_buf_is_pem(&in) ? pki_key_pem(k, new_pass, &out) :
	    pki_key_der(k, new_pass, &out);
	if (r == -1) {
		snprintf(err, sizeof(err), "%s: cannot encode the key",
		    key_file);
		goto fail;
	}
	if (pki_file_write(key_file, out.data, out.len, 0600, 1, err,
	    sizeof(err)) == -1)
		goto fail;
	printf("%s  (private key, %s)\n", key_file, new_pass != NULL ?
	    "encrypted with the new passphrase" : "in clear");
	ret = 0;
	goto out;
fail:
	main_error(cmd, err);
out:
	pki_buf_wipe(&in);
	pki_buf_wipe(&out);
	EVP_PKEY_free(k);
	return ret;
}

int
main(int argc, char **argv)
{
	size_t i;
	int r;

	if (argc < 2) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		main_usage(stdout);
		return 0;
	}
	for (i = 0; i < NCMDS; i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			/* argv[0] becomes the command, as getopt expects. */
			r = cmds[i].run(&cmds[i], argc - 1, argv + 1);
			main_wipe();
			return r;
		}
	fprintf(stderr, "certs-gen: unknown command \"%s\"\n", argv[1]);
	main_usage(stderr);
	return EXIT_USAGE;
}
