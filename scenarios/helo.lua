-- HELO identification string routing (third in the guide's ranking): the
-- MTA sends mail to the proxy unless the client greeted with one of the
-- proxies' HELO names. The proxy reflects to the MTA's main port. See
-- docs/integration/helo.md.
--
--   bin/mta-sim run scenarios/helo.lua

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()
local ARCH = "helo"

R.functional(ARCH)
R.failover(ARCH)

scenario {
  name = "helo: a forged pass header does not bypass inspection",
  check = "Security: forged pass header", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_header(c), "blocked", "the forged header changed nothing: the card message was blocked")
  end,
}

-- The HELO name is whatever the client says. A mail client usually picks
-- it on its own, but anyone who runs an SMTP client of their choosing (a
-- script, a test tool, their own MTA) can say the proxy's name.
scenario {
  name = "helo: a client that says the proxy's HELO name bypasses inspection",
  check = "Security: forged proxy HELO", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_helo(c), "bypassed", "mail from a client greeting as "
      .. c.proxy.helo_name .. " skipped the proxy")
    t:finding("HELO routing: a client that greets with the proxy's name ("
      .. c.proxy.helo_name .. ") delivers without inspection. It takes an SMTP client the "
      .. "attacker controls, harder than adding a header in a mail client, but no "
      .. "more than a script. Accept that HELO only from the proxies' addresses, or use "
      .. "listener or client-IP routing.")
  end,
}
