/*
 * dnsmsg: the DNS message format (RFC 1035 section 4) for mta-sim's DNS
 * role and for tests: parse a message, build one, and turn names between
 * wire and text form. It knows no socket, zone or session.
 *
 * Parsing is written for hostile input:
 * - every length is checked before the bytes it covers are read;
 * - a compression pointer must land past the header and inside the
 *   message (backward or forward), and one name may follow at most
 *   DNSMSG_PTR_MAX of them, so a loop ends in an error;
 * - labels are 1-63 octets (the 0x40 and 0x80 label types are refused),
 *   a name is at most 255 octets in wire form, root label included;
 * - the section counts must fit the bytes that follow the header (a
 *   question takes at least 5, a record at least 11) and the limits
 *   below, before anything is allocated;
 * - A, AAAA, MX, PTR, NS, CNAME and SOA data (class IN) must fill their
 *   RDLENGTH exactly; any other record is kept as raw bytes;
 * - nothing may follow the last record.
 */
#ifndef MTA_SIM_DNSMSG_H
#define MTA_SIM_DNSMSG_H

#include <stddef.h>
#include <stdint.h>

#define DNSMSG_HDR_LEN		12
#define DNSMSG_NAME_MAX		255	/* wire octets, root label included */
#define DNSMSG_LABEL_MAX	63
#define DNSMSG_TEXT_MAX		1024	/* any name's text form, NUL included */
#define DNSMSG_PTR_MAX		127	/* compression pointers in one name */
#define DNSMSG_QD_MAX		16	/* questions in one message */
#define DNSMSG_RR_MAX		1024	/* records in one message, all sections */
#define DNSMSG_UDP_MAX		512	/* without EDNS (RFC 1035 4.2.1) */
#define DNSMSG_MSG_MAX		65535	/* TCP length prefix */

/* Header flags (second 16-bit word). */
#define DNSMSG_F_QR		0x8000
#define DNSMSG_F_AA		0x0400
#define DNSMSG_F_TC		0x0200
#define DNSMSG_F_RD		0x0100
#define DNSMSG_F_RA		0x0080
#define DNSMSG_OPCODE(f)	(((f) >> 11) & 0xf)
#define DNSMSG_RCODE(f)		((f) & 0xf)

#define DNSMSG_C_IN		1

enum dnsmsg_type {
	DNSMSG_T_A = 1,
	DNSMSG_T_NS = 2,
	DNSMSG_T_CNAME = 5,
	DNSMSG_T_SOA = 6,
	DNSMSG_T_PTR = 12,
	DNSMSG_T_MX = 15,
	DNSMSG_T_TXT = 16,
	DNSMSG_T_AAAA = 28,
	DNSMSG_T_OPT = 41,
	DNSMSG_T_ANY = 255
};

enum dnsmsg_rcode {
	DNSMSG_R_NOERROR = 0,
	DNSMSG_R_FORMERR = 1,
	DNSMSG_R_SERVFAIL = 2,
	DNSMSG_R_NXDOMAIN = 3,
	DNSMSG_R_NOTIMP = 4,
	DNSMSG_R_REFUSED = 5
};

/* A name in uncompressed wire form: length-prefixed labels, then 0. */
struct dnsmsg_name {
	size_t		len;			/* 1 (the root) .. DNSMSG_NAME_MAX */
	unsigned char	wire[DNSMSG_NAME_MAX];
};

struct dnsmsg_question {
	struct dnsmsg_name	name;
	uint16_t		type;
	uint16_t		class;
};

struct dnsmsg_soa {
	struct dnsmsg_name	mname, rname;
	uint32_t		serial, refresh, retry, expire, minimum;
};

struct dnsmsg_rr {
	struct dnsmsg_name	name;
	uint16_t		type;
	uint16_t		class;
	uint32_t		ttl;
	union {
		unsigned char		a[4];
		unsigned char		aaaa[16];
		struct {
			uint16_t		pref;
			struct dnsmsg_name	host;
		}			mx;
		struct dnsmsg_name	target;	/* PTR, NS, CNAME */
		struct dnsmsg_soa	soa;
		struct {
			const unsigned char	*data;	/* into the parsed input */
			uint16_t		 len;
		}			raw;	/* other types and classes */
	} rd;
};

/*
 * A whole message. dnsmsg_parse() allocates qd and rr, and dnsmsg_clear()
 * frees them; a message put together by hand for dnsmsg_build() points
 * at the caller's arrays and is never cleared.
 */
struct dnsmsg {
	uint16_t		 id;
	uint16_t		 flags;		/* DNSMSG_F_*, opcode, rcode */
	struct dnsmsg_question	*qd;
	size_t			 nqd;
	struct dnsmsg_rr	*rr;		/* answer, authority, additional */
	size_t			 nan, nns, nar;
	int			 owned;		/* qd and rr came from dnsmsg_parse() */
};

/*
 * Parse p[0..len). Returns 0, or -1 with *err set to a static message
 * (m is then cleared and owns nothing). Raw record data points into p.
 */
int		 dnsmsg_parse(struct dnsmsg *m, const unsigned char *p,
		    size_t len, const char **err);
void		 dnsmsg_clear(struct dnsmsg *m);
/* The header's ID and flags, for an answer to a message that does not parse. */
int		 dnsmsg_peek(const unsigned char *p, size_t len, uint16_t *id,
		    uint16_t *flags);

/*
 * Wire form of m into out[0..cap), names compressed. Returns 0 with
 * *outlen set, or -1 with *err set ("message too long" when it does not
 * fit cap or DNSMSG_MSG_MAX; a malformed name or a count over 65535
 * otherwise). Nothing past *outlen is meaningful.
 */
int		 dnsmsg_build(const struct dnsmsg *m, unsigned char *out,
		    size_t cap, size_t *outlen, const char **err);

/*
 * Text form: labels joined by '.', no trailing dot; the root is ".".
 * Letters, digits, '-', '_', '*' and '/' stand for themselves; other
 * printable octets are escaped as "\X" and the rest as "\DDD".
 * from_text takes the same form, with one optional trailing dot. Returns
 * 0, or -1 (*err set; to_text: dst too small or a malformed name).
 */
int		 dnsmsg_name_from_text(struct dnsmsg_name *, const char *text,
		    const char **err);
int		 dnsmsg_name_to_text(const struct dnsmsg_name *, char *dst,
		    size_t dstsz);
/* Equal, ASCII letters compared without case (RFC 4343). */
int		 dnsmsg_name_eq(const struct dnsmsg_name *,
		    const struct dnsmsg_name *);
/* Is name equal to zone or below it? */
int		 dnsmsg_name_under(const struct dnsmsg_name *name,
		    const struct dnsmsg_name *zone);
/* Labels before the root: 0 for the root. */
size_t		 dnsmsg_name_labels(const struct dnsmsg_name *);

/* "A", "MX"... or NULL; parse also takes "TYPE123". Case-insensitive. */
const char	*dnsmsg_type_name(uint16_t type);
int		 dnsmsg_type_parse(const char *, uint16_t *type);
const char	*dnsmsg_rcode_name(unsigned rcode);

#endif
