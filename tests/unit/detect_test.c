/*
 * detect_test: proxy/detect.c.
 *
 * Every scanner is fed copies of its input in buffers of exactly the
 * input's length (no terminating NUL), so a read past the end shows up
 * under ASan. The keyword automaton is checked against a naive matcher
 * written here, over pseudo-random term sets and texts from a fixed
 * seed; the regex counter against hand-counted cases, including empty
 * matches and a pattern that backtracks catastrophically.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "detect.h"

/* ---- helpers -------------------------------------------------------- */

typedef size_t (*scan_fn)(const char *, size_t, char *, size_t);

/* Run fn over an exact-size heap copy of text; sample may be NULL. */
static size_t
scan(scan_fn fn, const char *text, char *sample, size_t samplesz)
{
	size_t n = strlen(text), r;
	char *copy = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, n);
	r = fn(copy, n, sample, samplesz);
	free(copy);
	return r;
}

#define CARDS(t)	scan(detect_cards, (t), NULL, 0)
#define SSNS(t)		scan(detect_ssn, (t), NULL, 0)
#define IBANS(t)	scan(detect_iban, (t), NULL, 0)

static void
expect(scan_fn fn, const char *what, const char *text, size_t want)
{
	size_t got = scan(fn, text, NULL, 0);

	ck_assert_msg(got == want, "%s \"%s\": got %zu, want %zu", what, text,
	    got, want);
}

static uint64_t rng_state;

static void
rng_seed(uint64_t s)
{
	rng_state = s;
}

/* splitmix64: small, fixed, the same on every platform */
static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t
rng_below(size_t n)
{
	return (size_t)(rng() % n);
}

/* Make d[0..n) Luhn-valid by choosing its last digit. */
static void
luhn_complete(char *d, size_t n)
{
	unsigned sum = 0, v;
	size_t i;
	int dbl = 1;

	for (i = n - 1; i-- > 0; dbl = !dbl) {
		v = (unsigned)(d[i] - '0');
		if (dbl && (v *= 2) > 9)
			v -= 9;
		sum += v;
	}
	d[n - 1] = (char)('0' + (10 - sum % 10) % 10);
}

/* ---- payment cards -------------------------------------------------- */

static const struct {
	const char	*number;
	const char	*brand;
} good_cards[] = {
	{ "4111111111111111",		"visa" },
	{ "4012888888881881",		"visa" },
	{ "4222222222222",		"visa" },
	{ "4000123412341000003",	"visa" },
	{ "5555555555554444",		"mastercard" },
	{ "5105105105105100",		"mastercard" },
	{ "2221000000000009",		"mastercard" },
	{ "2223003122003222",		"mastercard" },
	{ "2720990000000007",		"mastercard" },
	{ "378282246310005",		"amex" },
	{ "371449635398431",		"amex" },
	{ "6011111111111117",		"discover" },
	{ "6011000990139424",		"discover" },
	{ "6445644564456445",		"discover" },
	{ "6512345678901007",		"discover" },
	{ "3530111333300000",		"jcb" },
	{ "3566002020360505",		"jcb" },
	{ "3589000000000003",		"jcb" },
	{ "30569309025904",		"diners" },
	{ "30050000000009",		"diners" },
	{ "38520000023237",		"diners" },
	{ "36227206271667",		"diners" },
	{ "6200000000000005",		"unionpay" },
	{ "6212345678901234502",	"unionpay" },
	{ "5018000000000009",		"maestro" },
	{ "6759649826438453",		"maestro" },
	{ "5600000000002",		"maestro" },
};

#define NGOOD	(sizeof(good_cards) / sizeof(good_cards[0]))

START_TEST(cards_brands)
{
	const char *num = good_cards[_i].number, *brand;
	char text[128], sample[DETECT_SAMPLE_MAX], want[32];
	size_t n = strlen(num);

	brand = detect_card_brand(num, n);
	ck_assert_msg(brand != NULL && strcmp(brand, good_cards[_i].brand) == 0,
	    "%s: brand %s, want %s", num, brand ? brand : "(none)",
	    good_cards[_i].brand);

	snprintf(text, sizeof(text), "card no. %s, exp 12/29", num);
	ck_assert_uint_eq(scan(detect_cards, text, sample, sizeof(sample)), 1);
	memset(want, '*', n - 4);
	memcpy(want + n - 4, num + n - 4, 5);
	ck_assert_str_eq(sample, want);

	/* at the very start and end of the text */
	expect(detect_cards, "bare", num, 1);

	/* one digit off breaks Luhn */
	memcpy(text, num, n + 1);
	text[n - 1] = (char)('0' + (text[n - 1] - '0' + 1) % 10);
	ck_assert_ptr_null(detect_card_brand(text, n));
	expect(detect_cards, "luhn", text, 0);
}
END_TEST

START_TEST(cards_wrong_iin_or_length)
{
	static const struct {
		const char	*prefix;
		size_t		 len;
	} bad[] = {
		{ "1", 16 },		/* no issuer starts with 1 */
		{ "7", 16 },
		{ "8", 16 },
		{ "9", 16 },
		{ "2220", 16 },		/* just below Mastercard's 2-series */
		{ "2721", 16 },		/* just above it */
		{ "34", 16 },		/* Amex is 15 digits */
		{ "37", 14 },
		{ "4", 14 },		/* Visa: 13, 16, 19 */
		{ "4", 15 },
		{ "4", 17 },
		{ "4", 18 },
		{ "51", 15 },		/* Mastercard: 16 */
		{ "55", 19 },
		{ "306", 14 },		/* Diners 300-305 */
		{ "3527", 16 },		/* JCB 3528-3589 */
		{ "3590", 16 },
		{ "36", 13 },		/* Diners 14-19 */
		{ "3000", 13 },
	};
	char d[24];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = bad[i].len;
		memset(d, '0', n);
		memcpy(d, bad[i].prefix, strlen(bad[i].prefix));
		d[n - 2] = '7';
		luhn_complete(d, n);
		d[n] = '\0';
		ck_assert_msg(detect_card_brand(d, n) == NULL, "%s accepted",
		    d);
		expect(detect_cards, "iin/len", d, 0);
	}
}
END_TEST

START_TEST(cards_lengths_and_runs)
{
	char d[32];
	size_t n;

	/* 12 and 20 digits are never cards, whatever the prefix */
	for (n = 10; n <= 22; n++) {
		if (n >= 13 && n <= 19)
			continue;
		memset(d, '0', n);
		d[0] = '4';
		d[1] = '1';
		luhn_complete(d, n);
		d[n] = '\0';
		ck_assert_ptr_null(detect_card_brand(d, n));
		expect(detect_cards, "length", d, 0);
	}
	/* all digits the same: Luhn-valid, Maestro prefix, still refused */
	ck_assert_ptr_null(detect_card_brand("6666666666666", 13));
	expect(detect_cards, "same", "6666666666666", 0);
	expect(detect_cards, "same", "0000000000000000", 0);

	/* a valid card inside a longer digit or letter run */
	expect(detect_cards, "run", "41111111111111110000", 0);
	expect(detect_cards, "run", "94111111111111111", 0);
	expect(detect_cards, "run", "x4111111111111111", 0);
	expect(detect_cards, "run", "4111111111111111x", 0);
	expect(detect_cards, "run", "ID4111111111111111", 0);
	expect(detect_cards, "run", "4111111111111111th", 0);
	/* ...or inside a decimal number */
	expect(detect_cards, "decimal", "0.4111111111111111", 0);
	expect(detect_cards, "decimal", "4111111111111111.25", 0);
	/* punctuation is a boundary */
	expect(detect_cards, "punct", "(4111111111111111)", 1);
	expect(detect_cards, "punct", "4111111111111111.", 1);
	expect(detect_cards, "punct", "cc=4111111111111111;", 1);
	expect(detect_cards, "csv", "4111111111111111,5555555555554444", 2);
	expect(detect_cards, "utf8", "\xe2\x84\x96" "4111111111111111", 1);
}
END_TEST

