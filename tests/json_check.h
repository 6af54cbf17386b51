/*
 * json_check: a small, strict JSON reader for the tests that check what the
 * proxy writes as JSON (the incident log). One value per call, RFC 8259:
 * strings must be valid UTF-8 with no raw control bytes, escapes are
 * decoded (a lone surrogate is refused: it cannot be UTF-8), duplicate keys
 * in an object are refused, nothing but whitespace may follow the value.
 * It is an oracle for tests, kept apart from the code under test; it is
 * not meant to be fast.
 *
 * Header-only so that unit and end-to-end tests can share it without a
 * Makefile change; everything is static and marked unused.
 */
#ifndef MP_TESTS_JSON_CHECK_H
#define MP_TESTS_JSON_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JC_UNUSED	__attribute__((unused))

enum jc_type { JC_NULL, JC_BOOL, JC_NUM, JC_STR, JC_ARR, JC_OBJ };

struct jc_val {
	enum jc_type	  type;
	int		  b;		/* JC_BOOL */
	char		 *num;		/* JC_NUM: the literal, NUL-terminated */
	char		 *str;		/* JC_STR: decoded UTF-8, NUL-terminated */
	size_t		  slen;		/* may hide a NUL: \u0000 */
	struct jc_val	**items;	/* JC_ARR, JC_OBJ */
	char		**keys;		/* JC_OBJ */
	size_t		  n;
};

struct jc_ctx {
	const unsigned char	*start, *p, *end;
	char			*err;
	size_t			 errsz;
	int			 depth;
};

static JC_UNUSED void jc_free(struct jc_val *);
static struct jc_val *jc_value(struct jc_ctx *);

static JC_UNUSED int
jc_fail(struct jc_ctx *c, const char *what)
{
	if (c->err != NULL && c->err[0] == '\0')
		snprintf(c->err, c->errsz, "%s at offset %ld", what,
		    (long)(c->p - c->start));
	return -1;
}

