/*
 * detect: card numbers, SSNs, IBANs, keyword lists and regexes.
 *
 * The fixed-format scanners (cards, SSN, IBAN) share one shape: jump to
 * the next digit eight bytes at a time, look at the few bytes around it,
 * then skip the rest of the digit run. Nothing is allocated and nothing
 * backtracks further than one candidate's own bytes (at most 19 digits
 * and their separators), so each is one pass over the text.
 *
 * The keyword matcher is an Aho-Corasick automaton flattened into a DFA
 * over byte classes: one table load per text byte. The regex matcher is
 * PCRE2 with JIT and hard per-attempt limits.
 *
 * docs/detection.md is the user-facing statement of what matches.
 */
#include "detect.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- character helpers ---------------------------------------------- */

static inline int
detect_isdigit(unsigned char c)
{
	return (unsigned)(c - '0') < 10;
}

static inline int
detect_isalpha(unsigned char c)
{
	return (unsigned)((c | 0x20) - 'a') < 26;
}

static inline int
detect_isalnum(unsigned char c)
{
	return detect_isdigit(c) || detect_isalpha(c);
}

/* Word characters for whole-word keywords: UTF-8 letters count as word. */
static inline int
detect_isword(unsigned char c)
{
	return detect_isalnum(c) || c == '_' || c >= 0x80;
}

static inline int
detect_isspace(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static inline unsigned char
detect_upper(unsigned char c)
{
	return (unsigned)(c - 'a') < 26 ? (unsigned char)(c - 0x20) : c;
}

static inline unsigned char
detect_lower(unsigned char c)
{
	return (unsigned)(c - 'A') < 26 ? (unsigned char)(c + 0x20) : c;
}

#define U(s, i)		((unsigned char)(s)[i])

#define ONES		0x0101010101010101ULL
#define HIGHS		0x8080808080808080ULL

/*
 * The top bit of each byte of x that lies in '0'..'9': the classic
 * "byte between m and n" test. No sum crosses a byte boundary (low is
 * at most 0x7f), so each byte's bit is exact; ~x drops bytes with the
 * top bit set.
 */
static inline uint64_t
detect_digit_bits(uint64_t x)
{
	uint64_t low = x & (ONES * 0x7f);

	return (ONES * (0x7f + ('9' + 1)) - low) & ~x &
	    (low + ONES * (0x7f - ('0' - 1))) & HIGHS;
}

/* Index of the first digit at or after i, or n. */
static size_t
detect_next_digit(const char *s, size_t i, size_t n)
{
	uint64_t x, m;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, s + i, 8);
		if ((m = detect_digit_bits(x)) != 0)
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			return i + ((size_t)__builtin_clzll(m) >> 3);
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return i + ((size_t)__builtin_ctzll(m) >> 3);
#else
#error "detect_next_digit: unknown byte order"
#endif
	}
	for (; i < n; i++)
		if (detect_isdigit(U(s, i)))
			return i;
	return n;
}

static size_t
detect_skip_digits(const char *s, size_t i, size_t n)
{
	while (i < n && detect_isdigit(U(s, i)))
		i++;
	return i;
}

static size_t
detect_skip_alnum(const char *s, size_t i, size_t n)
{
	while (i < n && detect_isalnum(U(s, i)))
		i++;
	return i;
}

/* ---- samples -------------------------------------------------------- */

static void
detect_sample_clear(char *sample, size_t samplesz)
{
	if (sample != NULL && samplesz > 0)
		sample[0] = '\0';
}

/*
 * Copy a masked value; when the buffer is short keep the tail, which is
 * the part a reader can use (the last four digits).
 */
static void
detect_sample_tail(char *sample, size_t samplesz, const char *v, size_t len)
{
	if (sample == NULL || samplesz == 0)
		return;
	if (len > samplesz - 1) {
		v += len - (samplesz - 1);
		len = samplesz - 1;
	}
	memcpy(sample, v, len);
	sample[len] = '\0';
}

static void
detect_sample_head(char *sample, size_t samplesz, const char *v, size_t len)
{
	if (sample == NULL || samplesz == 0)
		return;
	if (len > samplesz - 1)
		len = samplesz - 1;
	memcpy(sample, v, len);
	sample[len] = '\0';
}

/*
 * Mask free-form text (a regex match): every ASCII letter or digit but
 * the last four becomes '*', each non-ASCII character one '*', controls
 * '.', other printable ASCII is kept. Works backwards so that a huge
 * match costs only as much as the buffer it fills; a cut-off head is
 * shown as "...".
 */
static void
detect_mask_text(const char *m, size_t len, char *sample, size_t samplesz)
{
	char tmp[DETECT_SAMPLE_MAX];
	size_t cap, k = 0, j = len, kept = 0, a, b;
	unsigned char c;
	char t;

	if (sample == NULL || samplesz == 0)
		return;
	cap = samplesz - 1 < sizeof(tmp) ? samplesz - 1 : sizeof(tmp);
	while (j > 0 && k < cap) {
		c = U(m, --j);
		if (c >= 0x80) {
			while (j > 0 && (c & 0xc0) == 0x80)
				c = U(m, --j);
			t = '*';
		} else if (detect_isalnum(c))
			t = kept++ < 4 ? (char)c : '*';
		else if (c < 0x20 || c == 0x7f)
			t = '.';
		else
			t = (char)c;
		tmp[k++] = t;
	}
	if (j > 0 && k >= 3)
		tmp[k - 1] = tmp[k - 2] = tmp[k - 3] = '.';
	for (a = 0, b = k; a < k; a++)
		sample[a] = tmp[--b];
	sample[k] = '\0';
}

const char *
detect_strerror(int status)
{
	switch (status) {
	case DETECT_OK:
		return "ok";
	case DETECT_ELIMIT:
		return "regex match limit reached";
	case DETECT_EMATCH:
		return "regex match error";
	}
	return "unknown detect status";
}

