-- Shared parts of the reflecting-mode suites (listener.lua, client_ip.lua,
-- helo.lua, header.lua, loop.lua). Not a suite itself: `scenarios/*.lua`
-- does not reach this directory. A suite loads it with
--
--   local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
--                  "@scenarios/lib/reflect.lua", "t", _ENV)()
--
-- so paths are taken from the repository root, as for policy files.
--
-- The chain every scenario builds (one loopback address per host):
--
--   sender --25--> MTA --> mailprevent (reflect) --resubmit--> MTA --+--> mailbox   (corp.example)
--                                                                    +--> encryption (X-CFilter: Encrypt)
--                                                                    +--> quarantine (X-CFilter: Quarantine)
--                                                                    +--> downstream (everything else)
--
-- The proxy runs every shipped policy in lua/policies/, each with its own
-- trigger (docs/lua-api.md, "The shipped examples").

local R = {}

R.POLICIES = { "lua/policies/*.lua" }
R.LOCAL_DOMAIN = "corp.example"
R.SENDER = "alice@corp.example"
R.RCPT = "bob@example.net"
R.LOCAL_RCPT = "carol@corp.example"
R.REVIEW = "dlp-review@example.com"
R.SECURITY = "security@example.com"
R.PASS_NAME, R.PASS_VALUE = "X-Filter-Loop", "Reflected"
R.PASS = R.PASS_NAME .. ": " .. R.PASS_VALUE

-- Triggers of the shipped policies.
R.CARD = "4111 1111 1111 1111"
R.IBAN = "DE89 3704 0044 0532 0130 00"
R.SSN = "536-22-8147"
R.SSN_MASKED = "***-**-8147"

-- The block reply is read from the policy file, so that the NDR is
-- checked against what the policy author configured, whatever it says.
do
  local src = assert(sim.read("lua/policies/cards.lua"))
  R.CARD_REPLY = assert(src:match('reply%s*=%s*"([^"]+)"'),
    "lua/policies/cards.lua: no block reply found")
end

-- What each shipped policy needs, as t:send options.
R.MAIL = {
  clean = { subject = "Lunch on Friday", body = "Shall we meet at noon by the fountain?" },
  card = { subject = "Order 1182", body = "Please charge my card " .. R.CARD .. " for the order." },
  iban = { subject = "Supplier payment", body = "Please pay the invoice to " .. R.IBAN .. " by Friday." },
  ssn = { subject = "New hire paperwork", body = "Her SSN is " .. R.SSN .. ", for the payroll form." },
  confidential = { subject = "Confidential: board minutes", body = "The draft minutes are below." },
  exe = { subject = "Installer", body = "Here is the tool.",
          attachments = { { filename = "setup.exe", content_type = "application/octet-stream",
                            data = "MZ not really a program" } } },
}

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- How the integrated MTA recognises mail the proxy has inspected, per
-- architecture: a check on the message the MTA received back.
R.recognised = {
  listener = function(c, m) return m.listener == "resubmit", "arrived on the resubmit listener" end,
  client_ip = function(c, m) return m.client_ip == c.proxy.ip, "came from the proxy's IP " .. c.proxy.ip end,
  helo = function(c, m) return (m.helo or ""):lower() == c.proxy.helo_name:lower(),
                               "greeted with the proxy's HELO " .. c.proxy.helo_name end,
  header = function(c, m) return m:header(R.PASS_NAME) == R.PASS_VALUE, "carries " .. R.PASS end,
}

local Chain = {}
Chain.__index = Chain

-- R.chain(t, opts): the hosts above, a real bin/mailprevent in reflect
-- mode, and the MTA told about it. opts:
--   exceptions        sender exceptions (default: "" for <> and the review address)
--   bypass            true: a bypass host for "pass through on proxy failure"
--   block_on_failure  true: hold mail while no proxy answers
local function chain(t, opts)
  opts = opts or {}
  local c = setmetatable({ t = t, arch = t.architecture }, Chain)
  c.down = t:sink{ name = "downstream" }
  c.mailbox = t:sink{ name = "mailbox" }
  c.enc = t:sink{ name = "encryption" }
  c.quar = t:sink{ name = "quarantine" }
  if opts.bypass then c.bypass = t:sink{ name = "bypass" } end
  c.mta = t:mta{
    downstream = c.down,
    local_domains = { R.LOCAL_DOMAIN },
    mailbox = c.mailbox,
    -- `to` as a string: given a sink object, t:mta stores a `to_addr`
    -- field in the route table, and remaking the MTA in use_proxies then
    -- refuses it ("t:mta routes: unknown option 'to_addr'").
    routes = {
      { header = "X-CFilter", value = "Encrypt", to = c.enc.addr, name = "encryption" },
      { header = "X-CFilter", value = "Quarantine", to = c.quar.addr, name = "quarantine" },
    },
    sender_exceptions = opts.exceptions or { "", R.REVIEW },
    bypass = c.bypass,
    block_on_failure = opts.block_on_failure,
    -- quick retries: failover scenarios wait for them
    retry = 0.05, max_retry = 0.4,
  }
  c.proxy = t:proxy{ reflect_to = c.mta, policies = R.POLICIES }
  c.mta:use_proxies{ c.proxy }
  return c