START_TEST(cards_separators)
{
	expect(detect_cards, "spaces", "4111 1111 1111 1111", 1);
	expect(detect_cards, "dashes", "4111-1111-1111-1111", 1);
	expect(detect_cards, "amex 4-6-5", "3782 822463 10005", 1);
	expect(detect_cards, "amex 4-6-5", "3782-822463-10005", 1);
	expect(detect_cards, "diners 4-6-4", "3056 930902 5904", 1);
	expect(detect_cards, "19 4-4-4-4-3", "4000 1234 1234 1000 003", 1);
	expect(detect_cards, "visa 13 4-4-4-1", "4222 2222 2222 2", 1);

	expect(detect_cards, "mixed", "4111 1111-1111 1111", 0);
	expect(detect_cards, "mixed", "4111-1111 1111-1111", 0);
	expect(detect_cards, "mixed", "4111-1111-1111 1111", 0);
	expect(detect_cards, "double space", "4111  1111  1111  1111", 0);
	expect(detect_cards, "double dash", "4111--1111--1111--1111", 0);
	expect(detect_cards, "tab", "4111\t1111\t1111\t1111", 0);
	expect(detect_cards, "newline", "4111\n1111\n1111\n1111", 0);
	expect(detect_cards, "dots", "4111.1111.1111.1111", 0);
	/* 4012888888881881 regrouped in shapes no card is printed in */
	expect(detect_cards, "layout", "4012 8888 88 881881", 0);
	expect(detect_cards, "layout", "40128 8888 8888 1881", 0);
	expect(detect_cards, "layout", "4012 88888888 1881", 0);
	expect(detect_cards, "layout", "4012 8888 8888 18 81", 0);

	/* space-separated groups are words: neighbours do not spoil it */
	expect(detect_cards, "year after", "4111 1111 1111 1111 2026", 1);
	expect(detect_cards, "year before", "1980 4111 1111 1111 1111", 1);
	expect(detect_cards, "cvv after", "4111 1111 1111 1111 123 ok", 1);
	/* a dashed run is one token: extra groups make it something else */
	expect(detect_cards, "dash after", "4111-1111-1111-1111-2026", 0);
	expect(detect_cards, "dash before", "2026-4111-1111-1111-1111", 0);
	expect(detect_cards, "glued", "4111 1111 1111 1111x", 0);
	expect(detect_cards, "glued", "x4111 1111 1111 1111", 0);
}
END_TEST

START_TEST(cards_count_and_mask)
{
	char sample[DETECT_SAMPLE_MAX], tiny[6];
	const char *text = "first 3782 822463 10005 then 4111-1111-1111-1111 "
	    "and 5555555555554444 but not 4111111111111112.";

	ck_assert_uint_eq(scan(detect_cards, text, sample, sizeof(sample)), 3);
	ck_assert_str_eq(sample, "***********0005");

	ck_assert_uint_eq(scan(detect_cards, "4111 1111 1111 1111", sample,
	    sizeof(sample)), 1);
	ck_assert_str_eq(sample, "************1111");

	/* a short buffer keeps the informative tail */
	ck_assert_uint_eq(scan(detect_cards, "4111111111111111", tiny,
	    sizeof(tiny)), 1);
	ck_assert_str_eq(tiny, "*1111");

	/* no match leaves "" */
	snprintf(sample, sizeof(sample), "junk");
	ck_assert_uint_eq(scan(detect_cards, "no numbers", sample,
	    sizeof(sample)), 0);
	ck_assert_str_eq(sample, "");
	ck_assert_uint_eq(detect_cards("", 0, NULL, 0), 0);
}
END_TEST

/* ---- SSNs ----------------------------------------------------------- */

START_TEST(ssn_valid_and_mask)
{
	char sample[DETECT_SAMPLE_MAX];

	ck_assert_uint_eq(scan(detect_ssn, "SSN: 123-45-6789.", sample,
	    sizeof(sample)), 1);
	ck_assert_str_eq(sample, "***-**-6789");
	ck_assert_uint_eq(scan(detect_ssn, "123 45 6789", sample,
	    sizeof(sample)), 1);
	ck_assert_str_eq(sample, "***-**-6789");
	expect(detect_ssn, "parens", "(001-01-0001)", 1);
	expect(detect_ssn, "edge", "665-01-0001", 1);
	expect(detect_ssn, "edge", "667-01-0001", 1);
	expect(detect_ssn, "edge", "899-99-9999", 1);
	expect(detect_ssn, "near ad", "078-05-1121", 1);
	expect(detect_ssn, "several",
	    "a 123-45-6789 b 234 56 7890 c 345-67-8901", 3);
	expect(detect_ssn, "dash after space", "ID-123-45-6789", 1);
}
END_TEST

START_TEST(ssn_rules)
{
	/* one rule broken at a time */
	expect(detect_ssn, "area 000", "000-45-6789", 0);
	expect(detect_ssn, "area 666", "666-45-6789", 0);
	expect(detect_ssn, "area 900", "900-45-6789", 0);
	expect(detect_ssn, "area 999", "999-45-6789", 0);
	expect(detect_ssn, "group 00", "123-00-6789", 0);
	expect(detect_ssn, "serial 0000", "123-45-0000", 0);
	expect(detect_ssn, "advert", "078-05-1120", 0);
	expect(detect_ssn, "advert", "219-09-9999", 0);
	expect(detect_ssn, "advert spaced", "078 05 1120", 0);
	/* shapes we do not take */
	expect(detect_ssn, "bare", "123456789", 0);
	expect(detect_ssn, "mixed", "123-45 6789", 0);
	expect(detect_ssn, "mixed", "123 45-6789", 0);
	expect(detect_ssn, "double", "123  45  6789", 0);
	expect(detect_ssn, "short", "123-45-678", 0);
	expect(detect_ssn, "shape", "12-345-6789", 0);
	/* word boundaries and longer numbers */
	expect(detect_ssn, "letter", "a123-45-6789", 0);
	expect(detect_ssn, "letter", "123-45-6789a", 0);
	expect(detect_ssn, "digit", "1123-45-6789", 0);
	expect(detect_ssn, "digit", "123-45-67890", 0);
	expect(detect_ssn, "chain", "9-123-45-6789", 0);
	expect(detect_ssn, "chain", "123-45-6789-1", 0);
	expect(detect_ssn, "chain", "9 123 45 6789", 0);
	expect(detect_ssn, "chain", "123 45 6789 1", 0);
	expect(detect_ssn, "decimal", "123-45-6789.5", 0);
	expect(detect_ssn, "truncated", "123-45-67", 0);
}
END_TEST

/* ---- IBANs ---------------------------------------------------------- */

