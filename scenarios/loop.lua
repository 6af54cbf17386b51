-- Loop safety, for each reflecting-mode architecture: no message is
-- inspected twice or goes round in circles, including the mail that the
-- MTA (NDRs) and the proxy (notifications) generate themselves, and mail
-- that the reviewer releases after a redirect.
--
--   bin/mta-sim run scenarios/loop.lua
--   bin/mta-sim run --filter '^helo: loop' scenarios/loop.lua

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()

-- The original that the proxy redirected, re-sent by the reviewer to its
-- first recipient: the same headers and text, without the trace and the
-- pass header, as a release tool would inject it.
local function released(m)
  local out, skip = {}, false
  for line in (m.content:match("^(.-\r\n)\r\n") or ""):gmatch("[^\r\n]*\r\n") do
    if line:match("^[ \t]") then
      if not skip then out[#out + 1] = line end
    else
      local name = line:match("^([^:]+):") or ""
      skip = name:lower() == "received" or name:lower() == R.PASS_NAME:lower()
      if not skip then out[#out + 1] = line end
    end
  end
  return table.concat(out) .. "\r\n" .. m.body
end

-- MTA events about one queue id.
local function events_for(mta, id, type, route)
  local n = 0
  for _, e in ipairs(mta:events(type, route)) do
    if e.msg == id then n = n + 1 end
  end
  return n
end

for _, arch in ipairs(sim.architectures) do
  local function def(name, check, run)
    scenario { name = arch .. ": loop: " .. name, check = check, architecture = arch,
               timeout = 20, run = run }
  end

  def("the MTA's own NDRs skip the proxy", "Loop safety: MTA NDRs", function(t)
    local c = R.chain(t)              -- <> is a sender exception
    t:eq(c:send("card").code, 250)
    local ndr = t:require(c.mailbox:wait(1, 10))[1]
    c:settle()
    c:check_ndr(ndr)
    local ev = t:require(c.mta:events("ndr")[1], "the MTA queued an NDR")
    t:eq(events_for(c.mta, ev.msg, "delivered", "proxy") + events_for(c.mta, ev.msg, "deferred", "proxy"),
      0, "the NDR never went to the proxy")
    t:eq(events_for(c.mta, ev.msg, "delivered", "mailbox"), 1, "it went straight to the mailbox")
    t:eq(c:inspections(), 1, "the proxy saw the original only")
    c:expect_counts({ mailbox = 1 })
  end)

  -- The guide recommends that mail the MTA generates bypasses the proxy.
  -- Without <> as a sender exception, each NDR costs an inspection, and an
  -- NDR that quotes the refused content is itself refused.
  def("NDRs when <> is not a sender exception", "Loop safety: <> not excepted", function(t)
    local c = R.chain(t, { exceptions = { R.REVIEW } })
    t:eq(c:send("card").code, 250, "card number in the text")
    t:require(c.mailbox:wait(1, 10))
    c:settle()
    t:eq(c:inspections(), 2, "the original and its NDR were both inspected")
    t:eq(c.proxy:log_count(' event=mail from="" '), 1, "the NDR went through the proxy once")
    c:check_ndr(c.mailbox:message(1))
    local ndr = t:require(c.mta:events("ndr")[1], "the MTA queued an NDR")
    t:eq(events_for(c.mta, ndr.msg, "delivered", "proxy"), 1, "the MTA sent its NDR to the proxy")

    t:eq(c:send("card", { subject = "Card " .. R.CARD }).code, 250, "card number in the Subject")
    t:require(c.mta:wait_event{ type = "bounced", count = 3, timeout = 10 })
    c:settle()
    t:eq(c:inspections(), 4, "the second original and its NDR were inspected")
    t:eq(c.proxy:log_count("event=blocked"), 3, "the proxy refused the second NDR too")
    t:eq(c.mailbox:count(), 1, "so the sender never got the second NDR")
    t:eq(#c.mta:events("ndr"), 2, "two NDRs queued, no NDR about an NDR")
    t:eq(#c.proxy:incidents(), 3, "and an extra incident, about the MTA's own NDR")
    t:finding("with <> not a sender exception, the MTA's NDRs go to the proxy. An NDR that "
      .. "quotes the refused content (here a card number in the Subject) is refused in turn, "
      .. "so the sender is never told, and the incident log gets an incident for the NDR. "
      .. "Make <> a sender exception, as the guide recommends for mail the MTA generates.")
  end)

  def("proxy notifications are not inspected again", "Loop safety: notifications", function(t)
    local c = R.chain(t)
    t:eq(c:send("ssn").code, 250)
    t:require(c.down:wait(2, 10))
    t:require(c.mailbox:wait(1, 10))
    t:require(c.proxy:wait_log("event=notify-sent", 5), "the proxy sent the notification")
    c:settle()
    t:eq(c:inspections(), 1, "the proxy inspected the original only")
    local notice
    for _, e in ipairs(c:received()) do
      if e.message.from ~= R.SENDER then notice = notice or e end
    end
    t:require(notice, "the MTA received the notification")
    t:eq(events_for(c.mta, notice.msg, "delivered", "proxy"), 0,
      "the MTA did not send the notification to the proxy")
    local ok, why = R.recognised[arch](c, notice.message)
    t:ok(ok, "the notification is recognised as inspected: " .. why
      .. " (it came from " .. notice.message.client_ip .. ", HELO " .. tostring(notice.message.helo) .. ")")
    c:expect_counts({ downstream = 2, mailbox = 1 }, "each notification delivered once")
  end)

  def("redirect and release do not loop", "Loop safety: redirect, release", function(t)
    local c = R.chain(t)              -- the review address is a sender exception
    t:eq(c:send("iban").code, 250)
    local held = t:require(c.down:wait(1, 10))[1]
    c:settle()
    t:eq(held.rcpts, { R.REVIEW }, "redirected to the reviewer")
    t:eq(c:inspections(), 1)

    local r = t:send{ to = c.mta, from = R.REVIEW, rcpt = R.RCPT, content = released(held) }
    t:eq(r.code, 250, "the reviewer releases it")
    local out = t:require(c.down:wait(2, 10))[2]
    c:settle()
    t:eq(out.rcpts, { R.RCPT }, "the released message reaches bob")
    t:eq(#out:headers("Received"), 1, "straight through the MTA")
    t:eq(c:inspections(), 1, "released mail is not inspected again")
    c:expect_counts({ downstream = 2 })
  end)

  def("release when the review address is not a sender exception", "Loop safety: review not excepted",
      function(t)
    local c = R.chain(t, { exceptions = { "" } })
    t:eq(c:send("iban").code, 250)
    local held = t:require(c.down:wait(1, 10))[1]
    c:settle()
    local r = t:send{ to = c.mta, from = R.REVIEW, rcpt = R.RCPT, content = released(held) }
    t:eq(r.code, 250, "the reviewer releases it")
    local again = t:require(c.down:wait(2, 10))[2]
    c:settle()
    t:eq(again.rcpts, { R.REVIEW }, "the release is caught and redirected to the reviewer again")
    t:eq(c:inspections(), 2, "inspected once per submission: no loop, but no release either")
    t:finding("without " .. R.REVIEW .. " as a sender exception, mail the reviewer "
      .. "releases is inspected again and comes straight back to the review mailbox: it "
      .. "can never reach its recipient. Keep every redirect address a sender exception "
      .. "on each integrated MTA.")
  end)

  def("every message inspected once under mixed load", "Loop safety: mixed load", function(t)
    local c = R.chain(t)
    local kinds = { "clean", "card", "iban", "ssn", "confidential", "exe", "clean" }
    local specs = {}
    for i, k in ipairs(kinds) do
      specs[i] = { to = c.mta, from = R.SENDER, rcpt = R.RCPT,
                   subject = R.MAIL[k].subject .. " #" .. i, body = R.MAIL[k].body,
                   attachments = R.MAIL[k].attachments }
    end
    for i, r in ipairs(t:send_all(specs)) do
      t:eq(r.code, 250, "message " .. i .. " accepted")
    end
    -- clean x2, the reviewer's copy, the SSN original and its notice
    t:require(c.down:wait(5, 10))
    t:require(c.mailbox:wait(2, 10))     -- the NDR, the notice to the sender
    t:require(c.enc:wait(1, 10))
    t:require(c.quar:wait(1, 10))
    t:require(c.proxy:wait_log("event=notify-sent", 5), "the proxy sent the notification")
    c:settle()
    c:expect_counts({ downstream = 5, mailbox = 2, encryption = 1, quarantine = 1 },
      "each message once, in the right place")
    t:eq(c:inspections(), #kinds, "one inspection per message sent")
    t:eq(c.mta:count("delivered", "proxy") + c.mta:count("bounced"), #kinds,
      "the MTA handed each message to the proxy once")
    for _, sink in ipairs({ c.down, c.mailbox, c.enc, c.quar }) do
      for _, m in ipairs(sink:messages()) do
        t:ok(#m:headers(R.PASS_NAME) <= 1, sink.name .. ": at most one pass header")
        t:ok(#m:headers("Received") <= 2, sink.name .. ": at most two trips through the MTA: "
          .. tostring(m.subject))
      end
    end
  end)
end
