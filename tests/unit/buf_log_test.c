/*
 * buf_log_test: common/buf.c and common/log.c. log_quote() is checked
 * against an independent rendering for every destination size; log_msg()
 * output is captured from stderr (each Check test runs in its own
 * process) to show that a value cannot forge a second log line.
 */
#include <check.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

START_TEST(buf_basics)
{
	struct buf b = BUF_INIT;
	struct buf c;

	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
	ck_assert_uint_eq(b.len, 0);

	/* cstr of an empty buffer is "", not NULL, and len stays 0 */
	ck_assert_str_eq(buf_cstr(&b), "");
	ck_assert_uint_eq(b.len, 0);

	ck_assert_int_eq(buf_appends(&b, "hello"), 0);
	ck_assert_int_eq(buf_append(&b, ", ", 2), 0);
	ck_assert_int_eq(buf_appendf(&b, "%s %d%c", "world", 42, '!'), 0);
	ck_assert_uint_eq(b.len, 16);
	ck_assert_str_eq(buf_cstr(&b), "hello, world 42!");
	ck_assert_uint_eq(b.len, 16);
	ck_assert_uint_gt(b.cap, b.len);

	/* reset keeps the memory */
	{
		char *d = b.data;
		size_t cap = b.cap;

		buf_reset(&b);
		ck_assert_uint_eq(b.len, 0);
		ck_assert_ptr_eq(b.data, d);
		ck_assert_uint_eq(b.cap, cap);
	}
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);

	buf_init(&c);
	ck_assert_ptr_null(c.data);
	ck_assert_int_eq(buf_appendf(&c, "%s", ""), 0);
	ck_assert_uint_eq(c.len, 0);
	buf_free(&c);
}
END_TEST

/* Growth through many reallocations keeps every byte, including NULs. */
START_TEST(buf_growth)
{
	struct buf b = BUF_INIT;
	size_t i, total = 0, n;
	unsigned char chunk[300];

	for (n = 1; n <= 300; n++) {
		for (i = 0; i < n; i++)
			chunk[i] = (unsigned char)(total + i);
		ck_assert_int_eq(buf_append(&b, chunk, n), 0);
		total += n;
		ck_assert_uint_eq(b.len, total);
		ck_assert_uint_gt(b.cap, b.len);	/* room for cstr's NUL */
	}
	for (i = 0; i < total; i++)
		ck_assert_uint_eq((unsigned char)b.data[i], (unsigned char)i);
	buf_free(&b);
}
END_TEST

START_TEST(buf_appendf_long)
{
	struct buf b = BUF_INIT;
	char big[10001];
	size_t i;

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(buf_appends(&b, "<"), 0);
	ck_assert_int_eq(buf_appendf(&b, "%s|%05d", big, 7), 0);
	ck_assert_uint_eq(b.len, 1 + 10000 + 6);
	ck_assert_int_eq(b.data[0], '<');
	for (i = 1; i <= 10000; i++)
		ck_assert_int_eq(b.data[i], 'q');
	ck_assert_str_eq(buf_cstr(&b) + 10001, "|00007");
	buf_free(&b);
}
END_TEST

START_TEST(buf_overflow)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX), -1);
	ck_assert_int_eq(buf_appends(&b, "abc"), 0);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX), -1);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX - 3), -1);
	ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX - 1), -1);
	ck_assert_uint_eq(b.len, 3);
	ck_assert_str_eq(buf_cstr(&b), "abc");
	buf_free(&b);
}
END_TEST

/* Appending a buffer's own bytes to it survives the reallocation. */
START_TEST(buf_self_append)
{
	struct buf b = BUF_INIT;
	int i;

	ck_assert_int_eq(buf_appends(&b, "ab"), 0);
	for (i = 0; i < 12; i++)
		ck_assert_int_eq(buf_append(&b, b.data, b.len), 0);
	ck_assert_uint_eq(b.len, 2u << 12);
	for (i = 0; i < (2 << 12); i++)
		ck_assert_int_eq(b.data[i], i % 2 ? 'b' : 'a');
	ck_assert_int_eq(buf_append(&b, b.data + 1, 1), 0);
	ck_assert_int_eq(b.data[b.len - 1], 'b');
	buf_free(&b);
}
END_TEST

/* --- log_quote --- */

/* The full rendering, written independently of log.c. */
static void
ref_quote(struct buf *o, const char *s, size_t len, int force)
{
	size_t i;
	int bare = len > 0 && !force;

	buf_reset(o);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=')
			bare = 0;
	}
	if (bare) {
		ck_assert_int_eq(buf_append(o, s, len), 0);
		return;
	}
	ck_assert_int_eq(buf_append(o, "\"", 1), 0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			ck_assert_int_eq(buf_appendf(o, "\\%c", c), 0);
		else if (c < 0x20 || c >= 0x7f)
			ck_assert_int_eq(buf_appendf(o, "\\x%02x", c), 0);
		else
			ck_assert_int_eq(buf_append(o, &s[i], 1), 0);
	}
	ck_assert_int_eq(buf_append(o, "\"", 1), 0);
}