end
R.chain = chain

-- One message from the sender (alice, a local user) to bob, outside.
function Chain:send(kind, extra)
  local spec = copy(R.MAIL[kind] or error("no such mail: " .. tostring(kind)))
  spec.to, spec.from, spec.rcpt = self.mta, R.SENDER, { R.RCPT }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return self.t:send(spec)
end

-- Wait until the MTA has nothing left to deliver. A message that loops
-- never lets the queue empty, so this is also the loop check.
function Chain:settle()
  return self.t:require(self.mta:wait_idle(10), "the MTA's queue empties (nothing loops)")
end

-- Inspections: one MAIL transaction at the proxy each.
function Chain:inspections()
  return self.proxy:log_count(" event=mail ")
end

-- Every host's message count, for "nothing went anywhere else".
function Chain:counts()
  return { downstream = self.down:count(), mailbox = self.mailbox:count(),
           encryption = self.enc:count(), quarantine = self.quar:count(),
           bypass = self.bypass and self.bypass:count() or 0 }
end

function Chain:expect_counts(want, what)
  local full = { downstream = 0, mailbox = 0, encryption = 0, quarantine = 0, bypass = 0 }
  for k, v in pairs(want) do full[k] = v end
  self.t:eq(self:counts(), full, what or "messages at each host")
end

