-- Message header routing (last in the guide's ranking): the MTA sends mail
-- to the proxy unless it carries the pass header, which the proxy adds to
-- every message it reflects. See docs/integration/header.md.
--
--   bin/mta-sim run scenarios/header.lua

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()
local ARCH = "header"

R.functional(ARCH)
R.failover(ARCH)

-- The header is part of the message, and the sender writes the message:
-- any mail client that can add a header line gets past the proxy.
scenario {
  name = "header: a forged pass header bypasses inspection",
  check = "Security: forged pass header", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_header(c), "bypassed", "the card message with a forged "
      .. R.PASS .. " skipped the proxy")
    t:finding("header routing: a sender who adds '" .. R.PASS .. "' to a message skips "
      .. "inspection; a card number went downstream unseen. Any mail client can add a "
      .. "header. Use listener or client-IP routing if the MTA can; otherwise at least "
      .. "remove the pass header from mail arriving from anywhere but the proxies.")
  end,
}

scenario {
  name = "header: a forged proxy HELO does not bypass inspection",
  check = "Security: forged proxy HELO", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(R.forged_helo(c), "blocked", "the forged HELO changed nothing: the card message was blocked")
  end,
}

-- Every message that leaves carries the pass header, so its value is no
-- secret: any recipient outside can read it and forge it.
scenario {
  name = "header: the pass header leaves with every delivered message",
  check = "Pass header on delivered mail", architecture = ARCH,
  run = function(t)
    local c = R.chain(t)
    t:eq(c:send("clean").code, 250)
    local m = t:require(c.down:wait(1, 10))[1]
    c:settle()
    t:eq(m:header(R.PASS_NAME), R.PASS_VALUE, "the downstream copy carries " .. R.PASS)
    t:note("header routing: the pass header goes out with every message, so a secret "
      .. "value does not stay secret. Strip it on the way out (downstream or at the edge) "
      .. "if the value is meant to be hard to guess.")
  end,
}
