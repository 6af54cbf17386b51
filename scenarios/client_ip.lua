-- SMTP client IP address routing (second in the guide's ranking): the MTA
-- sends mail to the proxy unless the TCP peer is one of the proxies'
-- addresses. The proxy reflects to the MTA's main port, from its
-- source_address. See docs/integration/client-ip.md.
--
--   bin/mta-sim run scenarios/client_ip.lua

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()
local ARCH = "client_ip"

R.functional(ARCH)
R.failover(ARCH)

-- The MTA takes the address from the TCP connection, never from a header,
-- so neither a header nor a HELO can fake it.

scenario {
  name = "client_ip: a forged pass header does not bypass inspection",
  check = "Security: forged pass header", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_header(c), "blocked", "the forged header changed nothing: the card message was blocked")
  end,
}

scenario {
  name = "client_ip: a forged proxy HELO does not bypass inspection",
  check = "Security: forged proxy HELO", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_helo(c), "blocked", "the forged HELO changed nothing: the card message was blocked")
  end,
}

-- What it takes to get past it: a connection that really comes from a
-- proxy's address. On loopback the scenario can simply bind to it; on a
-- network that means a foothold on the proxy host or its subnet (taking
-- over the address), not something a mail client can do.
scenario {
  name = "client_ip: only a connection from the proxy's own address bypasses inspection",
  check = "Security: proxy IP reused", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.attempt(c, { source = c.proxy.ip }), "bypassed",
      "mail sent from the proxy's address skipped the proxy")
    t:finding("client-IP routing: the proxies' addresses are the only credential. Mail "
      .. "from " .. c.proxy.ip .. " went out uninspected. Keep other hosts off those "
      .. "addresses (no shared or NATed address, no other service that relays mail from "
      .. "the proxy hosts), and take the address from the TCP connection, never from a "
      .. "Received header.")
  end,
}
