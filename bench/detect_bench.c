/*
 * detect_bench: throughput of the dlp.* primitives on one core.
 *
 * Builds a deterministic ~64 MB corpus of English-like mail text (lines
 * of up to ~76 bytes, sentences of common words) with numbers sprinkled
 * through it: dates, prices, phone and order numbers, and now and then
 * a card number (valid or not, plain or grouped), an SSN or an IBAN.
 * Each primitive scans the whole corpus; the best of three runs is
 * reported in MB/s (1 MB = 2^20 bytes), with the match count as a
 * sanity check. Prints numbers only: it never passes or fails on speed.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detect.h"

#define CORPUS_SIZE	(64u << 20)
#define RUNS		3

static uint64_t bench_rng_state = 0x0dd5eedULL;

static uint64_t
bench_rng(void)
{
	uint64_t z = (bench_rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t
bench_below(size_t n)
{
	return (size_t)(bench_rng() % n);
}

static const char *const words[] = {
	"the", "of", "and", "to", "a", "in", "is", "you", "that", "it", "he",
	"was", "for", "on", "are", "as", "with", "his", "they", "at", "be",
	"this", "have", "from", "or", "one", "had", "by", "word", "but", "not",
	"what", "all", "were", "we", "when", "your", "can", "said", "there",
	"use", "an", "each", "which", "she", "do", "how", "their", "if",
	"will", "up", "other", "about", "out", "many", "then", "them", "these",
	"so", "some", "her", "would", "make", "like", "him", "into", "time",
	"has", "look", "two", "more", "write", "go", "see", "number", "no",
	"way", "could", "people", "my", "than", "first", "water", "been",
	"call", "who", "oil", "its", "now", "find", "long", "down", "day",
	"did", "get", "come", "made", "may", "part", "meeting", "report",
	"quarter", "budget", "customer", "invoice", "payment", "account",
	"please", "attached", "regards", "thanks", "project", "schedule",
	"review", "contract", "delivery", "order", "shipping", "team",
	"manager", "update", "follow", "question", "office", "monday",
	"friday", "tomorrow", "morning", "afternoon", "draft", "final",
	"approval", "signature", "document", "summary", "forecast", "revenue",
	"confidential", "internal", "partner", "vendor", "supplier", "bank",
	"transfer", "balance", "statement", "policy", "security", "password",
	"credentials", "server", "database", "release", "version", "issue",
};

#define NWORDS	(sizeof(words) / sizeof(words[0]))

static void
luhn_fix(char *d, size_t n)
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

/* snprintf into out; the length written (a cut token is still a token). */
static size_t bench_put(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static size_t
bench_put(char *out, size_t outsz, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(out, outsz, fmt, ap);
	va_end(ap);
	if (r < 0)
		return 0;
	return (size_t)r >= outsz ? outsz - 1 : (size_t)r;
}

/* One "number" token into out (outsz >= 20); returns its length. */
static size_t
bench_number(char *out, size_t outsz)
{
	static const char *const ibans[] = {
		"DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819",
		"FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300",
	};
	char d[20];
	size_t i, k = 0;
	int kind = (int)bench_below(100);

	if (kind < 30)		/* a date */
		return bench_put(out, outsz, "2026-%02zu-%02zu",
		    1 + bench_below(12), 1 + bench_below(28));
	if (kind < 50)		/* a price */
		return bench_put(out, outsz, "$%zu,%03zu.%02zu",
		    bench_below(100), bench_below(1000), bench_below(100));
	if (kind < 65)		/* a phone number */
		return bench_put(out, outsz, "555-%03zu-%04zu",
		    bench_below(1000), bench_below(10000));
	if (kind < 77)		/* an order number */
		return bench_put(out, outsz, "#%zu", bench_below(10000000));
	if (kind < 80)		/* an address */
		return bench_put(out, outsz, "%s.%s@%s.example.com",
		    words[bench_below(NWORDS)], words[bench_below(NWORDS)],
		    words[bench_below(NWORDS)]);
	if (kind < 88) {	/* a 16-digit number, a card one time in two */
		d[0] = "4526"[bench_below(4)];
		for (i = 1; i < 16; i++)
			d[i] = (char)('0' + bench_below(10));
		if (bench_below(2))
			luhn_fix(d, 16);
		for (i = 0; i < 16; i++) {
			if (i > 0 && i % 4 == 0 && kind >= 84)
				out[k++] = kind & 1 ? ' ' : '-';
			out[k++] = d[i];
		}
		return k;
	}
	if (kind < 95)		/* an SSN, or something shaped like one */
		return bench_put(out, outsz, "%03zu-%02zu-%04zu",
		    bench_below(1000), bench_below(100), bench_below(10000));
	if ((k = strlen(ibans[kind % 4])) >= outsz)
		k = outsz - 1;
	memcpy(out, ibans[kind % 4], k);
	return k;
}

static char *
bench_corpus(size_t size)
{
	char *c = malloc(size), tok[64];
	size_t len = 0, col = 0, n, sentence = 0;
	const char *w;

	if (c == NULL) {
		perror("malloc");
		exit(1);
	}
	while (len < size) {
		if (bench_below(40) == 0)
			n = bench_number(tok, sizeof(tok));
		else {
			w = words[bench_below(NWORDS)];
			n = strlen(w);
			memcpy(tok, w, n);
			if (sentence == 0)
				tok[0] = (char)(tok[0] - 0x20);
		}
		if (++sentence > 8 + bench_below(10)) {
			tok[n++] = '.';
			sentence = 0;
		} else if (bench_below(15) == 0)
			tok[n++] = ',';
		if (col + n + 1 > 76) {
			if (len + 2 > size)
				break;
			c[len++] = '\r';
			c[len++] = '\n';
			col = 0;
		} else if (col > 0 && len < size) {
			c[len++] = ' ';
			col++;
		}
		if (len + n > size)
			break;
		memcpy(c + len, tok, n);
		len += n;
		col += n;
	}
	while (len < size)
		c[len++] = '\n';
	return c;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum prim { P_CARDS, P_SSN, P_IBAN, P_KW, P_KWWORD, P_KW10K, P_RE1, P_RE2 };

struct bench_ctx {
	struct detect_kw	*kw, *kwword, *kw10k;
	struct detect_re	*re1, *re2;
};

static size_t
bench_run(struct bench_ctx *ctx, enum prim p, const char *s, size_t n)
{
	char sample[DETECT_SAMPLE_MAX];
	size_t count = 0;
	int rc = DETECT_OK;

	switch (p) {
	case P_CARDS:
		return detect_cards(s, n, sample, sizeof(sample));
	case P_SSN:
		return detect_ssn(s, n, sample, sizeof(sample));
	case P_IBAN:
		return detect_iban(s, n, sample, sizeof(sample));
	case P_KW:
		return detect_kw_count(ctx->kw, s, n, sample, sizeof(sample));
	case P_KWWORD:
		return detect_kw_count(ctx->kwword, s, n, sample,
		    sizeof(sample));
	case P_KW10K:
		return detect_kw_count(ctx->kw10k, s, n, sample,
		    sizeof(sample));
	case P_RE1:
		rc = detect_re_count(ctx->re1, s, n, &count, sample,
		    sizeof(sample));
		break;
	case P_RE2:
		rc = detect_re_count(ctx->re2, s, n, &count, sample,
		    sizeof(sample));
		break;
	}
	if (rc != DETECT_OK)
		fprintf(stderr, "regex: %s\n", detect_strerror(rc));
	return count;
}

/* Best of RUNS, in seconds. */
static double
bench_time(struct bench_ctx *ctx, const enum prim *ps, size_t nps,
    const char *s, size_t n, size_t *count)
{
	double best = 0, t;
	size_t r, i;

	for (r = 0; r < RUNS; r++) {
		t = now();
		for (*count = 0, i = 0; i < nps; i++)
			*count += bench_run(ctx, ps[i], s, n);
		t = now() - t;
		if (r == 0 || t < best)
			best = t;
	}
	return best;
}

/*
 * Pseudo-words of 4 to 11 letters; one in ten is a word of the corpus of
 * six letters or more ("invoice", "password"), every other one of those
 * a two-word phrase ("invoice password").
 */
static char **
bench_terms(size_t n)
{
	char **t = calloc(n, sizeof(char *));
	size_t i, j, len, real = 0;

	if (t == NULL)
		exit(1);
	for (i = 0; i < n; i++) {
		t[i] = malloc(48);
		if (t[i] == NULL)
			exit(1);
		if (i % 10 == 0) {
			const char *w, *w2;

			do
				w = words[real++ % NWORDS];
			while (strlen(w) < 6);
			do
				w2 = words[bench_below(NWORDS)];
			while (strlen(w2) < 6);
			if (i % 20 == 0)
				snprintf(t[i], 48, "%s", w);
			else
				snprintf(t[i], 48, "%s %s", w, w2);
			continue;
		}
		len = 4 + bench_below(8);
		for (j = 0; j < len; j++)
			t[i][j] = (char)('a' + bench_below(26));
		t[i][len] = '\0';
	}
	return t;
}

static struct detect_kw *
bench_kw(char **terms, size_t n, unsigned flags)
{
	char err[128];
	struct detect_kw *kw;

	kw = detect_kw_compile((const char *const *)terms, n, flags, err,
	    sizeof(err));
	if (kw == NULL) {
		fprintf(stderr, "keywords: %s\n", err);
		exit(1);
	}
	return kw;
}

static struct detect_re *
bench_re(const char *pat, unsigned flags)
{
	char err[256];
	struct detect_re *re;

	re = detect_re_compile(pat, strlen(pat), flags, err, sizeof(err));
	if (re == NULL) {
		fprintf(stderr, "regex %s: %s\n", pat, err);
		exit(1);
	}
	return re;
}

int
main(void)
{
	static const char re1[] = "\\b\\d{3}[-. ]\\d{3}[-. ]\\d{4}\\b";
	static const char re2[] =
	    "\\b[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}\\b";
	static const struct {
		const char	*name;
		enum prim	 ps[8];
		size_t		 nps;
	} rows[] = {
		{ "cards",		{ P_CARDS }, 1 },
		{ "ssn",		{ P_SSN }, 1 },
		{ "iban",		{ P_IBAN }, 1 },
		{ "keywords 1000",	{ P_KW }, 1 },
		{ "keywords 1000 word",	{ P_KWWORD }, 1 },
		{ "keywords 10000",	{ P_KW10K }, 1 },
		{ "regex phone",	{ P_RE1 }, 1 },
		{ "regex email",	{ P_RE2 }, 1 },
		{ "combined",		{ P_CARDS, P_SSN, P_IBAN, P_KW, P_RE1,
					  P_RE2 }, 6 },
	};
	struct bench_ctx ctx;
	char **t1k, **t10k;
	char *corpus;
	size_t i, count, n = CORPUS_SIZE;
	double t, mb = (double)n / (1 << 20);

	t = now();
	corpus = bench_corpus(n);
	t1k = bench_terms(1000);
	t10k = bench_terms(10000);
	ctx.kw = bench_kw(t1k, 1000, 0);
	ctx.kwword = bench_kw(t1k, 1000, DETECT_KW_WORD);
	ctx.kw10k = bench_kw(t10k, 10000, 0);
	ctx.re1 = bench_re(re1, 0);
	ctx.re2 = bench_re(re2, DETECT_RE_CASELESS);
	printf("corpus %.0f MB built in %.2f s; keyword DFA states: 1000 "
	    "terms %zu, 10000 terms %zu; regex JIT %s\n", mb, now() - t,
	    detect_kw_nstates(ctx.kw), detect_kw_nstates(ctx.kw10k),
	    detect_re_jit(ctx.re1) && detect_re_jit(ctx.re2) ? "on" : "off");

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		t = bench_time(&ctx, rows[i].ps, rows[i].nps, corpus, n,
		    &count);
		printf("%-20s %8.1f MB/s  %9zu matches\n", rows[i].name,
		    mb / t, count);
		fflush(stdout);
	}

	detect_kw_free(ctx.kw);
	detect_kw_free(ctx.kwword);
	detect_kw_free(ctx.kw10k);
	detect_re_free(ctx.re1);
	detect_re_free(ctx.re2);
	for (i = 0; i < 1000; i++)
		free(t1k[i]);
	for (i = 0; i < 10000; i++)
		free(t10k[i]);
	free(t1k);
	free(t10k);
	free(corpus);
	return 0;
}
