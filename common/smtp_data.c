/*
 * smtp_data: the DATA byte stream, in and out.
 *
 * The receiver is a small state machine whose whole state lives in
 * struct smtp_data_rx, so chunk boundaries never matter: feeding one byte
 * at a time gives the same result as feeding everything at once. Inside a
 * line it does not look at bytes one by one: memchr finds the next CR, LF
 * or NUL and the run before it is appended in one go.
 *
 * Storage follows a per-octet rule, whatever the chunking: an octet of
 * content is stored when no flag was set before it and it does not itself
 * cross max_line or max_size. A CRLF is stored whole or not at all. An
 * octet that raises BARE_CR, BARE_LF or NUL is not stored.
 */
#include "smtp_data.h"

#include <limits.h>
#include <string.h>

static const char rx_want[3] = { '\r', '\n', '\0' };
static const char stuff_want[2] = { '\r', '\n' };

enum rx_state {
	RX_BOL = 0,	/* at a line start, where a dot means something */
	RX_TEXT,	/* inside a line */
	RX_CR,		/* a CR, waiting to see whether LF follows */
	RX_DOT,		/* a dot at a line start */
	RX_DOT_CR,	/* ".\r" at a line start: one LF from the end */
	RX_DONE
};

/*
 * Next position of each wanted byte, remembered across runs so that a
 * chunk is scanned at most once per byte value (no quadratic rescans on
 * hostile input such as a megabyte of bare LFs).
 */
struct data_scan {
	const char	*at[3];
	unsigned	 known;
	unsigned	 nwant;
	const char	*want;
};

static void
data_scan_init(struct data_scan *sc, const char *want, unsigned nwant)
{
	sc->known = 0;
	sc->nwant = nwant;
	sc->want = want;
}

/* The first wanted byte at or after p, or end. */
static const char *
data_scan_next(struct data_scan *sc, const char *p, const char *end)
{
	const char *min = end, *q;
	unsigned i;

	for (i = 0; i < sc->nwant; i++) {
		if ((sc->known & (1u << i)) == 0 || sc->at[i] < p) {
			q = memchr(p, sc->want[i], (size_t)(end - p));
			sc->at[i] = q ? q : end;
			sc->known |= 1u << i;
		}
		if (sc->at[i] < min)
			min = sc->at[i];
	}
	return min;
}

void
smtp_data_rx_init(struct smtp_data_rx *rx, size_t max_line, uint64_t max_size)
{
	memset(rx, 0, sizeof(*rx));
	rx->state = RX_BOL;
	rx->max_line = max_line;
	rx->max_size = max_size;
}

/* Count n octets of the current line (as on the wire, without CRLF). */
static size_t
rx_line(struct smtp_data_rx *rx, size_t n)
{
	size_t fit = n;

	if (rx->max_line != 0 && rx->line_len + n > rx->max_line) {
		fit = rx->line_len < rx->max_line ?
		    rx->max_line - rx->line_len : 0;
		rx->flags |= SMTP_DATA_LONG_LINE;
	}
	rx->line_len += n;
	return fit;
}

/*
 * n octets of content: line text, or a CRLF (crlf set). Counted always,
 * stored under the rule at the top of this file.
 */
static int
rx_content(struct smtp_data_rx *rx, struct buf *out, const char *p, size_t n,
    int crlf)
{
	int store = rx->flags == 0;
	size_t fit;
	uint64_t room;

	fit = crlf ? n : rx_line(rx, n);
	if (rx->max_size != 0 && rx->size + n > rx->max_size) {
		room = rx->size < rx->max_size ? rx->max_size - rx->size : 0;
		if (room < fit)
			fit = crlf ? 0 : (size_t)room;
		rx->flags |= SMTP_DATA_TOO_BIG;
	}
	rx->size += n;
	if (store && fit > 0 && buf_append(out, p, fit) == -1)
		return -1;
	return 0;
}