static void
quote_is(const char *s, size_t len, const char *want)
{
	char dst[256];

	ck_assert_str_eq(log_quote(dst, sizeof(dst), s, len), want);
}

START_TEST(quote_values)
{
	quote_is("abc", 3, "abc");
	quote_is("127.0.0.1:25", 12, "127.0.0.1:25");
	quote_is("<a@b.example>", 13, "<a@b.example>");
	quote_is("", 0, "\"\"");
	quote_is("a b", 3, "\"a b\"");
	quote_is("k=v", 3, "\"k=v\"");
	quote_is("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
	quote_is("a\\b", 3, "\"a\\\\b\"");
	quote_is("x\r\nevent=forged", 15, "\"x\\x0d\\x0aevent=forged\"");
	quote_is("a\0b", 3, "\"a\\x00b\"");
	quote_is("\x7f\xff\x1b", 3, "\"\\x7f\\xff\\x1b\"");
	quote_is("caf\xc3\xa9", 5, "\"caf\\xc3\\xa9\"");
	/* only len bytes are read */
	quote_is("abcdef", 2, "ab");
}
END_TEST

/*
 * For many inputs and every dst size: NUL-terminated, nothing written past
 * dstsz, the full rendering whenever it fits, else a prefix of the quoted
 * rendering ending in `..."`, or "" when dst is under 8.
 */
START_TEST(quote_every_size)
{
	static const char *const inputs[] = {
		"a", "abc", "a b", "", "hello world", "\"\"\"\"",
		"\x01\x02\x03\x04\x05", "plainlongervaluewithoutanything",
		"mixed \"q\" \\ and \r\n ctl \xff", "==========",
	};
	struct buf ref = BUF_INIT, pre = BUF_INIT;
	char dst[80];
	size_t i, sz, rl, ol, k;
	const char *s;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		s = inputs[i];
		ref_quote(&ref, s, strlen(s), 0);
		rl = ref.len;
		for (sz = 0; sz < sizeof(dst) - 1; sz++) {
			memset(dst, '#', sizeof(dst));
			ck_assert_ptr_eq(log_quote(dst, sz, s, strlen(s)), dst);
			ck_assert_msg(dst[sz] == '#', "wrote past %zu", sz);
			if (sz == 0)
				continue;
			ol = strnlen(dst, sz);
			ck_assert_uint_lt(ol, sz);
			if (rl < sz) {
				ck_assert_msg(ol == rl && memcmp(dst, ref.data,
				    rl) == 0, "\"%s\" in %zu: got %s want %.*s",
				    s, sz, dst, (int)rl, ref.data);
			} else if (sz < 8) {
				ck_assert_str_eq(dst, "");
			} else {
				ck_assert_uint_ge(ol, 5);
				ck_assert_str_eq(dst + ol - 4, "...\"");
				/*
				 * What precedes `..."` is the quoted form of
				 * some whole prefix of s, without its closing
				 * quote: no escape sequence cut in half.
				 */
				for (k = 0; k <= strlen(s); k++) {
					ref_quote(&pre, s, k, 1);
					if (pre.len - 1 == ol - 4 &&
					    memcmp(pre.data, dst, ol - 4) == 0)
						break;
				}
				ck_assert_msg(k <= strlen(s),
				    "\"%s\" in %zu: %s not a prefix", s, sz,
				    dst);
			}
		}
	}
	buf_free(&ref);
	buf_free(&pre);
}
END_TEST

/* --- log_msg, captured --- */

static char cap_path[64];
static int cap_saved = -1;

