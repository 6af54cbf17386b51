-- Real Postfix as the Prevent-integrated MTA, client_ip architecture: the
-- chapter 5 functional tests, failover and what gets past it, with the
-- fragments of scenarios/lib/postfix.lua (docs/integration/postfix.md).
--
--   bin/mta-sim run scenarios/postfix/client_ip.lua      (as root; make postfix-scenarios)

local P = assert(load(assert(sim.read("scenarios/lib/postfix.lua")),
  "@scenarios/lib/postfix.lua", "t", _ENV))()

P.functional("client_ip")
P.failover("client_ip")
P.security("client_ip")
