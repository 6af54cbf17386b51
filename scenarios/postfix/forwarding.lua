-- Real Postfix in forwarding mode: Postfix is the upstream MTA and relays
-- everything to mailprevent, which forwards it to the downstream MTA (a
-- sink, or a second Postfix that routes on X-CFilter). A refusal goes back
-- to the upstream Postfix, which writes the NDR itself.
--
--   bin/mta-sim run scenarios/postfix/forwarding.lua      (as root; make postfix-scenarios)

local P = assert(load(assert(sim.read("scenarios/lib/postfix.lua")),
  "@scenarios/lib/postfix.lua", "t", _ENV))()
local R = P.R
local ARCH = "forwarding"

local function def(what, check, run)
  scenario { name = "postfix forwarding: " .. what, check = check, architecture = ARCH,
             timeout = 30, tags = { "postfix" }, run = run }
end

-- Delivered by the proxy after one inspection.
local function forwarded_once(t, c, m)
  t:eq(m.client_ip, c.proxy.ip, "delivered by the proxy")
  t:eq(m.helo, c.proxy.helo_name, "with the proxy's HELO")
  t:eq(#m:headers(R.PASS_NAME), 1, "the pass header once")
  t:eq(c:own_received(m), 1, "through the upstream Postfix once")
end

def("no policy violated", "No policy violated", function(t)
  local c = P.forward_chain(t)
  local r = c:send("clean")
  t:eq(r.code, 250, r.text)
  local m = t:require(c.down:wait(1, 10))[1]
  c:settle()
  c:expect_counts({ downstream = 1 }, "delivered once")
  t:eq(m.rcpts, { R.RCPT })
  t:eq(m.subject, R.MAIL.clean.subject, "unchanged")
  forwarded_once(t, c, m)
  t:eq(c.proxy:log_count("event=relayed"), 1, "inspected once")
  t:eq(c.pf:log_count("relay=" .. c.proxy.ip), 1, "Postfix relayed it to the proxy once")
end)

def("block: the upstream Postfix writes the NDR", "Block SMTP message: NDR", function(t)
  local c = P.forward_chain(t)
  t:eq(c:send("card").code, 250, "Postfix accepts first")
  local ndr = t:require(c.mailbox:wait(1, 10))[1]
  c:settle()
  c:check_ndr(ndr)
  c:expect_counts({ mailbox = 1 }, "nothing went downstream")
  t:eq(c.pf:log_count("status=bounced"), 1, "Postfix bounced it on the proxy's 550")
  t:eq(c.proxy:log_count("event=blocked"), 1)
  c:incident("block", "Payment card numbers")
end)

def("redirect to the review address", "Block SMTP message: redirect", function(t)
  local c = P.forward_chain(t)
  -- (corp.example is local: Postfix delivers it without the relayhost)
  t:eq(c:send("iban", { rcpt = { R.RCPT, "dave@example.org" } }).code, 250)
  local m = t:require(c.down:wait(1, 10))[1]
  c:settle()
  c:expect_counts({ downstream = 1 })
  t:eq(m.rcpts, { R.REVIEW }, "only the review address gets it")
  forwarded_once(t, c, m)
end)

def("notification delivered", "Send email notification", function(t)
  local c = P.forward_chain(t)
  t:eq(c:send("ssn").code, 250)
  t:require(c.down:wait(2, 10))
  t:require(c.proxy:wait_log("event=notify-sent", 5))
  c:settle()
  local orig, notice
  for _, m in ipairs(c.down:messages()) do
    if m.from == R.SENDER then orig = m else notice = m end
  end
  t:require(orig and notice, "the original and a notification arrived")
  t:eq(orig.rcpts, { R.RCPT }, "the original is delivered")
  t:eq(notice.rcpts, { R.SECURITY, R.SENDER }, "the notification goes to security and the sender")
  t:contains(notice.body, R.SSN_MASKED, "with the masked sample")
  c:expect_counts({ downstream = 2 })
end)

def("X-CFilter: Encrypt, routed by a downstream Postfix", "Modify SMTP message: header", function(t)
  local c = P.forward_chain(t, { postfix_downstream = true })
  t:eq(c:send("confidential").code, 250)
  t:eq(c:send("clean").code, 250)
  local m = t:require(c.enc:wait(1, 10))[1]
  local plain = t:require(c.down:wait(1, 10))[1]
  c:settle()
  t:require(c.pf2:wait_queue_empty(10))
  c:expect_counts({ encryption = 1, downstream = 1 })
  t:eq(m:header("X-CFilter"), "Encrypt", "the proxy added the header")
  t:eq(m.client_ip, c.pf2.ip, "the downstream Postfix routed it")
  t:eq(plain.subject, R.MAIL.clean.subject, "clean mail takes the plain route")
  t:eq(plain:header("X-CFilter"), nil)
  t:eq(c.proxy:log_count("event=relayed"), 2, "both inspected once")
end)

def("block on proxy failure: Postfix holds the mail", "Basic failover: block", function(t)
  local c = P.forward_chain(t)
  t:eq(c.proxy:stop(), 0)
  c.pf:mark()
  t:eq(c:send("clean", { subject = "held" }).code, 250)
  t:require(c.pf:wait_log("status=deferred", 10), "Postfix deferred it")
  t:eq(c.pf:queued(), 1, "held in Postfix's queue")
  c:expect_counts({})
  c.proxy:start()
  t:require(c.pf:flush())
  local m = t:require(c.down:wait(1, 10))[1]
  c:settle()
  t:eq(m.subject, "held")
  forwarded_once(t, c, m)
end)

def("pass through on proxy failure: smtp_fallback_relay", "Basic failover: pass through", function(t)
  local c = P.forward_chain(t, { bypass = true })
  t:eq(c.proxy:kill(), 137)
  t:eq(c:send("clean", { subject = "while the proxy is down" }).code, 250)
  local m = t:require(c.down:wait(1, 10))[1]
  c:settle()
  t:eq(m.client_ip, c.pf.ip, "straight from Postfix to the downstream MTA")
  t:eq(m:header(R.PASS_NAME), nil, "uninspected")
  c.proxy:start()
  t:eq(c:send("clean", { subject = "proxy back" }).code, 250)
  m = t:require(c.down:wait(2, 10))[2]
  c:settle()
  t:eq(m.subject, "proxy back")
  forwarded_once(t, c, m)
end)