static const char *const good_ibans[] = {
	"DE89 3704 0044 0532 0130 00",
	"GB29 NWBK 6016 1331 9268 19",
	"FR14 2004 1010 0505 0001 3M02 606",
	"NL91 ABNA 0417 1643 00",
	"BE68 5390 0754 7034",
	"NO93 8601 1117 947",
	"CH93 0076 2011 6238 5295 7",
	"ES91 2100 0418 4502 0005 1332",
	"IT60 X054 2811 1010 0000 0123 456",
	"MT84 MALT 0110 0001 2345 MTLC AST0 01S",
	"LC55 HEMM 0001 0001 0012 0012 0002 3015",
	"RU03 0445 2522 5408 1781 0538 0913 1041 9",
	"PL61 1090 1014 0000 0712 1981 2874",
	"SE45 5000 0000 0583 9825 7466",
	"AT61 1904 3002 3457 3201",
	"FI21 1234 5600 0007 85",
};

#define NIBANS	(sizeof(good_ibans) / sizeof(good_ibans[0]))

static void
unspace(const char *in, char *out)
{
	for (; *in; in++)
		if (*in != ' ')
			*out++ = *in;
	*out = '\0';
}

static void
lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 0x20);
}

START_TEST(iban_valid)
{
	const char *iban = good_ibans[_i];
	char flat[64], text[128], sample[DETECT_SAMPLE_MAX], want[64];
	size_t n;

	unspace(iban, flat);
	n = strlen(flat);
	ck_assert_uint_eq(detect_iban_length((char[3]){ flat[0], flat[1], 0 }),
	    n);

	snprintf(text, sizeof(text), "IBAN: %s, BIC ABCDEFGH", iban);
	ck_assert_uint_eq(scan(detect_iban, text, sample, sizeof(sample)), 1);
	memcpy(want, flat, n + 1);
	memset(want + 2, '*', n - 6);
	ck_assert_str_eq(sample, want);

	expect(detect_iban, "flat", flat, 1);
	lower(flat);
	expect(detect_iban, "lower", flat, 1);
	snprintf(text, sizeof(text), "%s", iban);
	lower(text);
	expect(detect_iban, "lower spaced", text, 1);
	ck_assert_uint_eq(scan(detect_iban, text, sample, sizeof(sample)), 1);
	ck_assert_str_eq(sample, want);		/* normalised to upper */
}
END_TEST

/* Build cc + check digits + bban, with correct check digits. */
static void
iban_make(const char *cc, const char *bban, char *out, size_t outsz)
{
	char digits[128];
	size_t i, k = 0;
	unsigned r = 0;
	const char *tail[2] = { bban, cc };
	int part, n;

	for (part = 0; part < 2; part++)
		for (i = 0; tail[part][i]; i++) {
			char c = tail[part][i];

			/* Two digits at most, and the "00" below. */
			ck_assert_uint_lt(k + 4, sizeof(digits));
			if (c >= '0' && c <= '9')
				digits[k++] = c;
			else
				k += (size_t)snprintf(digits + k,
				    sizeof(digits) - k, "%d", c - 'A' + 10);
		}
	digits[k++] = '0';
	digits[k++] = '0';
	for (i = 0; i < k; i++)
		r = (r * 10 + (unsigned)(digits[i] - '0')) % 97;
	n = snprintf(out, outsz, "%s%02u%s", cc, 98 - r, bban);
	ck_assert(n > 0 && (size_t)n < outsz);
}

START_TEST(iban_invalid)
{
	char v[64], w[64];
	char bban[40];
	unsigned i;

	/* the control: a made-up but well-formed German IBAN is found */
	iban_make("DE", "123456781234567890", v, sizeof(v));
	expect(detect_iban, "made", v, 1);
	/* same checksum rule, wrong lengths: only the length rule rejects */
	iban_make("DE", "12345678123456789", v, sizeof(v));
	expect(detect_iban, "short", v, 0);
	iban_make("DE", "1234567812345678901", v, sizeof(v));
	expect(detect_iban, "long", v, 0);
	/* not a registered country */
	iban_make("XX", "123456781234567890", v, sizeof(v));
	expect(detect_iban, "country", v, 0);
	iban_make("US", "123456781234567890", v, sizeof(v));
	expect(detect_iban, "country", v, 0);
	/* wrong checksum */
	expect(detect_iban, "checksum", "DE89 3704 0044 0532 0130 01", 0);
	expect(detect_iban, "checksum", "DE88370400440532013000", 0);
	expect(detect_iban, "swap", "DE89 3704 0044 0532 0103 00", 0);

	/* check digits 98 and 01 leave the same remainder: 01 is refused */
	for (i = 0; i < 1000; i++) {
		snprintf(bban, sizeof(bban), "37040044053201%04u", i);
		iban_make("DE", bban, v, sizeof(v));
		if (v[2] == '9' && v[3] == '8')
			break;
	}
	ck_assert_uint_lt(i, 1000);
	expect(detect_iban, "98", v, 1);
	memcpy(w, v, sizeof(w));
	w[2] = '0';
	w[3] = '1';
	expect(detect_iban, "01", w, 0);

	/* irregular spacing, glued words */
	expect(detect_iban, "spacing", "DE89 37040044 0532 0130 00", 0);
	expect(detect_iban, "spacing", "DE89  3704 0044 0532 0130 00", 0);
	expect(detect_iban, "spacing", "DE893704 0044 0532 0130 00", 0);
	expect(detect_iban, "spacing", "DE89 3704 0044 0532 013000", 0);
	expect(detect_iban, "glued", "xDE89370400440532013000", 0);
	expect(detect_iban, "glued", "DE89370400440532013000x", 0);
	expect(detect_iban, "glued", "DE89 3704 0044 0532 0130 00x", 0);
	expect(detect_iban, "truncated", "DE89 3704 0044 0532 0130", 0);
	expect(detect_iban, "truncated", "DE89", 0);
	expect(detect_iban, "truncated", "DE8", 0);
	ck_assert_uint_eq(detect_iban_length("de"), 22);
	ck_assert_uint_eq(detect_iban_length("ZZ"), 0);
	ck_assert_uint_eq(detect_iban_length("DEU"), 0);
	ck_assert_uint_eq(detect_iban_length(""), 0);

	expect(detect_iban, "several",
	    "to DE89370400440532013000 or gb29nwbk60161331926819, "
	    "not DE89370400440532013001.", 2);
	/* words that look like a country code and check digits */
	expect(detect_iban, "noise", "MP3 player, DE42 is not enough", 0);
}
END_TEST

/* ---- keywords ------------------------------------------------------- */

static struct detect_kw *
kw_make(const char *const *terms, size_t n, unsigned flags)
{
	char err[128] = "";
	struct detect_kw *kw = detect_kw_compile(terms, n, flags, err,
	    sizeof(err));

	ck_assert_msg(kw != NULL, "compile failed: %s", err);
	return kw;
}

static size_t
kw_scan(const struct detect_kw *kw, const char *text, size_t n,
    char *sample, size_t samplesz)
{
	char *copy = malloc(n ? n : 1);
	size_t r;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, n);
	r = detect_kw_count(kw, copy, n, sample, samplesz);
	free(copy);
	return r;
}

#define KW(kw, t)	kw_scan((kw), (t), strlen(t), NULL, 0)
#define KWS(kw, t, smp)	kw_scan((kw), (t), strlen(t), (smp), sizeof(smp))

