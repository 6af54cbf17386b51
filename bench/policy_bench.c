/*
 * policy_bench: throughput of the shipped policy set (every file in lua/policies)
 * on one core, the way the proxy runs it: one policy_evaluate() per
 * message, MIME parsed once per message, every policy's match() called.
 *
 * The corpus is generated (deterministic): messages of plain text, HTML,
 * quoted-printable text and base64 attachments, a few with something the
 * policies look for. Reported: MB/s of message content (1 MB = 2^20
 * bytes), best of three runs, and how many messages each action hit.
 * Numbers only: it never passes or fails on speed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "policy.h"

#define CORPUS_BYTES	(48u << 20)
#define RUNS		3

static uint64_t rng_state = 0x5eed1234ULL;

static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "that", "for", "on", "with",
	"meeting", "report", "quarter", "budget", "customer", "invoice",
	"payment", "account", "please", "attached", "regards", "project",
	"schedule", "review", "contract", "delivery", "order", "team",
	"update", "question", "office", "draft", "final", "approval",
	"document", "summary", "forecast", "revenue", "internal", "partner",
	"supplier", "bank", "transfer", "balance", "statement", "2026",
	"12.50", "+1-555-0100", "#4471", "Q4",
};

/* Text lines of about 70 octets, CRLF; sometimes a trigger phrase. */
static void
text(struct buf *b, size_t n, int html)
{
	size_t start = b->len, col = 0;

	if (html)
		buf_appends(b, "<html><body><p>");
	while (b->len - start < n) {
		const char *w = words[rng() % (sizeof(words) / sizeof(words[0]))];

		if (rng() % 5000 == 0)
			w = "4111 1111 1111 1111";
		else if (rng() % 5000 == 0)
			w = "confidential";
		buf_appends(b, w);
		col += strlen(w) + 1;
		if (col > 68) {
			buf_appends(b, html ? "<br>\r\n" : "\r\n");
			col = 0;
		} else
			buf_append(b, " ", 1);
	}
	buf_appends(b, html ? "</p></body></html>\r\n" : "\r\n");
}

static void
base64(struct buf *b, size_t n)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i < n; i++) {
		buf_append(b, &a[rng() & 63], 1);
		if (i % 76 == 75)
			buf_appends(b, "\r\n");
	}
	buf_appends(b, "\r\n");
}

/* One message of about size octets, of kind k. */
static void
message(struct buf *b, size_t size, unsigned k)
{
	buf_appendf(b, "From: alice@example.com\r\nTo: bob@example.net\r\n"
	    "Subject: weekly %s\r\nMessage-ID: <%llu@bench>\r\n"
	    "MIME-Version: 1.0\r\n", words[k % 10],
	    (unsigned long long)rng());
	switch (k % 4) {
	case 0:
		buf_appends(b, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
		text(b, size, 0);
		break;
	case 1:
		buf_appends(b, "Content-Type: multipart/alternative; boundary=b1\r\n"
		    "\r\n--b1\r\nContent-Type: text/plain\r\n\r\n");
		text(b, size / 2, 0);
		buf_appends(b, "--b1\r\nContent-Type: text/html\r\n\r\n");
		text(b, size / 2, 1);
		buf_appends(b, "--b1--\r\n");
		break;
	case 2:
		buf_appends(b, "Content-Type: text/plain; charset=iso-8859-1\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
		text(b, size, 0);
		break;
	case 3:
		buf_appends(b, "Content-Type: multipart/mixed; boundary=m1\r\n"
		    "\r\n--m1\r\nContent-Type: text/plain\r\n\r\n");
		text(b, size / 4, 0);
		buf_appends(b, "--m1\r\nContent-Type: application/pdf; "
		    "name=report.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n");
		base64(b, size * 3 / 4);
		buf_appends(b, "--m1--\r\n");
		break;
	}
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char *argv[])
{
	static const size_t sizes[] = { 4 * 1024, 32 * 1024, 256 * 1024 };
	const char *globs[] = { "lua/policies/*.lua" };
	struct policy_limits lim = { 50000000, 256u << 20 };
	struct buf err = BUF_INIT;
	struct policy_set *set;
	struct buf *msgs = NULL;
	size_t nmsgs = 0, cap = 0, total = 0, i, s;
	unsigned long hits[4];
	double best = 0;
	int r;

	log_init("policy_bench", LOG_WARN);
	if ((set = policy_load(globs, 1, &lim, &err)) == NULL) {
		fprintf(stderr, "policy_bench: %s", buf_cstr(&err));
		return 1;
	}
	while (total < CORPUS_BYTES) {
		if (nmsgs == cap) {
			cap = cap ? cap * 2 : 256;
			msgs = realloc(msgs, cap * sizeof(*msgs));
			if (msgs == NULL)
				return 1;
		}
		buf_init(&msgs[nmsgs]);
		message(&msgs[nmsgs], sizes[nmsgs % 3], (unsigned)nmsgs);
		total += msgs[nmsgs].len;
		nmsgs++;
	}
	for (r = 0; r < RUNS; r++) {
		double t0 = now(), t;

		memset(hits, 0, sizeof(hits));
		for (i = 0; i < nmsgs; i++) {
			const char *rc[] = { "bob@example.net" };
			struct policy_envelope env = {
				"alice@example.com", rc, 1, "bench.example",
				"127.0.0.1", msgs[i].data, msgs[i].len, NULL
			};
			struct verdict v;

			memset(&v, 0, sizeof(v));
			policy_evaluate(set, &env, &v);
			hits[v.action]++;
			verdict_free(&v);
		}
		t = now() - t0;
		if (best == 0 || (double)total / t > best)
			best = (double)total / t;
	}
	printf("policy set: %zu policies, corpus %zu messages, %.1f MB "
	    "(text, HTML, quoted-printable, base64 attachments)\n",
	    policy_count(set), nmsgs, (double)total / (1 << 20));
	printf("%-28s %10.1f MB/s  (%.0f msg/s)\n", "shipped policies, one core",
	    best / (1 << 20), best / ((double)total / (double)nmsgs));
	printf("verdicts per run: pass %lu, modify %lu, redirect %lu, block %lu\n",
	    hits[VERDICT_PASS], hits[VERDICT_MODIFY], hits[VERDICT_REDIRECT],
	    hits[VERDICT_BLOCK]);
	for (s = 0; s < nmsgs; s++)
		buf_free(&msgs[s]);
	free(msgs);
	policy_set_free(set);
	buf_free(&err);
	return 0;
}
