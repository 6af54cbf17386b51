-- Forwarding mode: the upstream MTA (here the sender itself) hands mail to
-- the proxy, and the proxy passes it on to a downstream MTA. The proxy
-- holds the upstream session open until the downstream has answered, so
-- the upstream gets the downstream's verdict, or the policy's. See
-- docs/integration/forwarding.md.
--
--   bin/mta-sim run scenarios/forwarding.lua

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()
local ARCH = "forwarding"

local function fwd(t, sink_opts)
  local down = t:sink(sink_opts or { name = "downstream" })
  local p = t:proxy{ mode = "forward", next_hop = down, policies = R.POLICIES }
  return down, p
end

local function send(t, p, kind, extra)
  local spec = {}
  for k, v in pairs(R.MAIL[kind]) do spec[k] = v end
  spec.to, spec.from, spec.rcpt = p, R.SENDER, { R.RCPT }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return t:send(spec)
end

local function def(name, check, run)
  scenario { name = "forwarding: " .. name, check = check, architecture = ARCH,
             timeout = 20, run = run }
end

def("no policy violated", "No policy violated", function(t)
  local down, p = fwd(t)
  local r = send(t, p, "clean")
  t:eq(r.code, 250, r.text)
  t:contains(r.text, "queued as msg-000001", "the upstream got the downstream's own reply")
  local m = t:require(down:wait(1, 5))[1]
  t:eq(down:count(), 1, "delivered once")
  t:eq(m.rcpts, { R.RCPT })
  t:eq(m.client_ip, p.ip, "from the proxy's source_address")
  t:eq(m.helo, p.helo_name, "with the proxy's HELO")
  t:eq(#m:headers(R.PASS_NAME), 1, "the pass header once")
  t:eq(m.subject, R.MAIL.clean.subject, "unchanged")
  t:eq(p:log_count("event=relayed"), 1, "inspected once")
  t:eq(p:incidents(), {}, "no incident")
end)

def("block: the refusal goes back to the upstream", "Block SMTP message: refusal", function(t)
  local down, p = fwd(t)
  local r = send(t, p, "card")
  t:eq(r.code, 550, "refused at the end of DATA")
  t:contains(r.text, R.CARD_REPLY:match("^%d+ (.*)$"), "with the policy's text, for the upstream's NDR")
  t:eq(down:count(), 0, "nothing downstream")
  local inc = t:require(p:wait_incidents(1, 5))
  t:eq(inc[1].action, "block")
  t:eq(inc[1].reply, 550)
end)

def("redirect to the review address", "Block SMTP message: redirect", function(t)
  local down, p = fwd(t)
  local r = send(t, p, "iban", { rcpt = { R.RCPT, R.LOCAL_RCPT } })
  t:eq(r.code, 250, r.text)
  local m = t:require(down:wait(1, 5))[1]
  t:eq(down:count(), 1)
  t:eq(m.rcpts, { R.REVIEW }, "only the review address")
  local inc = t:require(p:wait_incidents(1, 5))
  t:eq(inc[1].action, "redirect")
  t:eq(inc[1].redirect_to, R.REVIEW)
end)

def("notification to the listed addresses and the sender", "Send email notification", function(t)
  local down, p = fwd(t)
  local r = send(t, p, "ssn")
  t:eq(r.code, 250, r.text)
  t:require(down:wait(2, 5))
  -- the sink records before it answers: wait for the proxy to hear the 250
  t:require(p:wait_log("event=notify-sent", 5))
  local orig, notice
  for _, m in ipairs(down:messages()) do
    if m.from == R.SENDER then orig = m else notice = m end
  end
  t:require(orig and notice, "the original and a notification arrived")
  t:eq(orig.rcpts, { R.RCPT }, "the original is delivered")
  t:eq(notice.rcpts, { R.SECURITY, R.SENDER }, "the notification goes to security and the sender")
  t:ok(notice:header("Auto-Submitted"), "marked Auto-Submitted")
  t:contains(notice.body, R.SSN_MASKED, "with the masked sample")
  t:ok(not notice.body:find(R.SSN, 1, true), "not the number itself")
  t:eq(#notice:headers(R.PASS_NAME), 1, "carrying the pass header")
  t:eq(down:count(), 2)
end)

def("modify: X-CFilter: Encrypt and a changed subject", "Modify SMTP message", function(t)
  local down, p = fwd(t)
  t:eq(send(t, p, "confidential").code, 250)
  t:eq(send(t, p, "exe").code, 250)
  local msgs = t:require(down:wait(2, 5))
  t:eq(msgs[1]:header("X-CFilter"), "Encrypt", "the header for the encryption gateway")
  t:eq(msgs[1].subject, R.MAIL.confidential.subject)
  t:eq(msgs[2]:header("X-CFilter"), "Quarantine")
  t:eq(msgs[2].subject, "[QUARANTINE] " .. R.MAIL.exe.subject, "the subject was changed")
  t:eq(down:count(), 2)
end)

def("the downstream's refusal reaches the upstream", "Forwarding: reply relay", function(t)
  local down, p = fwd(t, { name = "downstream",
    rules = { "dot=reply:554 5.7.0 downstream policy says no" } })
  local r = send(t, p, "clean")
  t:eq(r.code, 554, "the downstream's code")
  t:contains(r.text, "downstream policy says no", "and its text")
  t:eq(down:count(), 0)
end)

def("no downstream: the upstream keeps the message", "Basic failover: next hop down", function(t)
  local ip = t:ip()                    -- nothing listens there
  local p = t:proxy{ mode = "forward", next_hop = ip .. ":25", policies = R.POLICIES }
  local r = send(t, p, "clean")
  t:eq(r.code // 100, 4, "a temporary failure, so the upstream retries: " .. tostring(r.text))
  t:eq(p:log_count("event=relayed"), 0)
end)