long
smtp_data_rx_feed(struct smtp_data_rx *rx, const char *in, size_t len,
    struct buf *out, int *done)
{
	struct data_scan sc;
	const char *p = in, *end, *stop;
	int r = 0;

	*done = rx->state == RX_DONE;
	if (*done)
		return 0;
	if (len > LONG_MAX)
		len = LONG_MAX;		/* the caller comes back for the rest */
	end = in + len;
	data_scan_init(&sc, rx_want, sizeof(rx_want));

	while (p < end && r == 0) {
		switch (rx->state) {
		case RX_BOL:
			if (*p == '.') {
				/* The stuffing dot: neither content nor counted. */
				p++;
				rx->state = RX_DOT;
			} else
				rx->state = RX_TEXT;
			break;
		case RX_DOT:
			if (*p == '\r') {
				p++;
				rx->state = RX_DOT_CR;
			} else
				rx->state = RX_TEXT;	/* the dot was stuffing */
			break;
		case RX_DOT_CR:
			if (*p == '\n') {
				p++;
				rx->line_len = 0;
				rx->state = RX_DONE;
				*done = 1;
				goto out;
			}
			/* ".\r" and no LF: a bare CR on a stuffed line. */
			rx->flags |= SMTP_DATA_BARE_CR;
			r = rx_content(rx, out, "\r", 1, 0);
			rx->state = RX_TEXT;
			break;
		case RX_CR:
			if (*p == '\n') {
				p++;
				r = rx_content(rx, out, "\r\n", 2, 1);
				rx->lines++;
				rx->line_len = 0;
				rx->state = RX_BOL;
			} else {
				/* CR then anything but LF (CR included) is bare */
				rx->flags |= SMTP_DATA_BARE_CR;
				r = rx_content(rx, out, "\r", 1, 0);
				rx->state = RX_TEXT;
			}
			break;
		case RX_TEXT:
			stop = data_scan_next(&sc, p, end);
			if (stop > p) {
				r = rx_content(rx, out, p, (size_t)(stop - p), 0);
				p = stop;
				break;
			}
			if (*p == '\r')
				rx->state = RX_CR;
			else {
				/* LF without CR, or NUL: never a line end */
				rx->flags |= *p == '\n' ?
				    SMTP_DATA_BARE_LF : SMTP_DATA_NUL;
				r = rx_content(rx, out, p, 1, 0);
			}
			p++;
			break;
		}
	}
out:
	rx->wire += (uint64_t)(p - in);
	return r == -1 ? -1 : (long)(p - in);
}

int
smtp_data_stuff(struct buf *out, const char *content, size_t len)
{
	struct data_scan sc;
	const char *p = content, *end = content + len, *stop;
	size_t start = out->len;
	int bol = 1;

	data_scan_init(&sc, stuff_want, sizeof(stuff_want));
	if (buf_reserve(out, len + len / 32 + 5) == -1)
		return -1;
	while (p < end) {
		if (bol && *p == '.' && buf_append(out, ".", 1) == -1)
			goto fail;
		stop = data_scan_next(&sc, p, end);
		if (stop > p) {
			if (buf_append(out, p, (size_t)(stop - p)) == -1)
				goto fail;
			p = stop;
			bol = 0;
			if (p == end)
				break;
		}
		/*
		 * CRLF, a bare CR or a bare LF: each becomes one CRLF, so the
		 * next hop can never see a line end we did not mean.
		 */
		if (*p == '\r' && p + 1 < end && p[1] == '\n')
			p++;
		p++;
		if (buf_append(out, "\r\n", 2) == -1)
			goto fail;
		bol = 1;
	}
	if (!bol && buf_append(out, "\r\n", 2) == -1)
		goto fail;
	if (buf_append(out, ".\r\n", 3) == -1)
		goto fail;
	return 0;
fail:
	out->len = start;
	return -1;
}