START_TEST(kw_basic)
{
	static const char *const terms[] = {
		"secret", "Project Falcon", "caf\xc3\xa9", "he", "she", "hers",
		"SECRET",
	};
	struct detect_kw *kw = kw_make(terms, 7, 0);
	char sample[DETECT_SAMPLE_MAX];

	ck_assert_uint_eq(detect_kw_nterms(kw), 7);
	ck_assert_uint_eq(KW(kw, "nothing to see"), 0);
	/* "secret" and "SECRET" are one term: it counts once */
	ck_assert_uint_eq(KW(kw, "top secret"), 1);
	ck_assert_uint_eq(KW(kw, "TOP SECRET, SeCrEt"), 2);
	ck_assert_uint_eq(KW(kw, "secretsecret"), 2);
	/* overlapping occurrences of different terms all count */
	ck_assert_uint_eq(KW(kw, "ushers"), 3);
	/* UTF-8 bytes are literal: only ASCII folds */
	ck_assert_uint_eq(KW(kw, "caf\xc3\xa9"), 1);
	ck_assert_uint_eq(KW(kw, "CAF\xc3\xa9"), 1);
	ck_assert_uint_eq(KW(kw, "CAF\xc3\x89"), 0);
	/* a space in a term matches any whitespace run */
	ck_assert_uint_eq(KW(kw, "project falcon"), 1);
	ck_assert_uint_eq(KW(kw, "PROJECT\r\n\t  FALCON"), 1);
	ck_assert_uint_eq(KW(kw, "projectfalcon"), 0);
	ck_assert_uint_eq(KW(kw, "project_falcon"), 0);

	ck_assert_uint_eq(KWS(kw, "x Project  FALCON and a secret", sample), 2);
	ck_assert_str_eq(sample, "Project Falcon");	/* as listed */
	ck_assert_uint_eq(KWS(kw, "a SECRET", sample), 1);
	ck_assert_str_eq(sample, "secret");	/* the first spelling */
	ck_assert_uint_eq(KWS(kw, "none", sample), 0);
	ck_assert_str_eq(sample, "");
	detect_kw_free(kw);
}
END_TEST

START_TEST(kw_whitespace_terms)
{
	static const char *const terms[] = { "foo ", "a  b", " bar" };
	struct detect_kw *kw = kw_make(terms, 3, 0);

	/* trailing space: found once however long the run */
	ck_assert_uint_eq(KW(kw, "foo      x"), 1);
	ck_assert_uint_eq(KW(kw, "foo"), 0);
	/* a doubled space in a term is squeezed too */
	ck_assert_uint_eq(KW(kw, "a b"), 1);
	ck_assert_uint_eq(KW(kw, "a\n\nb"), 1);
	ck_assert_uint_eq(KW(kw, "x\t\t bar"), 1);
	ck_assert_uint_eq(KW(kw, "xbar"), 0);
	detect_kw_free(kw);
}
END_TEST

START_TEST(kw_whole_words)
{
	static const char *const terms[] = {
		"cat", "$100", "big cat", "na\xc3\xafve",
	};
	struct detect_kw *kw = kw_make(terms, 4, DETECT_KW_WORD);
	char sample[DETECT_SAMPLE_MAX];

	ck_assert_uint_eq(KW(kw, "cat"), 1);
	ck_assert_uint_eq(KW(kw, "(cat) cat. CAT"), 3);
	ck_assert_uint_eq(KW(kw, "concatenate cats tomcat cat_x x_cat cat9"),
	    0);
	/* bytes >= 0x80 are word characters */
	ck_assert_uint_eq(KW(kw, "cat\xc3\xa9 \xc3\xa9" "cat"), 0);
	/* non-word edges of a term need no boundary */
	ck_assert_uint_eq(KW(kw, "a$100 $100x $100."), 2);
	/* phrases: boundaries are judged on the text span they matched */
	ck_assert_uint_eq(KW(kw, "the big   cat"), 2);	/* + "cat" */
	ck_assert_uint_eq(KW(kw, "abig cat"), 1);	/* only "cat" */
	ck_assert_uint_eq(KW(kw, "big cats"), 0);
	ck_assert_uint_eq(KW(kw, "NA\xc3\xafVE"), 1);
	ck_assert_uint_eq(KW(kw, "na\xc3\xafvet\xc3\xa9"), 0);
	ck_assert_uint_eq(KWS(kw, "concat, cat", sample), 1);
	ck_assert_str_eq(sample, "cat");
	detect_kw_free(kw);

	/* without the flag the same texts match inside words */
	kw = kw_make(terms, 4, 0);
	ck_assert_uint_eq(KW(kw, "concatenate cats tomcat cat_x x_cat cat9"),
	    6);
	detect_kw_free(kw);
}
END_TEST