static void
jc_ws(struct jc_ctx *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
	    *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t
jc_utf8(const unsigned char *p, const unsigned char *end)
{
	size_t n, i;
	unsigned long cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static int
jc_put(char **s, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = (*cap ? *cap * 2 : 32) + n;
		char *ns = realloc(*s, nc);

		if (ns == NULL)
			return -1;
		*s = ns;
		*cap = nc;
	}
	memcpy(*s + *len, p, n);
	*len += n;
	(*s)[*len] = '\0';
	return 0;
}

static int
jc_hex4(struct jc_ctx *c, unsigned long *v)
{
	int i;

	*v = 0;
	if (c->end - c->p < 4)
		return jc_fail(c, "short \\u escape");
	for (i = 0; i < 4; i++) {
		unsigned char h = *c->p++;

		*v <<= 4;
		if (h >= '0' && h <= '9')
			*v |= h - '0';
		else if (h >= 'a' && h <= 'f')
			*v |= h - 'a' + 10;
		else if (h >= 'A' && h <= 'F')
			*v |= h - 'A' + 10;
		else
			return jc_fail(c, "bad hex digit in \\u escape");
	}
	return 0;
}

/* A string; c->p is on the opening quote. */
static int
jc_string(struct jc_ctx *c, char **out, size_t *outlen)
{
	char *s = NULL;
	size_t len = 0, cap = 0, n;

	c->p++;
	if (jc_put(&s, &len, &cap, "", 0) == -1)
		return -1;
	for (;;) {
		if (c->p >= c->end) {
			free(s);
			return jc_fail(c, "unterminated string");
		}
		if (*c->p == '"') {
			c->p++;
			break;
		}
		if (*c->p < 0x20) {
			free(s);
			return jc_fail(c, "raw control byte in a string");
		}
		if (*c->p == '\\') {
			unsigned long cp, lo;
			unsigned char u[4];
			char e;

			if (++c->p >= c->end) {
				free(s);
				return jc_fail(c, "escape at the end");
			}
			e = (char)*c->p++;
			switch (e) {
			case '"': case '\\': case '/':
				jc_put(&s, &len, &cap, &e, 1);
				continue;
			case 'b': jc_put(&s, &len, &cap, "\b", 1); continue;
			case 'f': jc_put(&s, &len, &cap, "\f", 1); continue;
			case 'n': jc_put(&s, &len, &cap, "\n", 1); continue;
			case 'r': jc_put(&s, &len, &cap, "\r", 1); continue;
			case 't': jc_put(&s, &len, &cap, "\t", 1); continue;
			case 'u':
				break;
			default:
				free(s);
				return jc_fail(c, "unknown escape");
			}
			if (jc_hex4(c, &cp) == -1) {
				free(s);
				return -1;
			}
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				free(s);
				return jc_fail(c, "lone low surrogate");
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (c->end - c->p < 6 || c->p[0] != '\\' ||
				    c->p[1] != 'u') {
					free(s);
					return jc_fail(c, "lone high surrogate");
				}
				c->p += 2;
				if (jc_hex4(c, &lo) == -1 || lo < 0xdc00 ||
				    lo > 0xdfff) {
					free(s);
					return jc_fail(c, "bad surrogate pair");
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp < 0x80) {
				u[0] = (unsigned char)cp;
				n = 1;
			} else if (cp < 0x800) {
				u[0] = (unsigned char)(0xc0 | (cp >> 6));
				u[1] = (unsigned char)(0x80 | (cp & 0x3f));
				n = 2;
			} else if (cp < 0x10000) {
				u[0] = (unsigned char)(0xe0 | (cp >> 12));
				u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
				u[2] = (unsigned char)(0x80 | (cp & 0x3f));
				n = 3;
			} else {
				u[0] = (unsigned char)(0xf0 | (cp >> 18));
				u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
				u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
				u[3] = (unsigned char)(0x80 | (cp & 0x3f));
				n = 4;
			}
			jc_put(&s, &len, &cap, u, n);
			continue;
		}
		if ((n = jc_utf8(c->p, c->end)) == 0) {
			free(s);
			return jc_fail(c, "invalid UTF-8 in a string");
		}
		jc_put(&s, &len, &cap, c->p, n);
		c->p += n;
	}
	*out = s;
	*outlen = len;
	return 0;
}

static int
jc_number(struct jc_ctx *c, struct jc_val *v)
{
	const unsigned char *s = c->p;
	size_t digits;

	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == '0')
		c->p++;
	else {
		for (digits = 0; c->p < c->end && *c->p >= '0' && *c->p <= '9';
		    c->p++)
			digits++;
		if (digits == 0)
			return jc_fail(c, "bad number");
	}
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		for (digits = 0; c->p < c->end && *c->p >= '0' && *c->p <= '9';
		    c->p++)
			digits++;
		if (digits == 0)
			return jc_fail(c, "bad fraction");
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		for (digits = 0; c->p < c->end && *c->p >= '0' && *c->p <= '9';
		    c->p++)
			digits++;
		if (digits == 0)
			return jc_fail(c, "bad exponent");
	}
	if ((v->num = malloc((size_t)(c->p - s) + 1)) == NULL)
		return -1;
	memcpy(v->num, s, (size_t)(c->p - s));
	v->num[c->p - s] = '\0';
	return 0;
}

static int
jc_push(struct jc_val *v, char *key, struct jc_val *item)
{
	struct jc_val **ni = realloc(v->items, (v->n + 1) * sizeof(*ni));
	char **nk;

	if (ni == NULL)
		return -1;
	v->items = ni;
	if (v->type == JC_OBJ) {
		if ((nk = realloc(v->keys, (v->n + 1) * sizeof(*nk))) == NULL)
			return -1;
		v->keys = nk;
		v->keys[v->n] = key;
	}
	v->items[v->n++] = item;
	return 0;
}

static int
jc_literal(struct jc_ctx *c, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return jc_fail(c, "unexpected character");
	c->p += n;
	return 0;
}

