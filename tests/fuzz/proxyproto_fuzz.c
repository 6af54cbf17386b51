/*
 * proxyproto_fuzz: the PROXY protocol header parser (common/proxyproto.h).
 * Checks: a complete header never claims more bytes than it was given;
 * every prefix of an accepted header asks for more (never an error),
 * so the listener's decision does not depend on how TCP split the bytes.
 */
#include "fuzz.h"

#include "proxyproto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct proxyproto_result r, p;
	const char *err;
	enum proxyproto_status st;

	st = proxyproto_parse(data, len, &r, &err);
	if (st == PROXYPROTO_ERROR)
		FUZZ_CHECK(err != NULL, "error without a reason");
	if (st != PROXYPROTO_DONE)
		return 0;
	FUZZ_CHECK(r.used > 0 && r.used <= len, "used %zu of %zu", r.used, len);
	for (size_t i = 0; i < r.used; i++)
		FUZZ_CHECK(proxyproto_parse(data, i, &p, &err) == PROXYPROTO_MORE,
		    "prefix of %zu bytes (of %zu) not MORE", i, r.used);
	return 0;
}