static void detect_err(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
detect_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- payment cards -------------------------------------------------- */

#define CARD_MIN	13
#define CARD_MAX	19
/* First group 4 digits, middle groups 4 or 6, so 5 groups reach 19. */
#define CARD_GROUPS	5
#define LEN(n)		(1u << (n))
#define LENS(a, b)	((LEN((b) + 1) - 1) & ~(LEN(a) - 1))

/* Issuer prefixes: first match wins, so specific ranges come first. */
struct detect_card_iin {
	const char	*brand;
	unsigned	 lo, hi;	/* prefix range, inclusive */
	unsigned	 digits;	/* prefix length */
	uint32_t	 lengths;	/* bit n set: n digits allowed */
};

static const struct detect_card_iin detect_card_iins[] = {
	{ "visa",	4,	4,	1, LEN(13) | LEN(16) | LEN(19) },
	{ "mastercard",	51,	55,	2, LEN(16) },
	{ "mastercard",	2221,	2720,	4, LEN(16) },
	{ "amex",	34,	34,	2, LEN(15) },
	{ "amex",	37,	37,	2, LEN(15) },
	{ "discover",	6011,	6011,	4, LENS(16, 19) },
	{ "discover",	644,	649,	3, LENS(16, 19) },
	{ "discover",	65,	65,	2, LENS(16, 19) },
	{ "jcb",	3528,	3589,	4, LENS(16, 19) },
	{ "diners",	300,	305,	3, LENS(14, 19) },
	{ "diners",	36,	36,	2, LENS(14, 19) },
	{ "diners",	38,	38,	2, LENS(14, 19) },
	{ "unionpay",	62,	62,	2, LENS(16, 19) },
	{ "maestro",	50,	50,	2, LENS(13, 19) },
	{ "maestro",	56,	69,	2, LENS(13, 19) },
};

#define CARD_NIINS	(sizeof(detect_card_iins) / sizeof(detect_card_iins[0]))

static int
detect_card_luhn(const char *d, size_t n)
{
	unsigned sum = 0, v;
	size_t i;
	int dbl = 0;

	for (i = n; i-- > 0; dbl = !dbl) {
		v = (unsigned)(d[i] - '0');
		if (dbl && (v *= 2) > 9)
			v -= 9;
		sum += v;
	}
	return sum % 10 == 0;
}

const char *
detect_card_brand(const char *d, size_t n)
{
	const struct detect_card_iin *e;
	unsigned prefix;
	size_t i, k;

	if (n < CARD_MIN || n > CARD_MAX)
		return NULL;
	for (i = 0; i < n; i++)
		if (!detect_isdigit(U(d, i)))
			return NULL;
	for (i = 1; i < n && d[i] == d[0]; i++)
		;
	if (i == n)
		return NULL;
	for (k = 0; k < CARD_NIINS; k++) {
		e = &detect_card_iins[k];
		if ((e->lengths & LEN(n)) == 0)
			continue;
		for (prefix = 0, i = 0; i < e->digits; i++)
			prefix = prefix * 10 + (unsigned)(d[i] - '0');
		if (prefix >= e->lo && prefix <= e->hi)
			return detect_card_luhn(d, n) ? e->brand : NULL;
	}
	return NULL;
}

struct detect_card_grp {
	size_t	off;
	size_t	len;
};

/* 4, then 4 or 6 for every middle group, then 1 to 6. */
static int
detect_card_layout_ok(const struct detect_card_grp *g, size_t ng)
{
	size_t i;

	if (ng < 2 || g[0].len != 4 || g[ng - 1].len > 6)
		return 0;
	for (i = 1; i + 1 < ng; i++)
		if (g[i].len != 4 && g[i].len != 6)
			return 0;
	return 1;
}

/* Join ng groups into d; returns the digit count, 0 when out of range. */
static size_t
detect_card_gather(const char *s, const struct detect_card_grp *g, size_t ng,
    char *d)
{
	size_t i, total = 0;

	for (i = 0; i < ng; i++)
		total += g[i].len;
	if (total < CARD_MIN || total > CARD_MAX)
		return 0;
	for (total = 0, i = 0; i < ng; i++) {
		memcpy(d + total, s + g[i].off, g[i].len);
		total += g[i].len;
	}
	return total;
}

/*
 * A plain digit group of at most 6 digits starting at p, standing alone
 * on its right: not glued to a letter, not continued by "-1" or ".1".
 * Returns its end, or 0.
 */
static size_t
detect_card_space_group(const char *s, size_t n, size_t p)
{
	size_t r = detect_skip_digits(s, p, n);

	if (r - p > 6)
		return 0;
	if (r < n && detect_isalnum(U(s, r)))
		return 0;
	if (r + 1 < n && (s[r] == '-' || s[r] == '.') &&
	    detect_isdigit(U(s, r + 1)))
		return 0;
	return r;
}

/*
 * Try a card starting at the digit s[p] (left side already free of
 * letters). On a match fill d/nd and return 1; always set *next to where
 * scanning resumes.
 */
static int
detect_card_try(const char *s, size_t n, size_t p, size_t *next, char *d,
    size_t *nd)
{
	struct detect_card_grp g[CARD_GROUPS];
	size_t q = p, st, ng = 0, total = 0, k, r;
	int left_bad;

	/* the tail of a dashed or dotted digit run that began earlier */
	left_bad = p >= 2 && (s[p - 1] == '-' || s[p - 1] == '.') &&
	    detect_isdigit(U(s, p - 2));

	/* the word: digit groups joined by single dashes */
	for (;;) {
		st = q;
		q = detect_skip_digits(s, q, n);
		if (ng < CARD_GROUPS) {
			g[ng].off = st;
			g[ng].len = q - st;
		}
		ng++;
		total += q - st;
		if (q + 1 < n && s[q] == '-' && detect_isdigit(U(s, q + 1))) {
			q++;
			continue;
		}
		break;
	}
	*next = q;
	if (q < n && detect_isalnum(U(s, q))) {
		*next = detect_skip_alnum(s, q, n);
		return 0;
	}
	if (left_bad || (q + 1 < n && s[q] == '.' &&
	    detect_isdigit(U(s, q + 1))))
		return 0;

	if (ng > 1) {
		if (ng > CARD_GROUPS || total > CARD_MAX ||
		    !detect_card_layout_ok(g, ng))
			return 0;
		*nd = detect_card_gather(s, g, ng, d);
		return *nd > 0 && detect_card_brand(d, *nd) != NULL;
	}
	if (total >= CARD_MIN && total <= CARD_MAX) {
		memcpy(d, s + p, total);
		*nd = total;
		return detect_card_brand(d, total) != NULL;
	}
	if (total != 4)
		return 0;

	/* 4111 1111 1111 1111: each group a separate word */
	while (ng < CARD_GROUPS && q + 1 < n && s[q] == ' ' &&
	    detect_isdigit(U(s, q + 1))) {
		if ((r = detect_card_space_group(s, n, q + 1)) == 0)
			break;
		g[ng].off = q + 1;
		g[ng].len = r - (q + 1);
		ng++;
		q = r;
	}
	/* longest first: "4111 1111 1111 1111 2026" is a card and a year */
	for (k = ng; k >= 3; k--) {
		if (!detect_card_layout_ok(g, k))
			continue;
		if ((*nd = detect_card_gather(s, g, k, d)) == 0)
			continue;
		if (detect_card_brand(d, *nd) != NULL) {
			*next = g[k - 1].off + g[k - 1].len;
			return 1;
		}
	}
	return 0;
}

size_t
detect_cards(const char *s, size_t n, char *sample, size_t samplesz)
{
	char d[CARD_MAX], m[CARD_MAX];
	size_t i = 0, next, nd, count = 0;

	detect_sample_clear(sample, samplesz);
	while ((i = detect_next_digit(s, i, n)) < n) {
		if (i > 0 && detect_isalnum(U(s, i - 1))) {
			i = detect_skip_alnum(s, i, n);
			continue;
		}
		if (detect_card_try(s, n, i, &next, d, &nd)) {
			if (count++ == 0) {
				memset(m, '*', nd - 4);
				memcpy(m + nd - 4, d + nd - 4, 4);
				detect_sample_tail(sample, samplesz, m, nd);
			}
		}
		i = next;
	}
	return count;
}

/* ---- US social security numbers ------------------------------------- */

static unsigned
detect_num(const char *s, size_t len)
{
	unsigned v = 0;

	while (len-- > 0)
		v = v * 10 + (unsigned)(*s++ - '0');
	return v;
}

/* ddd-dd-dddd or ddd dd dddd at s[p], p's left neighbour not alnum. */
static int
detect_ssn_try(const char *s, size_t n, size_t p)
{
	static const int digit_at[] = { 0, 1, 2, 4, 5, 7, 8, 9, 10 };
	unsigned area, group, serial;
	size_t i, e;
	char sep;

	if (n - p < 11)
		return 0;
	sep = s[p + 3];
	if ((sep != '-' && sep != ' ') || s[p + 6] != sep)
		return 0;
	for (i = 0; i < sizeof(digit_at) / sizeof(digit_at[0]); i++)
		if (!detect_isdigit(U(s, p + (size_t)digit_at[i])))
			return 0;
	/* word boundaries, and not a piece of a longer separated number */
	e = p + 11;
	if (e < n && detect_isalnum(U(s, e)))
		return 0;
	if (e + 1 < n && (s[e] == sep || s[e] == '.') &&
	    detect_isdigit(U(s, e + 1)))
		return 0;
	if (p >= 2 && (s[p - 1] == sep || s[p - 1] == '.') &&
	    detect_isdigit(U(s, p - 2)))
		return 0;

	area = detect_num(s + p, 3);
	group = detect_num(s + p + 4, 2);
	serial = detect_num(s + p + 7, 4);
	if (area == 0 || area == 666 || area >= 900 || group == 0 ||
	    serial == 0)
		return 0;
	/* printed on sample cards and in advertising, used by thousands */
	if ((area == 78 && group == 5 && serial == 1120) ||
	    (area == 219 && group == 9 && serial == 9999))
		return 0;
	return 1;
}

size_t
detect_ssn(const char *s, size_t n, char *sample, size_t samplesz)
{
	char m[11];
	size_t i = 0, count = 0;

	detect_sample_clear(sample, samplesz);
	while ((i = detect_next_digit(s, i, n)) < n) {
		if (i > 0 && detect_isalnum(U(s, i - 1))) {
			i = detect_skip_alnum(s, i, n);
			continue;
		}
		if (detect_ssn_try(s, n, i)) {
			if (count++ == 0) {
				memcpy(m, "***-**-", 7);
				memcpy(m + 7, s + i + 7, 4);
				detect_sample_tail(sample, samplesz, m, 11);
			}
			i += 11;
			continue;
		}
		i = detect_skip_digits(s, i, n);
	}
	return count;
}

/* ---- IBANs ---------------------------------------------------------- */

#define IBAN_MAX	34

/* The IBAN registry: country code and total length. Sorted by code. */
static const struct detect_iban_country {
	char		cc[3];
	unsigned char	len;
} detect_iban_countries[] = {
	{ "AD", 24 }, { "AE", 23 }, { "AL", 28 }, { "AT", 20 }, { "AZ", 28 },
	{ "BA", 20 }, { "BE", 16 }, { "BG", 22 }, { "BH", 22 }, { "BI", 27 },
	{ "BR", 29 }, { "BY", 28 }, { "CH", 21 }, { "CR", 22 }, { "CY", 28 },
	{ "CZ", 24 }, { "DE", 22 }, { "DJ", 27 }, { "DK", 18 }, { "DO", 28 },
	{ "EE", 20 }, { "EG", 29 }, { "ES", 24 }, { "FI", 18 }, { "FK", 18 },
	{ "FO", 18 }, { "FR", 27 }, { "GB", 22 }, { "GE", 22 }, { "GI", 23 },
	{ "GL", 18 }, { "GR", 27 }, { "GT", 28 }, { "HN", 28 }, { "HR", 21 },
	{ "HU", 28 }, { "IE", 22 }, { "IL", 23 }, { "IQ", 23 }, { "IS", 26 },
	{ "IT", 27 }, { "JO", 30 }, { "KW", 30 }, { "KZ", 20 }, { "LB", 28 },
	{ "LC", 32 }, { "LI", 21 }, { "LT", 20 }, { "LU", 20 }, { "LV", 21 },
	{ "LY", 25 }, { "MC", 27 }, { "MD", 24 }, { "ME", 22 }, { "MK", 19 },
	{ "MN", 20 }, { "MR", 27 }, { "MT", 31 }, { "MU", 30 }, { "NI", 28 },
	{ "NL", 18 }, { "NO", 15 }, { "OM", 23 }, { "PK", 24 }, { "PL", 28 },
	{ "PS", 29 }, { "PT", 25 }, { "QA", 29 }, { "RO", 24 }, { "RS", 22 },
	{ "RU", 33 }, { "SA", 24 }, { "SC", 31 }, { "SD", 18 }, { "SE", 24 },
	{ "SI", 19 }, { "SK", 24 }, { "SM", 27 }, { "SO", 23 }, { "ST", 25 },
	{ "SV", 28 }, { "TL", 23 }, { "TN", 24 }, { "TR", 26 }, { "UA", 29 },
	{ "VA", 22 }, { "VG", 24 }, { "XK", 20 }, { "YE", 30 },
};

#define IBAN_NCOUNTRIES	\
	(sizeof(detect_iban_countries) / sizeof(detect_iban_countries[0]))

static unsigned
detect_iban_lookup(unsigned char c0, unsigned char c1)
{
	size_t lo = 0, hi = IBAN_NCOUNTRIES, mid;
	int d;

	c0 = detect_upper(c0);
	c1 = detect_upper(c1);
	while (lo < hi) {
		mid = (lo + hi) / 2;
		d = (int)c0 - detect_iban_countries[mid].cc[0];
		if (d == 0)
			d = (int)c1 - detect_iban_countries[mid].cc[1];
		if (d == 0)
			return detect_iban_countries[mid].len;
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

unsigned
detect_iban_length(const char *cc)
{
	if (cc == NULL || cc[0] == '\0' || cc[1] == '\0' || cc[2] != '\0')
		return 0;
	return detect_iban_lookup(U(cc, 0), U(cc, 1));
}

/* Moves the first four characters to the end; letters count as 10..35. */
static int
detect_iban_mod97(const char *v, size_t len)
{
	unsigned r = 0;
	size_t i, k;
	unsigned char c;

	for (i = 0; i < len; i++) {
		k = (i + 4) % len;
		c = U(v, k);
		if (detect_isdigit(c))
			r = (r * 10 + (unsigned)(c - '0')) % 97;
		else
			r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
	}
	return r == 1;
}

/*
 * An IBAN at s[p] (two letters, then at least two digits; left side
 * checked by the caller). Normalises into v and returns the end, or 0.
 */
static size_t
detect_iban_try(const char *s, size_t n, size_t p, char *v, size_t *vlen)
{
	size_t len, k, q;
	int spaced;

	if ((len = detect_iban_lookup(U(s, p), U(s, p + 1))) == 0)
		return 0;
	/* check digits run 02..98; 00, 01 and 99 pass mod-97 by accident */
	if ((s[p + 2] == '0' && s[p + 3] <= '1') ||
	    (s[p + 2] == '9' && s[p + 3] == '9'))
		return 0;
	for (k = 0; k < 4; k++)
		v[k] = (char)detect_upper(U(s, p + k));
	q = p + 4;
	spaced = q + 1 < n && s[q] == ' ' && detect_isalnum(U(s, q + 1));
	for (k = 4; k < len; k++) {
		if (spaced && k % 4 == 0) {
			if (q >= n || s[q] != ' ')
				return 0;
			q++;
		}
		if (q >= n || !detect_isalnum(U(s, q)))
			return 0;
		v[k] = (char)detect_upper(U(s, q));
		q++;
	}
	if (q < n && detect_isalnum(U(s, q)))
		return 0;
	if (!detect_iban_mod97(v, len))
		return 0;
	*vlen = len;
	return q;
}

size_t
detect_iban(const char *s, size_t n, char *sample, size_t samplesz)
{
	char v[IBAN_MAX];
	size_t i = 0, end, vlen, count = 0;

	detect_sample_clear(sample, samplesz);
	while ((i = detect_next_digit(s, i, n)) < n) {
		/* check digits: two letters before, a word start before that */
		if (i >= 2 && i + 1 < n && detect_isdigit(U(s, i + 1)) &&
		    detect_isalpha(U(s, i - 1)) &&
		    detect_isalpha(U(s, i - 2)) &&
		    (i == 2 || !detect_isalnum(U(s, i - 3))) &&
		    (end = detect_iban_try(s, n, i - 2, v, &vlen)) != 0) {
			if (count++ == 0) {
				memset(v + 2, '*', vlen - 6);
				detect_sample_tail(sample, samplesz, v, vlen);
			}
			i = end;
			continue;
		}
		i = detect_skip_digits(s, i, n);
	}
	return count;
}

/* ---- keyword lists: Aho-Corasick DFA -------------------------------- */

#define KW_MATCH	0x80000000u	/* on a transition: target has output */
#define KW_STREAMS	4		/* detect_kw_count() assumes 4 */
#define KW_SPLIT_MIN	512u		/* shorter texts run as one stream, */
#define KW_SPLIT_TERM	32u		/* and texts under 32 x the longest term */
#define KW_NONE		UINT32_MAX	/* no trie edge (build time only) */

struct detect_kw_term {
	const char	*orig;		/* as given */
	const char	*norm;		/* folded, whitespace runs collapsed */
	uint32_t	 len;		/* of norm */
	unsigned char	 word_first;	/* norm begins with a word byte */
	unsigned char	 word_last;
	unsigned char	 has_space;
};

struct detect_kw {
	unsigned	 flags;
	uint32_t	 nclasses;
	uint64_t	 recip;		/* ceil(2^32 / nclasses) */
	unsigned char	 cls[256];
	/*
	 * delta[state * nclasses + class] = next * nclasses, plus KW_MATCH
	 * when the next state ends at least one term.
	 */
	uint32_t	*delta;
	uint32_t	 nstates;
	uint32_t	*cnt;		/* terms ending here, with suffixes */
	int32_t		*term;		/* term equal to this state's string */
	uint32_t	*dict;		/* nearest proper suffix with a term */
	struct detect_kw_term	*terms;
	size_t		 nterms;
	size_t		 maxlen;	/* longest normalised term */
	char		*strings;
};

/*
 * Grow the dense trie rows; new rows have no edges. Returns -1 past
 * DETECT_KW_MAX_TABLE, -2 when memory runs out.
 */
static int
detect_kw_grow(struct detect_kw *kw, uint32_t *cap, unsigned char **inws)
{
	size_t ncap = *cap * 2, nc = kw->nclasses, i;
	uint32_t *d;
	int32_t *t;
	unsigned char *w;

	if (ncap * nc * sizeof(uint32_t) > DETECT_KW_MAX_TABLE)
		ncap = DETECT_KW_MAX_TABLE / (nc * sizeof(uint32_t));
	if (ncap <= *cap)
		return -1;
	if ((d = realloc(kw->delta, ncap * nc * sizeof(*d))) == NULL)
		return -2;
	kw->delta = d;
	for (i = *cap * nc; i < ncap * nc; i++)
		d[i] = KW_NONE;
	if ((t = realloc(kw->term, ncap * sizeof(*t))) == NULL)
		return -2;
	kw->term = t;
	if ((w = realloc(*inws, ncap)) == NULL)
		return -2;
	*inws = w;
	*cap = (uint32_t)ncap;
	return 0;
}

/* Folded copy of term into dst; whitespace runs become one space. */
static size_t
detect_kw_normalize(const char *term, char *dst)
{
	size_t k = 0;
	unsigned char c;

	for (; *term != '\0'; term++) {
		c = (unsigned char)*term;
		if (detect_isspace(c)) {
			if (k > 0 && dst[k - 1] == ' ')
				continue;
			c = ' ';
		}
		dst[k++] = (char)detect_lower(c);
	}
	return k;
}

static void
detect_kw_build_classes(struct detect_kw *kw)
{
	unsigned char seen[256];
	size_t i, j;
	unsigned next = 1;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < kw->nterms; i++)
		for (j = 0; j < kw->terms[i].len; j++)
			seen[U(kw->terms[i].norm, j)] = 1;
	memset(kw->cls, 0, sizeof(kw->cls));
	for (i = 0; i < 256; i++)
		if (seen[i])
			kw->cls[i] = (unsigned char)next++;
	for (i = 'A'; i <= 'Z'; i++)
		kw->cls[i] = kw->cls[i + 0x20];
	for (i = '\t'; i <= '\r'; i++)
		kw->cls[i] = kw->cls[' '];
	kw->nclasses = next;
	kw->recip = ((1ULL << 32) + next - 1) / next;
}

/* Breadth-first: fail links, dense transitions, output counts. */
static int
detect_kw_link(struct detect_kw *kw, const unsigned char *inws)
{
	uint32_t nc = kw->nclasses, ns = kw->nstates, head = 0, tail = 0;
	uint32_t s, t, c, f, wscls = kw->cls[' '];
	uint32_t *fail, *queue, *d = kw->delta;

	fail = calloc(ns, sizeof(*fail));
	queue = calloc(ns, sizeof(*queue));
	kw->cnt = calloc(ns, sizeof(*kw->cnt));
	kw->dict = calloc(ns, sizeof(*kw->dict));
	if (fail == NULL || queue == NULL || kw->cnt == NULL ||
	    kw->dict == NULL) {
		free(fail);
		free(queue);
		return -1;
	}
	for (c = 0; c < nc; c++) {
		if ((t = d[c]) == KW_NONE)
			d[c] = 0;
		else
			queue[tail++] = t;	/* fail[t] = 0 */
	}
	while (head < tail) {
		s = queue[head++];
		f = fail[s];
		kw->cnt[s] = (kw->term[s] >= 0) + kw->cnt[f];
		kw->dict[s] = kw->term[f] >= 0 ? f : kw->dict[f];
		for (c = 0; c < nc; c++) {
			t = d[s * nc + c];
			if (t == KW_NONE) {
				d[s * nc + c] = d[f * nc + c];
				continue;
			}
			fail[t] = d[f * nc + c];
			queue[tail++] = t;
		}
	}
	/* premultiply and flag; matches are rare, the flag saves a load */
	for (s = 0; s < ns; s++)
		for (c = 0; c < nc; c++) {
			t = d[s * nc + c];
			d[s * nc + c] = t * nc | (kw->cnt[t] ? KW_MATCH : 0);
		}
	/*
	 * More whitespace after whitespace leaves the state alone, which is
	 * exactly matching against the text with each run squeezed to one
	 * space. The loop carries no match flag: a term is not found twice
	 * in "foo   " because of the extra spaces.
	 */
	if (wscls != 0)
		for (s = 1; s < ns; s++)
			if (inws[s])
				d[s * nc + wscls] = s * nc;
	free(fail);
	free(queue);
	return 0;
}

struct detect_kw *
detect_kw_compile(const char *const *terms, size_t n, unsigned flags,
    char *err, size_t errlen)
{
	struct detect_kw *kw;
	unsigned char *inws = NULL;
	size_t i, j, total = 0, len, off;
	uint32_t cap = 64, st, nc, c, *slot;
	char *p;
	int rc;

	if (n > INT32_MAX) {
		detect_err(err, errlen, "too many keywords (%zu)", n);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (terms[i] == NULL) {
			detect_err(err, errlen, "keyword %zu is missing",
			    i + 1);
			return NULL;
		}
		len = strlen(terms[i]);
		if (len > DETECT_KW_MAX_TERM) {
			detect_err(err, errlen, "keyword %zu is too long",
			    i + 1);
			return NULL;
		}
		total += 2 * (len + 1);
	}
	if ((kw = calloc(1, sizeof(*kw))) == NULL)
		goto nomem;
	kw->flags = flags;
	kw->nterms = n;
	if ((kw->terms = calloc(n ? n : 1, sizeof(*kw->terms))) == NULL ||
	    (kw->strings = malloc(total ? total : 1)) == NULL)
		goto nomem;
	for (off = 0, i = 0; i < n; i++) {
		struct detect_kw_term *t = &kw->terms[i];

		p = kw->strings + off;
		len = strlen(terms[i]);
		memcpy(p, terms[i], len + 1);
		t->orig = p;
		p += len + 1;
		t->norm = p;
		t->len = (uint32_t)detect_kw_normalize(terms[i], p);
		p[t->len] = '\0';
		off += len + 1 + t->len + 1;
		if (t->len == 0) {
			detect_err(err, errlen, "keyword %zu is empty", i + 1);
			goto fail;
		}
		t->word_first = detect_isword(U(t->norm, 0));
		t->word_last = detect_isword(U(t->norm, t->len - 1));
		t->has_space = memchr(t->norm, ' ', t->len) != NULL;
		if (t->len > kw->maxlen)
			kw->maxlen = t->len;
	}

	detect_kw_build_classes(kw);
	nc = kw->nclasses;
	if ((kw->delta = malloc((size_t)cap * nc * sizeof(uint32_t))) == NULL ||
	    (kw->term = malloc(cap * sizeof(int32_t))) == NULL ||
	    (inws = malloc(cap)) == NULL)
		goto nomem;
	for (j = 0; j < (size_t)cap * nc; j++)
		kw->delta[j] = KW_NONE;
	kw->nstates = 1;
	kw->term[0] = -1;
	inws[0] = 0;
	for (i = 0; i < n; i++) {
		const struct detect_kw_term *t = &kw->terms[i];

		for (st = 0, j = 0; j < t->len; j++) {
			c = kw->cls[U(t->norm, j)];
			slot = &kw->delta[(size_t)st * nc + c];
			if (*slot != KW_NONE) {
				st = *slot;
				continue;
			}
			if (kw->nstates == cap) {
				rc = detect_kw_grow(kw, &cap, &inws);
				if (rc == -2)
					goto nomem;
				if (rc == -1) {
					detect_err(err, errlen, "keyword list "
					    "too large (over %u MB of tables)",
					    DETECT_KW_MAX_TABLE >> 20);
					goto fail;
				}
				slot = &kw->delta[(size_t)st * nc + c];
			}
			kw->term[kw->nstates] = -1;
			inws[kw->nstates] = t->norm[j] == ' ';
			st = *slot = kw->nstates++;
		}
		/* a duplicate (after folding) counts once, as the first */
		if (kw->term[st] < 0)
			kw->term[st] = (int32_t)i;
	}
	if (detect_kw_link(kw, inws) == -1)
		goto nomem;
	free(inws);
	return kw;

nomem:
	detect_err(err, errlen, "out of memory compiling %zu keywords", n);
fail:
	free(inws);
	detect_kw_free(kw);
	return NULL;
}

/*
 * The state number behind a premultiplied offset, without a division on
 * every match: off is an exact multiple of nclasses and below 2^24
 * (DETECT_KW_MAX_TABLE), so the rounded-up reciprocal is exact.
 */
_Static_assert(DETECT_KW_MAX_TABLE / sizeof(uint32_t) <= (1u << 24),
    "detect_kw_state() needs offsets below 2^24");

static inline uint32_t
detect_kw_state(const struct detect_kw *kw, uint32_t off)
{
	return (uint32_t)((off * kw->recip) >> 32);
}

/*
 * Where a match of t ending just before end began in the text: a space
 * in the term stands for a whole whitespace run there.
 */
static size_t
detect_kw_match_start(const char *s, size_t end, const struct detect_kw_term *t)
{
	size_t j, pos = end;

	if (!t->has_space)
		return end - t->len;
	for (j = t->len; j-- > 0;) {
		if (t->norm[j] == ' ') {
			while (pos > 0 && detect_isspace(U(s, pos - 1)))
				pos--;
		} else
			pos--;
	}
	return pos;
}

/*
 * One pass of the automaton over part of the text. Matches ending before
 * lo are not counted: they belong to the stream that owns those bytes.
 */
struct detect_kw_run {
	uint32_t	st;	/* premultiplied state */
	size_t		pos;	/* next byte */
	size_t		end;
	size_t		lo;
	size_t		count;
	int32_t		first;	/* term of the first counted match, or -1 */
};

/* Matches ending at byte i, the automaton now in offset st. */
static void
detect_kw_hit(const struct detect_kw *kw, const char *s, size_t n, size_t i,
    uint32_t st, struct detect_kw_run *r)
{
	const struct detect_kw_term *t;
	uint32_t state, k;
	size_t start;

	if (i < r->lo)
		return;
	state = detect_kw_state(kw, st);
	k = kw->term[state] >= 0 ? state : kw->dict[state];
	if ((kw->flags & DETECT_KW_WORD) == 0) {
		if (r->first < 0)
			r->first = kw->term[k];
		r->count += kw->cnt[state];
		return;
	}
	/* whole words: each term ending here is judged on its own */
	for (; k != 0; k = kw->dict[k]) {
		t = &kw->terms[kw->term[k]];
		if (t->word_last && i + 1 < n && detect_isword(U(s, i + 1)))
			continue;
		if (t->word_first) {
			start = detect_kw_match_start(s, i + 1, t);
			if (start > 0 && detect_isword(U(s, start - 1)))
				continue;
		}
		if (r->first < 0)
			r->first = kw->term[k];
		r->count++;
	}
}

static void
detect_kw_run_finish(const struct detect_kw *kw, const char *s, size_t n,
    struct detect_kw_run *r)
{
	const uint32_t *d = kw->delta;
	const unsigned char *cls = kw->cls;
	uint32_t v, st = r->st;
	size_t i;

	for (i = r->pos; i < r->end; i++) {
		v = d[st + cls[U(s, i)]];
		st = v & ~KW_MATCH;
		if (v & KW_MATCH)
			detect_kw_hit(kw, s, n, i, st, r);
	}
	r->st = st;
	r->pos = r->end;
}

/*
 * Where a stream owning bytes from b on must start so that its state is
 * right by b: far enough back for the deepest state, counting each
 * whitespace run as the one character the automaton sees.
 */
static size_t
detect_kw_warmup(const struct detect_kw *kw, const char *s, size_t b)
{
	size_t i = b, seen = 0;

	while (i > 0 && seen < kw->maxlen) {
		i--;
		if (detect_isspace(U(s, i)))
			while (i > 0 && detect_isspace(U(s, i - 1)))
				i--;
		seen++;
	}
	return i;
}

size_t
detect_kw_count(const struct detect_kw *kw, const char *s, size_t n,
    char *sample, size_t samplesz)
{
	const uint32_t *d = kw->delta;
	const unsigned char *cls = kw->cls;
	struct detect_kw_run r[KW_STREAMS];
	size_t i, k, steps, count = 0;
	uint32_t v0, v1, v2, v3;
	int32_t first = -1;

	detect_sample_clear(sample, samplesz);
	for (k = 0; k < KW_STREAMS; k++) {
		r[k].st = 0;
		r[k].pos = 0;
		r[k].lo = n * k / KW_STREAMS;
		r[k].end = n * (k + 1) / KW_STREAMS;
		r[k].count = 0;
		r[k].first = -1;
	}
	if (n < KW_SPLIT_MIN || n / KW_SPLIT_TERM < kw->maxlen) {
		r[0].end = n;
		detect_kw_run_finish(kw, s, n, &r[0]);
		count = r[0].count;
		first = r[0].first;
		goto done;
	}
	for (k = 1; k < KW_STREAMS; k++)
		r[k].pos = detect_kw_warmup(kw, s, r[k].lo);

	/*
	 * The automaton is one dependent load per byte: four independent
	 * streams over four quarters keep four loads in flight.
	 */
	for (steps = SIZE_MAX, k = 0; k < KW_STREAMS; k++)
		if (r[k].end - r[k].pos < steps)
			steps = r[k].end - r[k].pos;
	for (i = 0; i < steps; i++) {
		v0 = d[r[0].st + cls[U(s, r[0].pos + i)]];
		v1 = d[r[1].st + cls[U(s, r[1].pos + i)]];
		v2 = d[r[2].st + cls[U(s, r[2].pos + i)]];
		v3 = d[r[3].st + cls[U(s, r[3].pos + i)]];
		r[0].st = v0 & ~KW_MATCH;
		r[1].st = v1 & ~KW_MATCH;
		r[2].st = v2 & ~KW_MATCH;
		r[3].st = v3 & ~KW_MATCH;
		if (((v0 | v1 | v2 | v3) & KW_MATCH) == 0)
			continue;
		if (v0 & KW_MATCH)
			detect_kw_hit(kw, s, n, r[0].pos + i, r[0].st, &r[0]);
		if (v1 & KW_MATCH)
			detect_kw_hit(kw, s, n, r[1].pos + i, r[1].st, &r[1]);
		if (v2 & KW_MATCH)
			detect_kw_hit(kw, s, n, r[2].pos + i, r[2].st, &r[2]);
		if (v3 & KW_MATCH)
			detect_kw_hit(kw, s, n, r[3].pos + i, r[3].st, &r[3]);
	}
	for (k = 0; k < KW_STREAMS; k++) {
		r[k].pos += steps;
		detect_kw_run_finish(kw, s, n, &r[k]);
		count += r[k].count;
		if (first < 0)
			first = r[k].first;
	}
done:
	if (first >= 0)
		detect_sample_head(sample, samplesz, kw->terms[first].orig,
		    strlen(kw->terms[first].orig));
	return count;
}

size_t
detect_kw_nterms(const struct detect_kw *kw)
{
	return kw->nterms;
}

size_t
detect_kw_nstates(const struct detect_kw *kw)
{
	return kw->nstates;
}

void
detect_kw_free(struct detect_kw *kw)
{
	if (kw == NULL)
		return;
	free(kw->delta);
	free(kw->cnt);
	free(kw->term);
	free(kw->dict);
	free(kw->terms);
	free(kw->strings);
	free(kw);
}

/* ---- regular expressions: PCRE2 ------------------------------------- */

/*
 * UTF mode keeps two compiled copies. Mail is not always valid UTF-8,
 * and PCRE2_MATCH_INVALID_UTF copes with that, but PCRE2 10.42's JIT
 * gets \D, \S and \W wrong on multi-byte characters in that mode
 * (fixed upstream in 10.43). So a subject that validates goes to the
 * strict copy (JIT, no further UTF checks) and one that does not goes
 * to the lenient copy (MATCH_INVALID_UTF, interpreter).
 */
struct detect_re {
	pcre2_code		*code;
	pcre2_code		*lenient;	/* UTF mode only */
	pcre2_match_data	*md;
	pcre2_match_context	*mctx;
	pcre2_jit_stack		*jstack;
	int			 jit;
	int			 utf;
};

/*
 * Strict UTF-8 (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF), as PCRE2 checks it: a subject that passes here may be
 * matched with PCRE2_NO_UTF_CHECK.
 */
static int
detect_utf8_valid(const char *s, size_t n)
{
	size_t i = 0, k, need;
	unsigned char c, lo, hi;
	uint64_t x;

	while (i < n) {
		if (i + 8 <= n) {
			memcpy(&x, s + i, 8);
			if ((x & HIGHS) == 0) {
				i += 8;
				continue;
			}
		}
		c = U(s, i);
		if (c < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else
			return 0;
		if (n - i - 1 < need)
			return 0;
		c = U(s, i + 1);
		if (c < lo || c > hi)
			return 0;
		for (k = 2; k <= need; k++)
			if ((U(s, i + k) & 0xc0) != 0x80)
				return 0;
		i += need + 1;
	}
	return 1;
}

static pcre2_code *
detect_re_pcre(const char *pattern, size_t len, uint32_t opts, char *err,
    size_t errlen)
{
	pcre2_code *code;
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE eoff;
	int ecode;

	code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &ecode, &eoff,
	    NULL);
	if (code == NULL) {
		if (pcre2_get_error_message(ecode, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", ecode);
		detect_err(err, errlen, "%s at offset %zu", (const char *)msg,
		    (size_t)eoff);
	}
	return code;
}

struct detect_re *
detect_re_compile(const char *pattern, size_t len, unsigned flags,
    char *err, size_t errlen)
{
	struct detect_re *re;
	uint32_t opts = 0;

	if (flags & DETECT_RE_CASELESS)
		opts |= PCRE2_CASELESS;
	if (flags & DETECT_RE_MULTILINE)
		opts |= PCRE2_MULTILINE;
	if (flags & DETECT_RE_DOTALL)
		opts |= PCRE2_DOTALL;
	/* without the flag, (*UTF) in a pattern is an error, not a switch */
	if (flags & DETECT_RE_UTF)
		opts |= PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C;
	else
		opts |= PCRE2_NEVER_UTF;

	if ((re = calloc(1, sizeof(*re))) == NULL) {
		detect_err(err, errlen, "out of memory compiling a regex");
		return NULL;
	}
	re->utf = (flags & DETECT_RE_UTF) != 0;
	if ((re->code = detect_re_pcre(pattern, len, opts, err, errlen)) ==
	    NULL) {
		free(re);
		return NULL;
	}
	if (re->utf && (re->lenient = detect_re_pcre(pattern, len,
	    opts | PCRE2_MATCH_INVALID_UTF, err, errlen)) == NULL) {
		detect_re_free(re);
		return NULL;
	}
	if ((flags & DETECT_RE_NOJIT) == 0 &&
	    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0)
		re->jit = 1;
	re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
	re->mctx = pcre2_match_context_create(NULL);
	if (re->md == NULL || re->mctx == NULL)
		goto nomem;
	if (re->jit) {
		if ((re->jstack = pcre2_jit_stack_create(32 * 1024,
		    1024 * 1024, NULL)) == NULL)
			goto nomem;
		pcre2_jit_stack_assign(re->mctx, NULL, re->jstack);
	}
	pcre2_set_heap_limit(re->mctx, DETECT_RE_HEAP_LIMIT);
	detect_re_set_limits(re, DETECT_RE_MATCH_LIMIT, DETECT_RE_DEPTH_LIMIT);
	return re;

nomem:
	detect_err(err, errlen, "out of memory compiling a regex");
	detect_re_free(re);
	return NULL;
}

/* The match limit binds JIT code too; the depth limit only the interpreter. */
void
detect_re_set_limits(struct detect_re *re, uint32_t match_limit,
    uint32_t depth_limit)
{
	pcre2_set_match_limit(re->mctx, match_limit);
	pcre2_set_depth_limit(re->mctx, depth_limit);
}

int
detect_re_jit(const struct detect_re *re)
{
	return re->jit;
}

int
detect_re_count(struct detect_re *re, const char *s, size_t n,
    size_t *count, char *sample, size_t samplesz)
{
	const pcre2_code *code = re->code;
	PCRE2_SIZE *ov, start = 0, at;
	uint32_t opts = 0;
	size_t found = 0;
	int rc, status = DETECT_OK;

	detect_sample_clear(sample, samplesz);
	if (re->utf) {
		if (detect_utf8_valid(s, n))
			opts = PCRE2_NO_UTF_CHECK;
		else
			code = re->lenient;
	}
	ov = pcre2_get_ovector_pointer(re->md);
	while (start <= n) {
		rc = pcre2_match(code, (PCRE2_SPTR)s, n, start, opts, re->md,
		    re->mctx);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			switch (rc) {
			case PCRE2_ERROR_MATCHLIMIT:
			case PCRE2_ERROR_DEPTHLIMIT:
			case PCRE2_ERROR_HEAPLIMIT:
			case PCRE2_ERROR_JIT_STACKLIMIT:
				status = DETECT_ELIMIT;
				break;
			default:
				status = DETECT_EMATCH;
				break;
			}
			break;
		}
		if (found++ == 0 && ov[1] > ov[0])
			detect_mask_text(s + ov[0], ov[1] - ov[0], sample,
			    samplesz);
		if (ov[1] > ov[0] && ov[1] > start) {
			start = ov[1];
			continue;
		}
		/* empty (or \K-reversed) match: step one character on */
		at = ov[1] > start ? ov[1] : start;
		start = at + 1;
		if (re->utf)
			while (start < n && (U(s, start) & 0xc0) == 0x80)
				start++;
	}
	*count = found;
	return status;
}

void
detect_re_free(struct detect_re *re)
{
	if (re == NULL)
		return;
	pcre2_match_data_free(re->md);
	pcre2_match_context_free(re->mctx);
	pcre2_jit_stack_free(re->jstack);
	pcre2_code_free(re->code);
	pcre2_code_free(re->lenient);
	free(re);
}
