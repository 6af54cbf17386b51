-- Real Postfix as the Prevent-integrated MTA, header architecture: the
-- chapter 5 functional tests, failover and what gets past it, with the
-- fragments of scenarios/lib/postfix.lua (docs/integration/postfix.md).
--
--   bin/mta-sim run scenarios/postfix/header.lua      (as root; make postfix-scenarios)

local P = assert(load(assert(sim.read("scenarios/lib/postfix.lua")),
  "@scenarios/lib/postfix.lua", "t", _ENV))()

P.functional("header")
P.failover("header")
P.security("header")
