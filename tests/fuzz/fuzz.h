/*
 * fuzz.h: what every libFuzzer target in tests/fuzz/ shares. A broken
 * invariant aborts, so libFuzzer saves the input as a crash; the message
 * names the target and the check, which is all a reproducer needs.
 */
#ifndef MP_FUZZ_H
#define MP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ",	\
		    __FILE__, __LINE__, #cond);				\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

/*
 * Wire form checks shared by smtp_data and message: CR and LF appear
 * only as CRLF pairs, every line that starts with a dot was stuffed, and
 * the only "." line is the last one, so <CRLF>.<CRLF> occurs exactly once.
 */
static inline void
fuzz_check_wire(const char *w, size_t len)
{
	size_t i, bol = 0;

	FUZZ_CHECK(len >= 3 && memcmp(w + len - 3, ".\r\n", 3) == 0,
	    "wire form does not end in .CRLF (len %zu)", len);
	FUZZ_CHECK(len == 3 || (len >= 5 && w[len - 5] == '\r' &&
	    w[len - 4] == '\n'), "terminator not preceded by CRLF");
	for (i = 0; i < len; i++) {
		if (w[i] == '\r')
			FUZZ_CHECK(i + 1 < len && w[i + 1] == '\n',
			    "bare CR at offset %zu", i);
		if (w[i] == '\n')
			FUZZ_CHECK(i > 0 && w[i - 1] == '\r',
			    "bare LF at offset %zu", i);
		if (i == bol && w[i] == '.' && i != len - 3)
			FUZZ_CHECK(i + 1 < len && w[i + 1] == '.',
			    "unstuffed dot line at offset %zu", i);
		if (w[i] == '\n')
			bol = i + 1;
	}
}

/*
 * What a receiver makes of content: CRLF, bare CR and bare LF each end a
 * line, and a last line without an ending gets one.
 */
static inline char *
fuzz_normalize(const char *s, size_t len, size_t *outlen)
{
	char *o = malloc(2 * len + 3);
	size_t i, n = 0;

	if (o == NULL)
		abort();
	for (i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
				i++;
			o[n++] = '\r';
			o[n++] = '\n';
		} else
			o[n++] = s[i];
	}
	if (n > 0 && o[n - 1] != '\n') {
		o[n++] = '\r';
		o[n++] = '\n';
	}
	*outlen = n;
	return o;
}

#endif