START_TEST(kw_errors)
{
	static const char *const empty[] = { "ok", "" };
	static const char *const blank[] = { "ok", "   " };
	static const char *const null[] = { "ok", NULL };
	const char *longterm[1];
	char err[128], *big;
	struct detect_kw *kw;

	ck_assert_ptr_null(detect_kw_compile(empty, 2, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "keyword 2 is empty");
	/* squeezed to one space, which is a valid (if odd) term */
	kw = detect_kw_compile(blank, 2, 0, err, sizeof(err));
	ck_assert_ptr_nonnull(kw);
	ck_assert_uint_eq(KW(kw, "a  b\tc"), 2);
	detect_kw_free(kw);
	ck_assert_ptr_null(detect_kw_compile(null, 2, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "keyword 2 is missing");

	big = malloc(DETECT_KW_MAX_TERM + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, 'a', DETECT_KW_MAX_TERM + 1);
	big[DETECT_KW_MAX_TERM + 1] = '\0';
	longterm[0] = big;
	ck_assert_ptr_null(detect_kw_compile(longterm, 1, 0, err,
	    sizeof(err)));
	ck_assert_str_eq(err, "keyword 1 is too long");
	big[DETECT_KW_MAX_TERM] = '\0';
	kw = detect_kw_compile(longterm, 1, 0, err, sizeof(err));
	ck_assert_ptr_nonnull(kw);
	ck_assert_uint_eq(kw_scan(kw, big, DETECT_KW_MAX_TERM, NULL, 0), 1);
	detect_kw_free(kw);
	free(big);

	/* an empty list compiles and never matches; NULL err is fine */
	kw = detect_kw_compile(NULL, 0, 0, NULL, 0);
	ck_assert_ptr_nonnull(kw);
	ck_assert_uint_eq(KW(kw, "anything"), 0);
	detect_kw_free(kw);
	detect_kw_free(NULL);
}
END_TEST

/* 100 byte classes make 404-byte rows: ~240k states do not fit in 64 MB. */
START_TEST(kw_too_large)
{
	enum { NTERMS = 20000, LEN = 12 };
	char **terms = calloc(NTERMS, sizeof(char *)), err[128];
	size_t i, j;

	ck_assert_ptr_nonnull(terms);
	rng_seed(0x5eed0004);
	for (i = 0; i < NTERMS; i++) {
		terms[i] = malloc(LEN + 1);
		ck_assert_ptr_nonnull(terms[i]);
		for (j = 0; j < LEN; j++)
			terms[i][j] = (char)(0x80 + rng_below(100));
		terms[i][LEN] = '\0';
	}
	ck_assert_ptr_null(detect_kw_compile((const char *const *)terms,
	    NTERMS, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "keyword list too large (over 64 MB of tables)");
	for (i = 0; i < NTERMS; i++)
		free(terms[i]);
	free(terms);
}
END_TEST

/*
 * The reference: squeeze the text (fold case, one space per whitespace
 * run) keeping where each squeezed byte came from, then try every term
 * at every position.
 */
static int
ref_isspace(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int
ref_isword(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static unsigned char
ref_fold(unsigned char c)
{
	if (ref_isspace(c))
		return ' ';
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 0x20) : c;
}

static size_t
ref_squeeze(const char *in, size_t n, char *out, size_t *from, size_t *to)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = ref_fold((unsigned char)in[i]);

		if (c == ' ' && k > 0 && out[k - 1] == ' ') {
			to[k - 1] = i;
			continue;
		}
		out[k] = (char)c;
		from[k] = to[k] = i;
		k++;
	}
	return k;
}

struct ref_terms {
	char	**norm;
	size_t	 *len;
	size_t	  n;
	size_t	  bucket[257];	/* terms sorted by first byte */
	size_t	 *order;
};

static char **ref_sort_norm;	/* qsort has no context argument */

static int
ref_cmp(const void *a, const void *b)
{
	unsigned char x = (unsigned char)ref_sort_norm[*(const size_t *)a][0];
	unsigned char y = (unsigned char)ref_sort_norm[*(const size_t *)b][0];

	return (x > y) - (x < y);
}

static void
ref_prepare(struct ref_terms *rt, const char *const *terms, size_t n)
{
	size_t i, j, k, from[2048], to[2048];
	int dup;

	rt->norm = calloc(n, sizeof(*rt->norm));
	rt->len = calloc(n, sizeof(*rt->len));
	rt->order = calloc(n, sizeof(*rt->order));
	ck_assert(rt->norm && rt->len && rt->order);
	rt->n = 0;
	for (i = 0; i < n; i++) {
		size_t len = strlen(terms[i]);
		char *p = malloc(len + 1);

		ck_assert(len < 2048 && p != NULL);
		k = ref_squeeze(terms[i], len, p, from, to);
		p[k] = '\0';
		/* duplicates after folding count once */
		for (dup = 0, j = 0; j < rt->n && !dup; j++)
			dup = rt->len[j] == k && memcmp(rt->norm[j], p, k) == 0;
		if (dup) {
			free(p);
			continue;
		}
		rt->norm[rt->n] = p;
		rt->len[rt->n] = k;
		rt->order[rt->n] = rt->n;
		rt->n++;
	}
	ref_sort_norm = rt->norm;
	qsort(rt->order, rt->n, sizeof(size_t), ref_cmp);
	for (i = 0, k = 0; k < 257; k++) {
		rt->bucket[k] = i;
		while (i < rt->n && k < 256 &&
		    (unsigned char)rt->norm[rt->order[i]][0] == k)
			i++;
	}
}

static void
ref_free(struct ref_terms *rt)
{
	size_t i;

	for (i = 0; i < rt->n; i++)
		free(rt->norm[i]);
	free(rt->norm);
	free(rt->len);
	free(rt->order);
}

static size_t
ref_count(const struct ref_terms *rt, const char *text, size_t n, int word)
{
	char *sq = malloc(n + 1);
	size_t *from = malloc((n + 1) * sizeof(size_t));
	size_t *to = malloc((n + 1) * sizeof(size_t));
	size_t m, p, b, t, len, count = 0, s, e;
	unsigned char c0, c1;

	ck_assert(sq && from && to);
	m = ref_squeeze(text, n, sq, from, to);
	for (p = 0; p < m; p++) {
		c0 = (unsigned char)sq[p];
		for (b = rt->bucket[c0]; b < rt->bucket[c0 + 1]; b++) {
			t = rt->order[b];
			len = rt->len[t];
			if (len > m - p ||
			    memcmp(sq + p, rt->norm[t], len) != 0)
				continue;
			if (word) {
				c1 = (unsigned char)rt->norm[t][len - 1];
				s = from[p];
				e = to[p + len - 1];
				if (ref_isword(c0) && s > 0 &&
				    ref_isword((unsigned char)text[s - 1]))
					continue;
				if (ref_isword(c1) && e + 1 < n &&
				    ref_isword((unsigned char)text[e + 1]))
					continue;
			}
			count++;
		}
	}
	free(sq);
	free(from);
	free(to);
	return count;
}

/* Small alphabet, so that terms overlap and recur a lot. */
static const char rand_alpha[] = "abAB c_\n\t.\xc3\xa9";

static void
rand_string(char *out, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		out[i] = rand_alpha[rng_below(sizeof(rand_alpha) - 1)];
	out[len] = '\0';
}

START_TEST(kw_differential)
{
	char *termbuf[40], text[1500];
	const char *terms[40];
	struct ref_terms rt;
	struct detect_kw *kw;
	size_t iter, i, nterms, len, want, got;
	int word;

	rng_seed(0x5eed0001);
	for (iter = 0; iter < 1500; iter++) {
		nterms = 1 + rng_below(40);
		for (i = 0; i < nterms; i++) {
			len = 1 + rng_below(i % 3 == 0 ? 3 : 8);
			termbuf[i] = malloc(len + 1);
			ck_assert_ptr_nonnull(termbuf[i]);
			rand_string(termbuf[i], len);
			terms[i] = termbuf[i];
		}
		word = (int)(iter & 1);
		kw = kw_make(terms, nterms, word ? DETECT_KW_WORD : 0);
		ref_prepare(&rt, terms, nterms);
		for (i = 0; i < 4; i++) {
			len = rng_below(sizeof(text));
			rand_string(text, len);
			want = ref_count(&rt, text, len, word);
			got = kw_scan(kw, text, len, NULL, 0);
			ck_assert_msg(got == want,
			    "iter %zu text %zu word %d: got %zu want %zu",
			    iter, i, word, got, want);
		}
		ref_free(&rt);
		detect_kw_free(kw);
		for (i = 0; i < nterms; i++)
			free(termbuf[i]);
	}
}
END_TEST

/*
 * Texts are scanned as four interleaved streams over four quarters (from
 * 512 bytes on), each warmed up on the bytes before its quarter; the
 * short texts of kw_differential cover the threshold too.
 * Whitespace-heavy texts make the warm-up walk over long runs.
 */
START_TEST(kw_split_differential)
{
	static const char alpha[] = "ab  \n\t_.";
	char *termbuf[12], *text;
	const char *terms[12];
	struct ref_terms rt;
	struct detect_kw *kw;
	size_t iter, i, j, nterms, len, run, want, got;
	int word;

	rng_seed(0x5eed0003);
	text = malloc(120000);
	ck_assert_ptr_nonnull(text);
	for (iter = 0; iter < 60; iter++) {
		nterms = 1 + rng_below(12);
		for (i = 0; i < nterms; i++) {
			len = 1 + rng_below(6);
			termbuf[i] = malloc(len + 1);
			ck_assert_ptr_nonnull(termbuf[i]);
			for (j = 0; j < len; j++)
				termbuf[i][j] =
				    alpha[rng_below(sizeof(alpha) - 1)];
			termbuf[i][len] = '\0';
			terms[i] = termbuf[i];
		}
		word = (int)(iter & 1);
		kw = kw_make(terms, nterms, word ? DETECT_KW_WORD : 0);
		ref_prepare(&rt, terms, nterms);
		len = 20000 + rng_below(100000);
		for (i = 0; i < len;) {
			/* now and then a long blank run */
			run = rng_below(50) == 0 ? rng_below(5000) : 1;
			for (j = 0; j < run && i < len; j++)
				text[i++] = run > 1 ? " \n"[rng_below(2)] :
				    alpha[rng_below(sizeof(alpha) - 1)];
		}
		want = ref_count(&rt, text, len, word);
		got = kw_scan(kw, text, len, NULL, 0);
		ck_assert_msg(got == want, "iter %zu len %zu word %d: got %zu "
		    "want %zu", iter, len, word, got, want);
		ref_free(&rt);
		detect_kw_free(kw);
		for (i = 0; i < nterms; i++)
			free(termbuf[i]);
	}
	free(text);
}
END_TEST

START_TEST(kw_split_edges)
{
	static const char *const space[] = { " ", "a b" };
	static const char *const needles[] = { "pin", "needle" };
	enum { N = 1 << 16 };
	char *text = malloc(N), sample[DETECT_SAMPLE_MAX];
	struct detect_kw *kw;
	size_t k;
	int word;

	ck_assert_ptr_nonnull(text);
	/* one blank run over all four quarters is one match */
	memset(text, ' ', N);
	kw = kw_make(space, 2, 0);
	ck_assert_uint_eq(kw_scan(kw, text, N, NULL, 0), 1);
	text[0] = 'a';
	text[N - 1] = 'b';
	ck_assert_uint_eq(kw_scan(kw, text, N, NULL, 0), 2);
	detect_kw_free(kw);

	/* a term across each quarter boundary is found once */
	for (word = 0; word < 2; word++) {
		kw = kw_make(needles, 2, word ? DETECT_KW_WORD : 0);
		memset(text, word ? ' ' : 'x', N);
		for (k = 1; k < 4; k++)
			memcpy(text + N * k / 4 - 3, "needle", 6);
		ck_assert_uint_eq(kw_scan(kw, text, N, sample, sizeof(sample)),
		    3);
		ck_assert_str_eq(sample, "needle");
		/* the sample is the first match in the text, whatever stream */
		memcpy(text + N - 10, "pin", 3);
		memset(text + N / 4 - 3, word ? ' ' : 'x', 6);
		memset(text + N / 2 - 3, word ? ' ' : 'x', 6);
		ck_assert_uint_eq(kw_scan(kw, text, N, sample, sizeof(sample)),
		    2);
		ck_assert_str_eq(sample, "needle");
		memset(text + N * 3 / 4 - 3, word ? ' ' : 'x', 6);
		ck_assert_uint_eq(kw_scan(kw, text, N, sample, sizeof(sample)),
		    1);
		ck_assert_str_eq(sample, "pin");
		detect_kw_free(kw);
	}
	free(text);
}
END_TEST

/* Word-ish random terms: letters, some digits, sometimes a phrase. */
static char *
rand_word_term(void)
{
	static const char letters[] = "etaoinshrdlucmfwypvbgkqjxz0123456789";
	size_t len = 3 + rng_below(10), i;
	char *t = malloc(len + 1);

	ck_assert_ptr_nonnull(t);
	for (i = 0; i < len; i++) {
		t[i] = letters[rng_below(i == 0 ? 26 : sizeof(letters) - 1)];
		if (i > 2 && i + 2 < len && rng_below(10) == 0)
			t[i] = ' ';
	}
	t[len] = '\0';
	if (rng_below(3) == 0)
		t[0] = (char)(t[0] - 0x20);
	return t;
}

START_TEST(kw_thousands)
{
	enum { NTERMS = 5000, TEXTLEN = 200000 };
	char **terms = calloc(NTERMS, sizeof(char *));
	char *text = malloc(TEXTLEN);
	struct ref_terms rt;
	struct detect_kw *kw;
	size_t i, k, len, want, got;
	int word;

	ck_assert(terms != NULL && text != NULL);
	rng_seed(0x5eed0002);
	for (i = 0; i < NTERMS; i++)
		terms[i] = rand_word_term();
	/* text: mostly the terms themselves, glued or spaced, plus noise */
	for (k = 0; k < TEXTLEN;) {
		const char *t = terms[rng_below(NTERMS)];
		size_t r = rng_below(8);

		len = strlen(t);
		if (r < 4 && k + len < TEXTLEN) {
			memcpy(text + k, t, len);
			k += len;
		} else if (r < 6) {
			text[k++] = "etaoin"[rng_below(6)];
		}
		if (k < TEXTLEN)
			text[k++] = " \n,.xY"[rng_below(6)];
	}
	for (word = 0; word < 2; word++) {
		kw = kw_make((const char *const *)terms, NTERMS,
		    word ? DETECT_KW_WORD : 0);
		ck_assert_uint_gt(detect_kw_nstates(kw), NTERMS);
		ref_prepare(&rt, (const char *const *)terms, NTERMS);
		want = ref_count(&rt, text, TEXTLEN, word);
		got = kw_scan(kw, text, TEXTLEN, NULL, 0);
		ck_assert_uint_eq(got, want);
		ck_assert_uint_gt(want, 5000);
		ref_free(&rt);
		detect_kw_free(kw);
	}
	for (i = 0; i < NTERMS; i++)
		free(terms[i]);
	free(terms);
	free(text);
}
END_TEST

/* ---- regular expressions -------------------------------------------- */

static struct detect_re *
re_make(const char *pat, unsigned flags)
{
	char err[256] = "";
	struct detect_re *re = detect_re_compile(pat, strlen(pat), flags, err,
	    sizeof(err));

	ck_assert_msg(re != NULL, "compile %s: %s", pat, err);
	return re;
}

static size_t
re_count(const char *pat, unsigned flags, const char *text, size_t n)
{
	struct detect_re *re = re_make(pat, flags);
	char *copy = malloc(n ? n : 1);
	size_t count = 12345;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, n);
	ck_assert_int_eq(detect_re_count(re, copy, n, &count, NULL, 0),
	    DETECT_OK);
	free(copy);
	detect_re_free(re);
	return count;
}

#define RE(p, f, t)	re_count((p), (f), (t), strlen(t))

START_TEST(re_counting)
{
	ck_assert_uint_eq(RE("\\d+", 0, "a1b22c333"), 3);
	ck_assert_uint_eq(RE("\\d+", 0, "no digits"), 0);
	ck_assert_uint_eq(RE("aa", 0, "aaaaa"), 2);	/* no overlap */
	ck_assert_uint_eq(RE("secret", DETECT_RE_CASELESS, "Secret SECRET"),
	    2);
	ck_assert_uint_eq(RE("secret", 0, "Secret SECRET"), 0);
	ck_assert_uint_eq(RE("^x", 0, "x\nx\nx"), 1);
	ck_assert_uint_eq(RE("^x", DETECT_RE_MULTILINE, "x\nx\nx"), 3);
	ck_assert_uint_eq(RE("a.b", 0, "a\nb"), 0);
	ck_assert_uint_eq(RE("a.b", DETECT_RE_DOTALL, "a\nb"), 1);
	ck_assert_uint_eq(re_count("b", 0, "a\0b\0b", 5), 2);	/* NULs */
	ck_assert_uint_eq(RE("\\d+", DETECT_RE_NOJIT, "a1b22c333"), 3);
}
END_TEST

START_TEST(re_empty_matches)
{
	unsigned jit;

	for (jit = 0; jit < 2; jit++) {
		unsigned f = jit ? 0 : DETECT_RE_NOJIT;

		/* one empty match at each of the 4 positions */
		ck_assert_uint_eq(RE("x*", f, "abc"), 4);
		ck_assert_uint_eq(RE("x*", f, ""), 1);
		/* "", "aaa", "" */
		ck_assert_uint_eq(RE("a*", f, "baaa"), 3);
		/* "aaa", then the empty match at the end */
		ck_assert_uint_eq(RE("a*", f, "aaa"), 2);
		ck_assert_uint_eq(RE("\\b", f, "ab cd"), 4);
		ck_assert_uint_eq(RE("(?=a)", f, "aaa"), 3);
		/* UTF mode steps over whole characters */
		ck_assert_uint_eq(RE("x*", f, "\xc3\xa9"), 3);
		ck_assert_uint_eq(RE("x*", f | DETECT_RE_UTF, "\xc3\xa9"), 2);
		ck_assert_uint_eq(RE(".", f, "\xc3\xa9"), 2);
		ck_assert_uint_eq(RE(".", f | DETECT_RE_UTF, "\xc3\xa9"), 1);
		/* invalid UTF-8 does not fail a UTF scan */
		ck_assert_uint_eq(RE("\\w+", f | DETECT_RE_UTF, "ab\xff" "cd"),
		    2);
		ck_assert_uint_eq(RE("x*", f | DETECT_RE_UTF, "a\xff\xc3"), 4);
	}
}
END_TEST

START_TEST(re_utf_subjects)
{
	static const char *const bad[] = {
		"\xc0\xaf",		/* overlong '/' */
		"\xe0\x80\xaf",		/* overlong again */
		"\xf0\x8f\xbf\xbf",	/* overlong U+FFFF */
		"\xed\xa0\x80",		/* UTF-16 surrogate */
		"\xf4\x90\x80\x80",	/* past U+10FFFF */
		"\xf5\x80\x80\x80",
		"\xf8\x88\x80\x80\x80",	/* 5-byte form */
		"\x80",			/* lone continuation */
		"\xc3",			/* truncated */
		"\xe2\x82",
		"\xc3\xc3",		/* lead byte for a continuation */
		"\xff",
	};
	static const char *const good[] = {
		"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
		"\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
	};
	char text[32];
	size_t i;
	unsigned jit;

	for (jit = 0; jit < 2; jit++) {
		unsigned f = DETECT_RE_UTF | (jit ? 0 : DETECT_RE_NOJIT);

		/* bytes that are not UTF-8 never match, nor fail the scan */
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(text, sizeof(text), "a%sb", bad[i]);
			ck_assert_msg(RE(".", f, text) == 2, "bad %zu", i);
		}
		/* cut short by the end of the subject */
		ck_assert_uint_eq(RE(".", f, "ab\xe2\x82"), 2);
		ck_assert_uint_eq(RE(".", f, "ab\xf0\x9f\x98"), 2);
		for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			snprintf(text, sizeof(text), "a%sb", good[i]);
			ck_assert_msg(RE(".", f, text) == 3, "good %zu", i);
		}
		/*
		 * Negated types on multi-byte characters, on valid and
		 * invalid subjects (PCRE2 10.42's JIT got these wrong
		 * with PCRE2_MATCH_INVALID_UTF).
		 */
		ck_assert_uint_eq(RE("\\S+", f, "h\xc3\xa9llo"), 1);
		ck_assert_uint_eq(RE("\\W", f, "a\xc3\xa9" "b"), 1);
		ck_assert_uint_eq(RE("\\D+", f, "1\xc3\xa9\xe2\x82\xac" "2"),
		    1);
		ck_assert_uint_eq(RE("\\W", f, "a\xc3\xa9" "b\xff"), 1);
		ck_assert_uint_eq(RE("h\\S+o", f, "h\xc3\xa9llo\xff"), 1);
	}
	/* without UTF mode every byte is a character */
	ck_assert_uint_eq(RE("\\W", 0, "a\xc3\xa9" "b"), 2);
}
END_TEST

