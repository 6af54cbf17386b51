-- STARTTLS between Postfix and mailprevent, both ways, with certificates
-- from t:pki (bin/certs-gen): Postfix checks the proxy's certificate
-- (smtp_tls_security_level = secure) and the proxy checks Postfix's
-- (tls.trust_file; in reflect mode against the MTA's address). The
-- fragments are P.TLS in scenarios/lib/postfix.lua.
--
--   bin/mta-sim run scenarios/postfix/tls.lua      (as root; make postfix-scenarios)

local P = assert(load(assert(sim.read("scenarios/lib/postfix.lua")),
  "@scenarios/lib/postfix.lua", "t", _ENV))()
local R = P.R

local function def(what, check, arch, run)
  scenario { name = "postfix tls: " .. what, check = check, architecture = arch,
             timeout = 30, tags = { "postfix", "tls" }, run = run }
end

def("listener: STARTTLS to the proxy and back, both verified", "TLS: reflect end to end",
    "listener", function(t)
  local c = P.chain(t, "listener", { tls = true })
  local r = c:send("confidential")
  t:eq(r.code, 250, r.text)
  local m = t:require(c.enc:wait(1, 10))[1]
  c:settle()
  t:eq(m:header("X-CFilter"), "Encrypt", "inspected and routed as usual")
  c:handled_once(m)
  t:eq(c.pf:log_count("Verified TLS connection established to " .. c.proxy.ip), 1,
    "Postfix verified the proxy's certificate and name")
  t:eq(c.pf:log_count("TLS connection established from unknown[" .. c.proxy.ip .. "]"), 1,
    "the proxy came back over TLS (the second listener requires it)")
  t:require(c.proxy:wait_log("side=inbound", 5))
  local out = t:require(c.proxy:wait_log("side=outbound", 5))
  t:contains(out, "verify=ok", "the proxy verified Postfix's certificate")
end)

def("listener: a proxy certificate Postfix does not trust: the mail waits",
    "TLS: untrusted proxy", "listener", function(t)
  local c = P.chain(t, "listener", { tls = "untrusted" })
  c.pf:mark()
  t:eq(c:send("clean").code, 250, "Postfix accepts")
  local line = t:require(c.pf:wait_log("status=deferred", 10), "Postfix defers it")
  t:contains(line, "certificate", "because the proxy's certificate does not verify")
  t:eq(c.pf:queued(), 1, "held in the queue")
  t:eq(c:inspections(), 0, "nothing was handed to the proxy")
  c:expect_counts({}, "nothing left Postfix")
end)

def("forwarding: Postfix to the proxy to Postfix, both verified", "TLS: forwarding end to end",
    "forwarding", function(t)
  local c = P.forward_chain(t, { tls = true })
  t:eq(c:send("clean").code, 250)
  local m = t:require(c.down:wait(1, 10))[1]
  c:settle()
  t:require(c.pf2:wait_queue_empty(10))
  t:eq(m.subject, R.MAIL.clean.subject)
  t:eq(#m:headers(R.PASS_NAME), 1, "inspected once")
  t:eq(c.pf:log_count("Verified TLS connection established to " .. c.proxy.ip), 1,
    "the upstream Postfix verified the proxy")
  t:eq(c.pf2:log_count("TLS connection established from unknown[" .. c.proxy.ip .. "]"), 1,
    "the proxy used STARTTLS to the downstream Postfix")
  local out = t:require(c.proxy:wait_log("side=outbound", 5))
  t:contains(out, "verify=ok", "and verified its certificate")
end)
