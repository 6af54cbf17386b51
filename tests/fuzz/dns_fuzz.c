/*
 * dns_fuzz: the proxy's side of DNS. A hostile or broken DNS answer goes
 * through exactly what proxy/dns.c does with one: c-ares's MX, A and AAAA
 * parsers, then the proxy's own walk over the raw message for TTLs
 * (dns_mx_ttl). Checks: no crash, no leak, no read outside the message
 * (ASan), and TTLs within RFC 2181's range.
 */
#include "fuzz.h"

#include <ares.h>
#include <netdb.h>

#include "dns.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct ares_mx_reply *mx = NULL;
	struct ares_addrttl a[8];
	struct ares_addr6ttl a6[8];
	struct hostent *h = NULL;
	int na = 8, na6 = 8;
	uint32_t t;

	if (len > 65535)
		return 0;
	if (ares_parse_mx_reply(data, (int)len, &mx) == ARES_SUCCESS)
		ares_free_data(mx);
	if (ares_parse_a_reply(data, (int)len, &h, a, &na) == ARES_SUCCESS &&
	    h != NULL)
		ares_free_hostent(h);
	h = NULL;
	if (ares_parse_aaaa_reply(data, (int)len, &h, a6, &na6) ==
	    ARES_SUCCESS && h != NULL)
		ares_free_hostent(h);
	t = dns_mx_ttl(data, len, 0);
	FUZZ_CHECK(t <= 0x7fffffffu, "MX TTL %u out of range", t);
	t = dns_mx_ttl(data, len, 1);
	FUZZ_CHECK(t <= 0x7fffffffu, "negative TTL %u out of range", t);
	return 0;
}