static struct jc_val *
jc_value(struct jc_ctx *c)
{
	struct jc_val *v = calloc(1, sizeof(*v)), *item;
	char *key;
	size_t klen, i;

	if (v == NULL)
		return NULL;
	jc_ws(c);
	if (c->p >= c->end) {
		jc_fail(c, "value expected");
		goto bad;
	}
	if (++c->depth > 64) {
		jc_fail(c, "too deep");
		goto bad;
	}
	switch (*c->p) {
	case '{':
		v->type = JC_OBJ;
		c->p++;
		jc_ws(c);
		if (c->p < c->end && *c->p == '}') {
			c->p++;
			break;
		}
		for (;;) {
			jc_ws(c);
			if (c->p >= c->end || *c->p != '"') {
				jc_fail(c, "key expected");
				goto bad;
			}
			if (jc_string(c, &key, &klen) == -1)
				goto bad;
			for (i = 0; i < v->n; i++)
				if (strcmp(v->keys[i], key) == 0) {
					free(key);
					jc_fail(c, "duplicate key");
					goto bad;
				}
			jc_ws(c);
			if (c->p >= c->end || *c->p != ':') {
				free(key);
				jc_fail(c, "':' expected");
				goto bad;
			}
			c->p++;
			if ((item = jc_value(c)) == NULL) {
				free(key);
				goto bad;
			}
			if (jc_push(v, key, item) == -1) {
				free(key);
				jc_free(item);
				goto bad;
			}
			jc_ws(c);
			if (c->p < c->end && *c->p == ',') {
				c->p++;
				continue;
			}
			if (c->p < c->end && *c->p == '}') {
				c->p++;
				break;
			}
			jc_fail(c, "',' or '}' expected");
			goto bad;
		}
		break;
	case '[':
		v->type = JC_ARR;
		c->p++;
		jc_ws(c);
		if (c->p < c->end && *c->p == ']') {
			c->p++;
			break;
		}
		for (;;) {
			if ((item = jc_value(c)) == NULL)
				goto bad;
			if (jc_push(v, NULL, item) == -1) {
				jc_free(item);
				goto bad;
			}
			jc_ws(c);
			if (c->p < c->end && *c->p == ',') {
				c->p++;
				continue;
			}
			if (c->p < c->end && *c->p == ']') {
				c->p++;
				break;
			}
			jc_fail(c, "',' or ']' expected");
			goto bad;
		}
		break;
	case '"':
		v->type = JC_STR;
		if (jc_string(c, &v->str, &v->slen) == -1)
			goto bad;
		break;
	case 't':
		v->type = JC_BOOL;
		v->b = 1;
		if (jc_literal(c, "true") == -1)
			goto bad;
		break;
	case 'f':
		v->type = JC_BOOL;
		if (jc_literal(c, "false") == -1)
			goto bad;
		break;
	case 'n':
		v->type = JC_NULL;
		if (jc_literal(c, "null") == -1)
			goto bad;
		break;
	default:
		v->type = JC_NUM;
		if (jc_number(c, v) == -1)
			goto bad;
		break;
	}
	c->depth--;
	return v;
bad:
	jc_free(v);
	return NULL;
}

static JC_UNUSED void
jc_free(struct jc_val *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		jc_free(v->items[i]);
		if (v->keys != NULL)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->num);
	free(v->str);
	free(v);
}

/*
 * Parse s[0..len) as exactly one JSON value (whitespace around it
 * allowed). NULL on error, with the reason in err.
 */
static JC_UNUSED struct jc_val *
jc_parse(const char *s, size_t len, char *err, size_t errsz)
{
	struct jc_ctx c;
	struct jc_val *v;

	c.start = c.p = (const unsigned char *)s;
	c.end = c.p + len;
	c.err = err;
	c.errsz = errsz;
	c.depth = 0;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if ((v = jc_value(&c)) == NULL)
		return NULL;
	jc_ws(&c);
	if (c.p != c.end) {
		jc_fail(&c, "text after the value");
		jc_free(v);
		return NULL;
	}
	return v;
}

/* The member key of an object, or NULL. */
static JC_UNUSED const struct jc_val *
jc_get(const struct jc_val *o, const char *key)
{
	size_t i;

	if (o == NULL || o->type != JC_OBJ)
		return NULL;
	for (i = 0; i < o->n; i++)
		if (strcmp(o->keys[i], key) == 0)
			return o->items[i];
	return NULL;
}

/* The string member key, or NULL when absent or not a string. */
static JC_UNUSED const char *
jc_str(const struct jc_val *o, const char *key)
{
	const struct jc_val *v = jc_get(o, key);

	return v != NULL && v->type == JC_STR ? v->str : NULL;
}

/*
 * s[0..len) for a failure message: printable ASCII as is, other bytes as
 * \xNN, so that a test log stays text. malloc'd; the caller frees it.
 */
static JC_UNUSED char *
jc_vis(const char *s, size_t len)
{
	size_t cap = len * 4 + 1, i, o = 0;
	char *v = malloc(cap);

	if (v == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f)
			v[o++] = (char)ch;
		else {
			/* Four bytes and the NUL fit: cap holds 4 per byte. */
			snprintf(v + o, cap - o, "\\x%02x", ch);
			o += 4;
		}
	}
	v[o] = '\0';
	return v;
}

#endif