static void
capture_start(void)
{
	int fd;

	snprintf(cap_path, sizeof(cap_path), "/tmp/mp-logtest-XXXXXX");
	fd = mkstemp(cap_path);
	ck_assert_int_ge(fd, 0);
	cap_saved = dup(STDERR_FILENO);
	ck_assert_int_ge(cap_saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

/* Stop capturing; returns what was written (caller frees). */
static char *
capture_end(size_t *len)
{
	FILE *f;
	char *out;
	long n;

	ck_assert_int_ge(dup2(cap_saved, STDERR_FILENO), 0);
	close(cap_saved);
	f = fopen(cap_path, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	out = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(fread(out, 1, (size_t)n, f), (size_t)n);
	out[n] = '\0';
	fclose(f);
	unlink(cap_path);
	*len = (size_t)n;
	return out;
}

static size_t
count_char(const char *s, size_t n, char c)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

START_TEST(log_line_format)
{
	char q[128], *out;
	size_t len;
	regex_t re;
	static const char value[] = "x\r\n2026-01-01T00:00:00.000Z "
	    "mailprevent[1] level=error event=forged";

	log_init("mp-test", LOG_DEBUG);
	capture_start();
	log_msg(LOG_INFO, "00a1b2", "connect", "client=%s raw=%s",
	    log_quote(q, sizeof(q), value, strlen(value)), value);
	out = capture_end(&len);

	/* one line, however hard the value tries */
	ck_assert_uint_eq(count_char(out, len, '\n'), 1);
	ck_assert_int_eq(out[len - 1], '\n');
	ck_assert_uint_eq(count_char(out, len, '\r'), 0);
	ck_assert_int_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T"
	    "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z mp-test\\[[0-9]+\\] "
	    "level=info sid=00a1b2 event=connect client=\"x\\\\x0d\\\\x0a"
	    "2026-01-01T00:00:00.000Z mailprevent\\[1\\] level=error "
	    "event=forged\" raw=x\\?\\?2026", REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "got: %s", out);
	regfree(&re);
	free(out);
}
END_TEST

START_TEST(log_levels)
{
	enum log_level l;
	char *out;
	size_t len;

	ck_assert_int_eq(log_level_parse("debug", &l), 0);
	ck_assert_int_eq(l, LOG_DEBUG);
	ck_assert_int_eq(log_level_parse("INFO", &l), 0);
	ck_assert_int_eq(l, LOG_INFO);
	ck_assert_int_eq(log_level_parse("Warn", &l), 0);
	ck_assert_int_eq(l, LOG_WARN);
	ck_assert_int_eq(log_level_parse("error", &l), 0);
	ck_assert_int_eq(l, LOG_ERR);
	ck_assert_int_eq(log_level_parse("verbose", &l), -1);
	ck_assert_int_eq(log_level_parse("", &l), -1);

	log_init("mp-test", LOG_WARN);
	capture_start();
	log_msg(LOG_INFO, NULL, "hidden", "k=v");
	log_msg(LOG_DEBUG, NULL, "hidden", "k=v");
	log_msg(LOG_WARN, NULL, "shown", "k=1");
	log_set_level(LOG_ERR);
	log_msg(LOG_WARN, NULL, "hidden", NULL);
	log_msg(LOG_ERR, NULL, "shown2", NULL);
	out = capture_end(&len);
	ck_assert_ptr_null(strstr(out, "hidden"));
	ck_assert_ptr_nonnull(strstr(out, " level=warn event=shown k=1\n"));
	ck_assert_ptr_nonnull(strstr(out, " level=error event=shown2\n"));
	ck_assert_ptr_null(strstr(out, "sid="));
	free(out);
}
END_TEST

/* A line longer than the internal buffer is cut, still one line. */
START_TEST(log_long_line)
{
	char *big = malloc(10001), *out;
	size_t len;

	ck_assert_ptr_nonnull(big);
	memset(big, 'v', 10000);
	big[10000] = '\0';
	log_init("mp-test", LOG_DEBUG);
	capture_start();
	log_msg(LOG_INFO, "s1", "big", "v=%s", big);
	log_msg(LOG_INFO, "s2", "after", NULL);
	out = capture_end(&len);
	ck_assert_uint_eq(count_char(out, len, '\n'), 2);
	ck_assert_ptr_nonnull(strstr(out, "vvvv\n"));
	ck_assert_uint_lt((size_t)(strchr(out, '\n') - out), 4096);
	ck_assert_ptr_nonnull(strstr(out, " sid=s2 event=after\n"));
	free(out);
	free(big);
}
END_TEST

static void
quiet(void)
{
	int fd = open("/dev/null", O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

START_TEST(log_fatal_exits)
{
	quiet();
	log_init("mp-test", LOG_DEBUG);
	log_fatal("cannot open %s", "/nonexistent");
}
END_TEST

START_TEST(log_panic_aborts)
{
	quiet();
	log_init("mp-test", LOG_DEBUG);
	log_panic("impossible state %d", 7);
}
END_TEST

static Suite *
buf_log_suite(void)
{
	Suite *s = suite_create("buf_log");
	TCase *tc;

	tc = tcase_create("buf");
	tcase_add_test(tc, buf_basics);
	tcase_add_test(tc, buf_growth);
	tcase_add_test(tc, buf_appendf_long);
	tcase_add_test(tc, buf_overflow);
	tcase_add_test(tc, buf_self_append);
	suite_add_tcase(s, tc);

	tc = tcase_create("log");
	tcase_add_test(tc, quote_values);
	tcase_add_test(tc, quote_every_size);
	tcase_add_test(tc, log_line_format);
	tcase_add_test(tc, log_levels);
	tcase_add_test(tc, log_long_line);
	tcase_add_exit_test(tc, log_fatal_exits, 1);
	tcase_add_test_raise_signal(tc, log_panic_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(buf_log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
