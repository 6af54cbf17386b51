-- The appendix B checklist against your own staging MTA and proxy: sends
-- the chapter 5 test messages, reads back what arrives at a sink the
-- toolkit runs, one scenario per check. Settings come from the
-- environment (docs/integration/postfix.md, "Checking your own staging
-- systems"); without CHECK_MTA it checks a local Postfix instead.
--
--   CHECK_MTA=10.1.2.3:25 CHECK_SINK=10.1.2.99:2525 \
--     bin/mta-sim run --format checklist --junit checklist.xml scenarios/postfix/checklist.lua

local P = assert(load(assert(sim.read("scenarios/lib/postfix.lua")),
  "@scenarios/lib/postfix.lua", "t", _ENV))()

P.checklist()
