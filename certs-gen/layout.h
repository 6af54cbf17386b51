/*
 * layout: the files certs-gen writes for a deployment, and which
 * certificate signs which. Names are fixed, so scripts and tests can rely on
 * them (docs/tls.md lists them):
 *
 *   pki:  root.crt root.key [intermediate.crt intermediate.key] trust.pem
 *         and per host LABEL.crt LABEL.key LABEL.chain.pem
 *   bad:  per host LABEL-VARIANT.crt .key .chain.pem for each variant, and
 *         LABEL-untrusted-root.crt
 */
#ifndef CG_LAYOUT_H
#define CG_LAYOUT_H

#include <stddef.h>
#include <stdio.h>

#include "pki.h"

#define LAYOUT_HOSTS_MAX	32

#define LAYOUT_CRT		".crt"
#define LAYOUT_KEY		".key"
#define LAYOUT_CHAIN		".chain.pem"
#define LAYOUT_UNTRUSTED_ROOT	"-untrusted-root.crt"

/* The negative variants, in the order `bad` writes them. */
enum layout_bad {
	LAYOUT_BAD_EXPIRED,	/* notAfter a day ago */
	LAYOUT_BAD_NOTYET,	/* notBefore a day ahead */
	LAYOUT_BAD_WRONGHOST,	/* names only wrong-host.invalid */
	LAYOUT_BAD_UNTRUSTED,	/* signed by a second, unrelated root */
	LAYOUT_BAD_SELFSIGNED,	/* the leaf signs itself */
	LAYOUT_BAD_WRONGKEY,	/* the .key is not the certificate's key */
	LAYOUT_BAD_COUNT,
};

#define LAYOUT_WRONG_HOST	"wrong-host.invalid"

struct layout_opts {
	const char		*dir;
	int			 intermediate;	/* root -> intermediate -> leaves */
	int			 self_signed;	/* no CA: each leaf signs itself */
	int			 days;		/* validity of what is made */
	enum pki_key_type	 key_type;
	const char		*pass;		/* NULL: keys in clear */
	int			 force;		/* replace existing files */
	const struct pki_host	*hosts;
	size_t			 nhosts;
};

/* The leaves made when no host is given: proxy, upstream, downstream, hosted. */
size_t	 layout_default_hosts(struct pki_host *, size_t max);
/* Whether a host label leaves the CA's file names alone. */
int	 layout_label_ok(const char *);
const char *layout_bad_name(enum layout_bad);
const char *layout_bad_what(enum layout_bad);
/* DIR/LABEL SUFFIX into out; -1 when it does not fit. */
int	 layout_path(char *out, size_t outsz, const char *dir,
	    const char *label, const char *suffix);

/*
 * Make the PKI of `certs-gen pki` in o->dir (created when missing), or the
 * negative variants of `certs-gen bad` from the CA already in o->dir. Each
 * file written is named on report (when not NULL). Nothing is written when
 * a file exists and o->force is not set.
 */
int	 layout_pki(const struct layout_opts *, FILE *report, char *err,
	    size_t errsz);
int	 layout_bad(const struct layout_opts *, FILE *report, char *err,
	    size_t errsz);

#endif