-- A message delivered after one pass through the proxy: the MTA's trace
-- twice (from the sender, then back from the proxy), the pass header once.
function Chain:handled_once(m, what)
  local t = self.t
  what = what and (what .. ": ") or ""
  local rcv = m:headers("Received")
  t:eq(#rcv, 2, what .. "through the MTA exactly twice (Received)")
  if #rcv == 2 then
    t:contains(rcv[1], "from " .. self.proxy.helo_name, what .. "latest hop: back from the proxy")
    t:contains(rcv[2], "[" .. t.client_ip .. "]", what .. "first hop: from the sender")
  end
  t:eq(#m:headers(R.PASS_NAME), 1, what .. "the pass header exactly once")
end

-- The MTA's received events, for looking at what came back from the proxy.
function Chain:received()
  return self.mta:events("received")
end

-- The recognition check: the copy that came back from the proxy is
-- recognised by this architecture's means; the sender's original is not.
function Chain:check_recognition()
  local t = self.t
  local rcv = self:received()
  t:require(#rcv == 2, "the MTA received the message twice: from the sender, back from the proxy")
  local orig, back = rcv[1].message, rcv[2].message
  t:eq(back.helo, self.proxy.helo_name, "the second copy came from the proxy")
  local ok, why = R.recognised[self.arch](self, back)
  t:ok(ok, "the reflected copy is recognised as inspected: " .. why)
  t:ok(not R.recognised[self.arch](self, orig), "the sender's original is not recognised as inspected")
end

-- The NDR in the sender's mailbox: from <>, to the sender, quoting the
-- policy's reply.
function Chain:check_ndr(ndr, reply)
  local t = self.t
  t:eq(ndr.from, "", "the NDR comes from <>")
  t:eq(ndr.rcpts, { R.SENDER }, "the NDR goes to the sender")
  t:eq(ndr:header("Auto-Submitted"), "auto-replied", "the NDR is marked Auto-Submitted")
  t:contains(ndr.body, reply or R.CARD_REPLY, "the NDR carries the policy's reply text")
end

-- The incident the proxy recorded for one message.
function Chain:incident(action, policy)
  local t = self.t
  local inc = t:require(self.proxy:wait_incidents(1, 5))
  local last = inc[#inc]
  t:eq(last.action, action, "incident action")
  t:eq(last.policies and last.policies[1] and last.policies[1].name, policy, "incident policy")
  return last, inc
end

-- ---- chapter 5 functional tests, for one architecture ------------------

function R.functional(arch)
  local function def(name, check, run)
    scenario { name = arch .. ": " .. name, check = check, architecture = arch,
               timeout = 20, run = run }
  end

  def("no policy violated", "No policy violated", function(t)
    local c = chain(t)
    local r = c:send("clean")
    t:eq(r.code, 250, "the MTA accepted the message: " .. tostring(r.text))
    local m = t:require(c.down:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ downstream = 1 }, "delivered downstream once and only once, nowhere else")
    t:eq(m.rcpts, { R.RCPT }, "to its recipient")
    t:eq(m.subject, R.MAIL.clean.subject, "unchanged")
    c:handled_once(m)
    t:eq(c.proxy:log_count("event=relayed"), 1, "through the proxy exactly once (event=relayed)")
    t:eq(c:inspections(), 1, "one transaction at the proxy")
    t:eq(c.mta:count("delivered", "proxy"), 1, "the MTA handed it to the proxy once")
    c:check_recognition()
    t:eq(c.proxy:incidents(), {}, "no incident")
  end)

  def("block with an NDR", "Block SMTP message: NDR", function(t)
    local c = chain(t)
    local r = c:send("card")
    t:eq(r.code, 250, "the MTA accepts first: it is store and forward")
    local ndr = t:require(c.mailbox:wait(1, 10))[1]
    c:settle()
    c:check_ndr(ndr)
    c:expect_counts({ mailbox = 1 }, "nothing delivered but the NDR")
    t:eq(c.mta:count("bounced"), 1, "the MTA bounced it once")
    t:eq(c.proxy:log_count("event=blocked"), 1, "the proxy blocked it")
    t:eq(c.proxy:log_count("event=relayed"), 0, "the proxy passed nothing")
    c:incident("block", "Payment card numbers")
  end)

  def("redirect to the review address", "Block SMTP message: redirect", function(t)
    local c = chain(t)
    local r = c:send("iban", { rcpt = { R.RCPT, R.LOCAL_RCPT } })
    t:eq(r.code, 250, r.text)
    local m = t:require(c.down:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ downstream = 1 }, "one copy, for the reviewer; none for bob or carol")
    t:eq(m.rcpts, { R.REVIEW }, "only the review address gets it")
    t:eq(m.subject, R.MAIL.iban.subject)
    c:handled_once(m)
    local inc = c:incident("redirect", "Bank details for review")
    t:eq(inc.redirect_to, R.REVIEW, "the incident names the review address")
    t:eq(inc.recipients, { R.RCPT, R.LOCAL_RCPT }, "and the original recipients")
  end)

  def("notification to the listed addresses and the sender", "Send email notification", function(t)
    local c = chain(t)
    local r = c:send("ssn")
    t:eq(r.code, 250, r.text)
    t:require(c.down:wait(2, 10))          -- the original and the notice to security
    t:require(c.mailbox:wait(1, 10))       -- the notice to the sender
    t:require(c.proxy:wait_log("event=notify-sent", 5), "the proxy sent the notification")
    c:settle()
    c:expect_counts({ downstream = 2, mailbox = 1 })
    local orig, notice
    for _, m in ipairs(c.down:messages()) do
      if m.from == R.SENDER then orig = m else notice = m end
    end
    t:require(orig and notice, "the original and a notification went downstream")
    t:eq(orig.rcpts, { R.RCPT }, "the original is delivered")
    c:handled_once(orig, "original")
    t:eq(notice.rcpts, { R.SECURITY }, "the notification reaches security@example.com")
    local mine = c.mailbox:message(1)
    t:eq(mine.rcpts, { R.SENDER }, "and the sender, in the corp.example mailbox")
    for _, n in ipairs({ notice, mine }) do
      t:ok(n:header("Auto-Submitted") ~= nil and n:header("Auto-Submitted") ~= "no",
        "the notification is marked Auto-Submitted")
      t:contains(n.subject, "Social Security numbers", "it names the policy")
      t:contains(n.body, R.SSN_MASKED, "it shows the masked sample")
      t:ok(not n.body:find(R.SSN, 1, true), "it does not repeat the number itself")
      t:eq(#n:headers("Received"), 1, "the notification entered the MTA once")
    end
    c:incident("monitor", "Social Security numbers")
  end)

  def("X-CFilter: Encrypt routes to the encryption hop", "Modify SMTP message: header", function(t)
    local c = chain(t)
    local r = c:send("confidential")
    t:eq(r.code, 250, r.text)
    local m = t:require(c.enc:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ encryption = 1 }, "to the encryption hop, not the plain downstream")
    t:eq(m:header("X-CFilter"), "Encrypt", "the proxy added the header")
    t:eq(m.subject, R.MAIL.confidential.subject, "subject unchanged")
    t:eq(m.rcpts, { R.RCPT })
    t:eq(c.mta:count("delivered", "encryption"), 1, "the MTA routed it on the header")
    c:handled_once(m)
    c:incident("modify", "Encrypt confidential mail")
  end)

  def("subject changed and X-CFilter: Quarantine", "Modify SMTP message: subject", function(t)
    local c = chain(t)
    local r = c:send("exe")
    t:eq(r.code, 250, r.text)
    local m = t:require(c.quar:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ quarantine = 1 }, "held by the quarantine hop only")
    t:eq(m.subject, "[QUARANTINE] " .. R.MAIL.exe.subject, "the subject was changed")
    t:eq(m:header("X-CFilter"), "Quarantine", "the header was added")
    t:eq(#m:headers("Subject"), 1, "one Subject, changed in place")
    c:handled_once(m)
    c:incident("modify", "Quarantine executable attachments")
  end)
end

-- ---- chapter 5 basic failover, appendix B failure modes -----------------

function R.failover(arch)
  scenario { name = arch .. ": pass through on proxy failure", architecture = arch,
             check = "Basic failover: pass through", timeout = 30, run = function(t)
    local c = chain(t, { bypass = true })
    for round = 1, 2 do
      local before = c.down:count()
      t:eq(c.proxy:kill(), 137, "round " .. round .. ": the proxy is gone")
      local r = c:send("clean", { subject = "while the proxy is down " .. round })
      t:eq(r.code, 250, "the MTA still accepts mail")
      local m = t:require(c.bypass:wait(round, 10))[round]
      t:eq(m.subject, "while the proxy is down " .. round, "it took the bypass route")
      t:eq(m:header(R.PASS_NAME), nil, "uninspected: no pass header")
      c.proxy:start()
      r = c:send("clean", { subject = "proxy back " .. round })
      t:eq(r.code, 250)
      m = t:require(c.down:wait(before + 1, 10))[before + 1]
      c:settle()
      t:eq(m.subject, "proxy back " .. round, "the stream resumes through the proxy")
      c:handled_once(m)
    end
    c:expect_counts({ downstream = 2, bypass = 2 })
    t:eq(c.mta:count("delivered", "bypass"), 2)
  end }

  scenario { name = arch .. ": block on proxy failure", architecture = arch,
             check = "Basic failover: block", timeout = 30, run = function(t)
    local c = chain(t, { bypass = true, block_on_failure = true })
    t:eq(c.proxy:kill(), 137, "the proxy is gone")
    local r = c:send("card")
    t:eq(r.code, 250, "the MTA accepts and holds the message")
    t:require(c.mta:wait_event{ type = "deferred", route = "proxy", count = 2, timeout = 10 })
    t:eq(c.mta:queued(), 1, "held in the queue")
    c:expect_counts({}, "nothing left the MTA, not even by the bypass")
    c.proxy:start()
    local ndr = t:require(c.mailbox:wait(1, 10))[1]
    c:settle()
    c:check_ndr(ndr)
    c:expect_counts({ mailbox = 1 }, "once back, the proxy judged it: blocked")
    t:eq(c.proxy:log_count("event=blocked"), 1)
  end }
end

-- ---- the guide's security ranking ------------------------------------------

-- A sender who tries to pass as the proxy sends a card message. Returns
-- "blocked" (the proxy saw it and the sender got the NDR) or "bypassed"
-- (it went downstream uninspected); fails on anything else.
function R.attempt(c, extra)
  local t = c.t
  local r = c:send("card", extra)
  t:eq(r.code, 250, "the MTA accepted the message: " .. tostring(r.text))
  t:require(t:wait_until(function()
    return c.down:count() + c.mailbox:count() > 0 end, 10, "the card message to go somewhere"))
  c:settle()
  if c.down:count() > 0 then
    local m = c.down:message(1)
    t:contains(m.body, R.CARD, "the card number reached downstream")
    t:eq(c:inspections(), 0, "the proxy never saw it")
    c:expect_counts({ downstream = 1 })
    return "bypassed"
  end
  c:check_ndr(c.mailbox:message(1))
  t:eq(c.proxy:log_count("event=blocked"), 1, "the proxy inspected and blocked it")
  c:expect_counts({ mailbox = 1 })
  return "blocked"
end

function R.forged_header(c)
  return R.attempt(c, { headers = { R.PASS } })
end

function R.forged_helo(c)
  return R.attempt(c, { helo = c.proxy.helo_name })
end

return R