START_TEST(re_compile_errors)
{
	char err[256];

	ck_assert_ptr_null(detect_re_compile("a(b", 3, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, "at offset 3") != NULL, "err: %s", err);
	ck_assert_ptr_null(detect_re_compile("a[", 2, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, "at offset 2") != NULL, "err: %s", err);
	ck_assert_ptr_null(detect_re_compile("x{2,1}", 6, 0, err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, "at offset ") != NULL, "err: %s", err);
	/* (*UTF) is refused unless UTF was asked for */
	ck_assert_ptr_null(detect_re_compile("(*UTF)a", 7, 0, err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, "at offset") != NULL, "err: %s", err);
	/* the length is honoured: "a(b" cut to "a" compiles */
	detect_re_free(re_make("a", 0));
	{
		struct detect_re *re = detect_re_compile("a(b", 1, 0, err,
		    sizeof(err));

		ck_assert_ptr_nonnull(re);
		detect_re_free(re);
	}
	detect_re_free(NULL);
	ck_assert_str_eq(detect_strerror(DETECT_ELIMIT),
	    "regex match limit reached");
}
END_TEST

static char *
catastrophe(size_t na, size_t *n)
{
	char *s = malloc(na + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, 'a', na);
	s[na] = 'b';
	*n = na + 1;
	return s;
}

