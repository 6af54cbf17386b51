/*
 * detect: the C primitives behind the policy API's dlp.* functions.
 *
 * Every scanner makes one pass over the text, allocates nothing while
 * scanning, and returns the number of matches. Each can also write a
 * masked sample of the first match into a caller buffer, for incident
 * logs: the sample never holds the whole sensitive value. A sample
 * buffer of DETECT_SAMPLE_MAX bytes always suffices for cards, SSNs and
 * IBANs; shorter buffers get a truncated (still masked) sample. Pass
 * sample == NULL or samplesz == 0 to skip it; when nothing matches the
 * sample is "".
 *
 * Exactly what matches is documented in docs/detection.md.
 *
 * Thread safety: the fixed scanners and detect_kw_count() use no shared
 * mutable state. A struct detect_re owns its match data: use one per
 * thread.
 */
#ifndef MP_DETECT_H
#define MP_DETECT_H

#include <stddef.h>
#include <stdint.h>

#define DETECT_SAMPLE_MAX	64

/* Status codes of detect_re_count(). */
enum detect_status {
	DETECT_OK = 0,
	DETECT_ELIMIT = -1,	/* match/depth/heap/JIT stack limit reached */
	DETECT_EMATCH = -2	/* any other matcher error */
};

const char	*detect_strerror(int status);

/*
 * Payment card numbers: 13-19 digits, plain or grouped by single spaces
 * or dashes, Luhn-valid, with a known issuer prefix and length.
 * Sample: "************1111".
 */
size_t	detect_cards(const char *s, size_t n, char *sample, size_t samplesz);

/*
 * Issuer of a bare digit string, or NULL when it is not a plausible card
 * number (wrong prefix or length, Luhn failure, all digits the same).
 */
const char *detect_card_brand(const char *digits, size_t n);

/*
 * US Social Security numbers written ddd-dd-dddd or ddd dd dddd.
 * Sample: "***-**-6789".
 */
size_t	detect_ssn(const char *s, size_t n, char *sample, size_t samplesz);

/*
 * IBANs, plain or in groups of four separated by single spaces, any
 * case, with the registered length for the country and mod-97 == 1.
 * Sample: normalised, country code and last 4 kept, e.g.
 * "DE******************3000".
 */
size_t	detect_iban(const char *s, size_t n, char *sample, size_t samplesz);

/* Registered IBAN length for a country code ("DE", any case), or 0. */
unsigned detect_iban_length(const char *cc);

/*
 * Keyword and phrase lists, compiled once into an Aho-Corasick DFA.
 * Matching folds ASCII case; other bytes (UTF-8) match literally. A run
 * of whitespace in the text matches one space in a term. Every
 * occurrence of every term counts, overlapping ones included.
 */
#define DETECT_KW_WORD		0x01	/* whole words only */

#define DETECT_KW_MAX_TERM	1024	/* bytes per term */
#define DETECT_KW_MAX_TABLE	(64u << 20)	/* bytes of DFA */

struct detect_kw;

struct detect_kw *detect_kw_compile(const char *const *terms, size_t n,
	    unsigned flags, char *err, size_t errlen);
/* Sample: the first term that matched, as spelled in the list. */
size_t	detect_kw_count(const struct detect_kw *, const char *s, size_t n,
	    char *sample, size_t samplesz);
size_t	detect_kw_nterms(const struct detect_kw *);
size_t	detect_kw_nstates(const struct detect_kw *);
void	detect_kw_free(struct detect_kw *);

/*
 * Regular expressions (PCRE2, 8-bit), compiled once, JIT when available.
 * Matches are counted without overlap; an empty match counts once and
 * the next search starts one character later.
 */
#define DETECT_RE_CASELESS	0x01
#define DETECT_RE_MULTILINE	0x02
#define DETECT_RE_DOTALL	0x04
#define DETECT_RE_UTF		0x08	/* UTF-8; invalid bytes never match */
#define DETECT_RE_NOJIT		0x10	/* interpreter only (tests) */

#define DETECT_RE_MATCH_LIMIT	1000000u	/* per match attempt */
#define DETECT_RE_DEPTH_LIMIT	10000u		/* interpreter only */
#define DETECT_RE_HEAP_LIMIT	20000u		/* KiB, interpreter only */

struct detect_re;

/* A compile error reads "<pcre2 message> at offset N". */
struct detect_re *detect_re_compile(const char *pattern, size_t len,
	    unsigned flags, char *err, size_t errlen);
void	detect_re_set_limits(struct detect_re *, uint32_t match_limit,
	    uint32_t depth_limit);
int	detect_re_jit(const struct detect_re *);
/*
 * Sets *count to the matches found (before the error, on error) and
 * returns DETECT_OK, DETECT_ELIMIT or DETECT_EMATCH. Sample: the first
 * match with every letter and digit but the last four replaced by '*'.
 */
int	detect_re_count(struct detect_re *, const char *s, size_t n,
	    size_t *count, char *sample, size_t samplesz);
void	detect_re_free(struct detect_re *);

#endif
