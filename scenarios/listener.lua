-- Second SMTP listener routing (the guide's most secure reflecting-mode
-- architecture): new mail arrives on the MTA's main listener and goes to
-- the proxy; the proxy reflects what passes to a second listener, and mail
-- that arrives there goes on. See docs/integration/listener.md.
--
--   bin/mta-sim run scenarios/listener.lua

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()
local ARCH = "listener"

R.functional(ARCH)
R.failover(ARCH)

-- Only the port a message arrives on counts: nothing the sender writes in
-- the message or says in the dialogue can make it look inspected.

scenario {
  name = "listener: a forged pass header does not bypass inspection",
  check = "Security: forged pass header", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_header(c), "blocked", "the forged header changed nothing: the card message was blocked")
  end,
}

scenario {
  name = "listener: a forged proxy HELO does not bypass inspection",
  check = "Security: forged proxy HELO", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_helo(c), "blocked", "the forged HELO changed nothing: the card message was blocked")
  end,
}

-- The weak point is the second listener itself: it must accept sessions
-- from the proxies only. The simulated MTA, like an MTA without an access
-- list on that port, accepts anyone there.
scenario {
  name = "listener: a sender that reaches the resubmit port bypasses inspection",
  check = "Security: resubmit port open", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    local port = t:require(c.mta.resubmit_port, "the MTA has a resubmit listener")
    t:ne(port, c.mta.port, "the resubmit port is not the main port")
    t:eq(R.attempt(c, { to = c.mta.ip .. ":" .. port }), "bypassed",
      "mail sent straight to the resubmit port skipped the proxy")
    t:finding("listener routing: a host that can open a connection to the resubmit port ("
      .. port .. ") delivers without inspection. Restrict that listener to the proxies' "
      .. "addresses (MTA access list or firewall); then this architecture cannot be bypassed "
      .. "from a mail client.")
  end,
}