START_TEST(re_match_limit)
{
	struct detect_re *re;
	uint32_t have_jit = 0;
	size_t n, count;
	char *s = catastrophe(40, &n);
	unsigned jit;

	pcre2_config(PCRE2_CONFIG_JIT, &have_jit);
	for (jit = 0; jit < 2; jit++) {
		re = re_make("(a+)+$", jit ? 0 : DETECT_RE_NOJIT);
		ck_assert_int_eq(detect_re_jit(re), jit && have_jit);
		/* 2^40 paths: only the limit ends this */
		count = 99;
		ck_assert_int_eq(detect_re_count(re, s, n, &count, NULL, 0),
		    DETECT_ELIMIT);
		ck_assert_uint_eq(count, 0);
		detect_re_free(re);

		/* matches found before the limit are still reported */
		re = re_make("x|(a+)+$", jit ? 0 : DETECT_RE_NOJIT);
		{
			char *t = malloc(n + 2);

			ck_assert_ptr_nonnull(t);
			memcpy(t, "xx", 2);
			memcpy(t + 2, s, n);
			ck_assert_int_eq(detect_re_count(re, t, n + 2, &count,
			    NULL, 0), DETECT_ELIMIT);
			ck_assert_uint_eq(count, 2);
			free(t);
		}
		detect_re_free(re);
	}
	free(s);

	/* the setter is honoured: a small search passes or fails by limit */
	s = catastrophe(12, &n);
	for (jit = 0; jit < 2; jit++) {
		re = re_make("(a+)+$", jit ? 0 : DETECT_RE_NOJIT);
		ck_assert_int_eq(detect_re_count(re, s, n, &count, NULL, 0),
		    DETECT_OK);
		ck_assert_uint_eq(count, 0);
		detect_re_set_limits(re, 50, 50);
		ck_assert_int_eq(detect_re_count(re, s, n, &count, NULL, 0),
		    DETECT_ELIMIT);
		detect_re_free(re);
	}
	free(s);
}
END_TEST

/*
 * Valid UTF-8 goes to the JIT copy, anything else to the interpreter:
 * told apart by the depth limit, which only the interpreter applies.
 */
START_TEST(re_utf_routing)
{
	struct detect_re *re;
	uint32_t have_jit = 0;
	char text[80];
	size_t count;

	pcre2_config(PCRE2_CONFIG_JIT, &have_jit);
	if (!have_jit)
		return;
	memset(text, 'a', 60);
	memcpy(text + 60, "c\xc3\xa9", 3);
	re = re_make("(a|b)*c", DETECT_RE_UTF);
	ck_assert(detect_re_jit(re));
	detect_re_set_limits(re, 1000000, 2);
	ck_assert_int_eq(detect_re_count(re, text, 63, &count, NULL, 0),
	    DETECT_OK);
	ck_assert_uint_eq(count, 1);
	text[63] = '\xff';
	ck_assert_int_eq(detect_re_count(re, text, 64, &count, NULL, 0),
	    DETECT_ELIMIT);
	detect_re_free(re);
}
END_TEST

START_TEST(re_limit_is_per_attempt)
{
	/* a long ordinary scan never trips a small limit */
	size_t n = 4u << 20, i, count;
	char *s = malloc(n);
	struct detect_re *re = re_make("[a-z]+q", 0);

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < n; i++)
		s[i] = "lorem ipsum dolorq \n"[i % 20];
	detect_re_set_limits(re, 1000, 100);
	ck_assert_int_eq(detect_re_count(re, s, n, &count, NULL, 0),
	    DETECT_OK);
	ck_assert_uint_eq(count, n / 20);
	detect_re_free(re);
	free(s);
}
END_TEST

START_TEST(re_sample_mask)
{
	struct detect_re *re = re_make("\\d{3}-\\d{2}-\\d{4}", 0);
	char sample[DETECT_SAMPLE_MAX], small[16], *big;
	const char *t = "ssn 123-45-6789 and 234-56-7890";
	size_t count;

	ck_assert_int_eq(detect_re_count(re, t, strlen(t), &count, sample,
	    sizeof(sample)), DETECT_OK);
	ck_assert_uint_eq(count, 2);
	ck_assert_str_eq(sample, "***-**-6789");
	detect_re_free(re);

	re = re_make("pw=\\S+", DETECT_RE_UTF);
	t = "pw=h\xc3\xa9llo\x01wOrLd42";
	ck_assert_int_eq(detect_re_count(re, t, strlen(t), &count, sample,
	    sizeof(sample)), DETECT_OK);
	ck_assert_str_eq(sample, "**=*****.***Ld42");
	detect_re_free(re);

	/* a long match: only the tail, with "..." for what was cut */
	big = malloc(1000);
	ck_assert_ptr_nonnull(big);
	memset(big, 'a', 1000);
	re = re_make("a+", 0);
	ck_assert_int_eq(detect_re_count(re, big, 1000, &count, small,
	    sizeof(small)), DETECT_OK);
	ck_assert_uint_eq(count, 1);
	ck_assert_str_eq(small, "...********aaaa");
	/* an empty first match leaves the sample empty */
	detect_re_free(re);
	re = re_make("x*", 0);
	ck_assert_int_eq(detect_re_count(re, "ab", 2, &count, small,
	    sizeof(small)), DETECT_OK);
	ck_assert_str_eq(small, "");
	detect_re_free(re);
	free(big);
}
END_TEST

/*
 * The digit search reads eight bytes at a time: put each kind of match
 * at every alignment, after blanks and after text without digits.
 */
START_TEST(scan_alignment)
{
	static const struct {
		scan_fn		 fn;
		const char	*text;
	} v[] = {
		{ detect_cards, "4111111111111111" },
		{ detect_cards, "3782 822463 10005" },
		{ detect_cards, "30569309025904" },
		{ detect_ssn, "899-99-9999" },
		{ detect_ssn, "123 45 6789" },
		{ detect_iban, "NO93 8601 1117 947" },
		{ detect_iban, "FI2112345600000785" },
		{ detect_iban, "GB29 NWBK 6016 1331 9268 19" },
	};
	char text[128];
	size_t i, k;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		for (k = 0; k < 24; k++) {
			snprintf(text, sizeof(text), "%.*s%s%.*s", (int)k,
			    "the quick brown fox, jumps", v[i].text, (int)k,
			    ". the lazy dog sleeps on");
			if (k > 0)
				text[k - 1] = ' ';
			ck_assert_msg(scan(v[i].fn, text, NULL, 0) == 1,
			    "\"%s\"", text);
		}
}
END_TEST

/*
 * Bytes that sit next to the digits in value ('/', ':') or whose low
 * seven bits are digits (0xb0-0xb9) are not digits, at any alignment.
 */
START_TEST(scan_near_digits)
{
	static const char noise[] = "/:\xb0\xb5\xb9\xff/:\xb1\xb8:/\xb3\xb4";
	char text[128];
	size_t k, len;

	for (k = 0; k < sizeof(noise); k++) {
		len = (size_t)snprintf(text, sizeof(text), "%.*s %s %s",
		    (int)k, noise, "4111111111111111", noise);
		ck_assert_uint_eq(scan(detect_cards, text, NULL, 0), 1);
		len = (size_t)snprintf(text, sizeof(text), "%.*s %s %.*s",
		    (int)k, noise, "899-99-9999", (int)k, noise);
		ck_assert_msg(scan(detect_ssn, text, NULL, 0) == 1,
		    "offset %zu, %zu bytes", k, len);
		/* noise alone: nothing to find, and no read past the end */
		ck_assert_uint_eq(scan(detect_cards, noise + k, NULL, 0), 0);
	}
}
END_TEST

static Suite *
detect_suite(void)
{
	Suite *s = suite_create("detect");
	TCase *tc;

	tc = tcase_create("cards");
	tcase_add_loop_test(tc, cards_brands, 0, (int)NGOOD);
	tcase_add_test(tc, cards_wrong_iin_or_length);
	tcase_add_test(tc, cards_lengths_and_runs);
	tcase_add_test(tc, cards_separators);
	tcase_add_test(tc, cards_count_and_mask);

	tcase_add_test(tc, scan_alignment);
	tcase_add_test(tc, scan_near_digits);
	suite_add_tcase(s, tc);

	tc = tcase_create("ssn");
	tcase_add_test(tc, ssn_valid_and_mask);
	tcase_add_test(tc, ssn_rules);
	suite_add_tcase(s, tc);

	tc = tcase_create("iban");
	tcase_add_loop_test(tc, iban_valid, 0, (int)NIBANS);
	tcase_add_test(tc, iban_invalid);
	suite_add_tcase(s, tc);

	tc = tcase_create("keywords");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, kw_basic);
	tcase_add_test(tc, kw_whitespace_terms);
	tcase_add_test(tc, kw_whole_words);
	tcase_add_test(tc, kw_errors);
	tcase_add_test(tc, kw_too_large);
	tcase_add_test(tc, kw_differential);
	tcase_add_test(tc, kw_split_differential);
	tcase_add_test(tc, kw_split_edges);
	tcase_add_test(tc, kw_thousands);
	suite_add_tcase(s, tc);

	tc = tcase_create("regex");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, re_counting);
	tcase_add_test(tc, re_empty_matches);
	tcase_add_test(tc, re_utf_subjects);
	tcase_add_test(tc, re_utf_routing);
	tcase_add_test(tc, re_compile_errors);
	tcase_add_test(tc, re_match_limit);
	tcase_add_test(tc, re_limit_is_per_attempt);
	tcase_add_test(tc, re_sample_mask);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(detect_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
