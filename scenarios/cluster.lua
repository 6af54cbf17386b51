-- Clusters of proxies, the guide's chapter 4 ("Capacity and Fault
-- Tolerance"): an MX-based cluster, where the integrated MTA finds the
-- proxies in DNS, and IP load balancer clusters, where HAProxy (TCP mode)
-- stands in front of them and tells them who the real client is with the
-- PROXY protocol. See docs/capacity.md for how to choose.
--
-- Every scenario checks that no message was lost and none delivered twice
-- (the ledger in lib/cluster.lua) and that each was inspected once.
--
--   bin/mta-sim run scenarios/cluster.lua

local C = load(assert(sim.read("scenarios/lib/cluster.lua")),
  "@scenarios/lib/cluster.lua", "t", _ENV)()
local R = C.R

local function def(name, check, run, timeout)
  scenario { name = "cluster: " .. name, check = check, architecture = "listener",
             tags = { "cluster" }, timeout = timeout or 30, run = run }
end

-- ---- MX-based clusters --------------------------------------------------------

def("MX, two proxies at equal preference share the load", "Capacity: MX-based cluster",
function(t)
  local c = C.mx(t, { n = 2 })
  local N = 24
  c:send_many(N, "spread")
  t:require(c.down:wait(N, 15))
  c:settle()
  local seen = c:check_ledger()
  for _, subj in ipairs(c.order) do
    if seen[subj] then c:inspected_once(seen[subj], subj) end
  end
  local r1 = c.proxies[1]:log_count("event=relayed")
  local r2 = c.proxies[2]:log_count("event=relayed")
  t:eq(r1 + r2, N, "each message inspected once: the proxies relayed " .. N .. " in all")
  -- Equal preferences are tried in a random order for each message, so
  -- each proxy's share is Binomial(24, 1/2). At least 3 each fails by
  -- chance about once in 30000 runs; a fixed order would fail every time.
  t:ok(r1 >= 3 and r2 >= 3, "the load spreads over both proxies: p1 took " .. r1
    .. ", p2 took " .. r2)
  local by = { 0, 0 }
  for _, e in ipairs(c.mta:events("delivered", "proxy")) do
    local i = c:proxy_at(e.to)
    t:ok(i ~= nil, "the MTA delivered to a proxy of the MX records: " .. tostring(e.to))
    if i then by[i] = by[i] + 1 end
  end
  t:eq(by, { r1, r2 }, "the MTA's deliveries match what each proxy relayed")
  t:eq(c.mta:count("deferred"), 0, "no proxy refused or failed anything")
  -- One MX and two A queries for each message: each attempt asks again.
  t:ok(c.dns:queries() >= 3 * N, "the MTA looked its proxies up for every message ("
    .. c.dns:queries() .. " queries)")
end)

def("MX records change: a proxy taken out, one added", "Capacity: growing an MX cluster",
function(t)
  local c = C.mx(t, { n = 3 })
  local p1, p2, p3 = c.proxies[1], c.proxies[2], c.proxies[3]
  -- Start with p1 and p2 in DNS; p3 runs but is not published yet.
  c.dns:set(C.zone({ c.hosts[1], c.hosts[2], { host = c.hosts[3].host, ip = c.hosts[3].ip } }))
  c:send_many(4, "two")
  t:require(c.down:wait(4, 10))
  c:settle()
  t:eq(p3:log_count("event=relayed"), 0, "an unpublished proxy gets nothing")

  -- p2 out of the records (for maintenance): the next attempts ask DNS
  -- again and find p1 only.
  c.dns:set(C.zone({ c.hosts[1], { host = c.hosts[2].host, ip = c.hosts[2].ip } }))
  local before2 = p2:log_count("event=relayed")
  c:send_many(6, "one")
  t:require(c.down:wait(10, 10))
  c:settle()
  t:eq(p2:log_count("event=relayed"), before2, "a proxy taken out of the MX records gets no new mail")

  -- p3 published next to p1: it takes its share.
  c.dns:set(C.zone({ c.hosts[1], c.hosts[3] }))
  c:send_many(20, "grown")
  t:require(c.down:wait(30, 15))
  c:settle()
  local r3 = p3:log_count("event=relayed")
  -- Binomial(20, 1/2): none at all would happen once in a million runs.
  t:ok(r3 >= 1, "the added proxy takes part of the load (" .. r3 .. " of 20)")
  t:eq(p2:log_count("event=relayed"), before2, "p2 still gets nothing")
  t:eq(c:relayed(), 30, "every message inspected once")
  local seen = c:check_ledger()
  for _, subj in ipairs(c.order) do
    if seen[subj] then c:inspected_once(seen[subj], subj) end
  end
end)

-- ---- IP load balancer clusters -------------------------------------------------

-- The proxies' PROXY protocol listener: the balancer's address is trusted.
local function pp(lb_ip)
  return { proxy_protocol = { enabled = true, trusted = { lb_ip } } }
end

-- Count the proxies' log lines that contain every one of texts (plain).
local function count(ps, ...)
  local texts, n = { ... }, 0
  for _, p in ipairs(ps) do
    for _, line in ipairs(p:log()) do
      local all = true
      for _, x in ipairs(texts) do
        if not line:find(x, 1, true) then all = false break end
      end
      if all then n = n + 1 end
    end
  end
  return n
end

-- HAProxy logs a connection when it ends, a little after the SMTP
-- session that used it: wait for n lines about the listener `name`.
local function lb_lines(t, lb, n)
  return t:wait_until(function()
    local k = lb:log_count(" " .. lb.name .. "/")
    return k >= n and k
  end, 10, "haproxy " .. lb.name .. " to log " .. n .. " connections")
end

local function incidents(ps)
  local all = {}
  for _, p in ipairs(ps) do
    for _, i in ipairs(p:incidents()) do all[#all + 1] = i end
  end
  return all
end

-- Uni-directional (the guide's figure 4-2): MTA -> balancer VIP -> proxy,
-- and the proxy reflects straight back to the MTA that sent the message,
-- never through the balancer. HAProxy connects to the proxies from its own
-- address, so without the PROXY protocol the proxy would see the balancer
-- as its client, reflect to it, and record it in incidents.
for _, version in ipairs({ "v1", "v2" }) do
  def("IP load balancer, uni-directional, PROXY protocol " .. version,
      "Capacity: load balancer (uni-directional)", function(t)
    local down = t:sink{ name = "downstream" }
    local mailbox = t:sink{ name = "mailbox" }
    local mta = t:mta{ downstream = down, local_domains = { R.LOCAL_DOMAIN }, mailbox = mailbox,
                       sender_exceptions = { "", R.REVIEW }, retry = 0.05, max_retry = 0.4 }
    local lb_ip = t:ip()
    local ps = {}
    for i = 1, 2 do
      ps[i] = t:proxy{ name = "p" .. i, reflect_to = mta, policies = R.POLICIES, extra = pp(lb_ip) }
    end
    local lb = t:haproxy{ name = "vip", ip = lb_ip, backends = ps, send_proxy = version }
    mta:use_proxies{ lb }
    local c = setmetatable({ t = t, sent = {}, order = {}, mta = mta, down = down,
                             mailbox = mailbox, proxies = ps }, C.Cluster)

    for i = 1, 5 do
      t:eq(c:send("clean", "lb " .. i).code, 250)
    end
    t:eq(c:send("card", "lb card").code, 250)
    t:require(down:wait(5, 10))
    t:require(mailbox:wait(1, 10), "the sender gets the NDR for the card message")
    c:settle()

    local seen = c:check_ledger()
    for _, subj in ipairs(c.order) do
      if seen[subj] then c:inspected_once(seen[subj], subj) end
    end
    t:eq(c:relayed(), 5, "each clean message inspected once")
    t:eq(c:blocked(), 1, "the card message blocked once")
    t:eq(lb_lines(t, lb, 6), 6, "the balancer carried one connection per message, and nothing else")
    t:ok(lb:log_count("vip/p1") >= 1 and lb:log_count("vip/p2") >= 1,
      "round robin: both proxies got connections")
    t:eq(count(ps, "event=proxy-protocol", "balancer=" .. lb_ip .. ":", "client=" .. mta.ip .. ":"), 6,
      "each proxy learnt the real client from the PROXY header")
    -- The way back: straight from a proxy to the MTA's resubmit listener.
    local back = 0
    for _, e in ipairs(mta:events("received")) do
      local m = e.message
      if m.listener == "resubmit" then
        back = back + 1
        t:ok(m.client_ip == ps[1].ip or m.client_ip == ps[2].ip,
          "reflected straight from a proxy, not via the balancer: " .. m.client_ip)
      end
    end
    t:eq(back, 5, "five messages reflected back to the MTA that sent them")
    local inc = incidents(ps)
    t:eq(#inc, 1, "one incident")
    if inc[1] then
      t:eq(inc[1].client_ip, mta.ip, "the incident shows the real MTA, not the balancer " .. lb_ip)
    end
  end)
end

-- Behind a balancer the MTA sees one "proxy", the VIP. A dead proxy is
-- the balancer's business: without health checks HAProxy's connection to
-- it is refused and it redispatches the session to another proxy; with
-- them it marks the proxy down and stops trying it. With every proxy dead
-- the balancer closes the MTA's connection before any greeting, which the
-- MTA takes as "no proxy answered": it holds the mail (block on failure).
for _, checks in ipairs({ false, true }) do
  def("IP load balancer: a dead proxy is skipped, none left holds the mail"
      .. (checks and " (health checks)" or ""), "Basic failover: load balancer", function(t)
    local down = t:sink{ name = "downstream" }
    local mta = t:mta{ downstream = down, sender_exceptions = { "" }, retry = 0.05, max_retry = 0.4 }
    local lb_ip = t:ip()
    local ps = {}
    for i = 1, 2 do
      ps[i] = t:proxy{ name = "p" .. i, reflect_to = mta, policies = R.POLICIES, extra = pp(lb_ip) }
    end
    local lb = t:haproxy{ name = "vip", ip = lb_ip, backends = ps, send_proxy = "v1",
                          check = checks, check_interval = 0.1 }
    mta:use_proxies{ lb }
    local c = setmetatable({ t = t, sent = {}, order = {}, mta = mta, down = down,
                             proxies = ps }, C.Cluster)

    t:eq(ps[1]:kill(), 137, "p1 is gone")
    if checks then
      t:require(t:wait_until(function() return lb:log_count("vip/p1 is DOWN") > 0 end, 10,
        "haproxy to mark p1 down"))
    end
    c:send_many(4, "one dead")
    t:require(down:wait(4, 10))
    c:settle()
    t:eq(ps[2]:log_count("event=relayed"), 4, "p2 inspected all four")
    t:eq(mta:count("deferred"), 0, "the MTA never noticed")

    t:eq(ps[2]:kill(), 137, "p2 is gone too")
    if checks then
      t:require(t:wait_until(function() return lb:log_count("vip/p2 is DOWN") > 0 end, 10,
        "haproxy to mark p2 down"))
    end
    t:eq(c:send("clean", "none left").code, 250)
    t:require(mta:wait_event{ type = "deferred", route = "proxy", count = 2, timeout = 10 },
      "the MTA holds the message")
    t:eq(down:count(), 4, "nothing new delivered")
    ps[1]:start()
    t:require(down:wait(5, 10))
    c:settle()
    local seen = c:check_ledger()
    for _, subj in ipairs(c.order) do
      if seen[subj] then c:inspected_once(seen[subj], subj) end
    end
    t:eq(ps[1]:log_count("event=relayed"), 1, "p1, back, inspected the held message")
  end)
end

-- Bi-directional (the guide's figure 4-1): the proxies forward to a
-- second VIP in front of the MTA cluster, so both directions go through
-- the balancer. Two MTAs, each sending through the proxies' VIP; mail
-- comes back on either MTA's resubmit listener.
def("IP load balancer, bi-directional, forwarding to the MTA VIP",
    "Capacity: load balancer (bi-directional)", function(t)
  local down = t:sink{ name = "downstream" }
  local mailbox = t:sink{ name = "mailbox" }
  local mtas = {}
  for i = 1, 2 do
    mtas[i] = t:mta{ name = "mta" .. i, downstream = down, local_domains = { R.LOCAL_DOMAIN },
                     mailbox = mailbox, sender_exceptions = { "", R.REVIEW },
                     retry = 0.05, max_retry = 0.4 }
  end
  -- The MTA VIP: plain SMTP to the MTAs' resubmit listeners (mail on
  -- them has been inspected, the listener architecture).
  local mta_vip = t:haproxy{ name = "mtavip", backends = { mtas[1].resubmit, mtas[2].resubmit } }
  local in_ip = t:ip()
  local ps = {}
  for i = 1, 2 do
    -- No next-hop session reuse: this layout is checked connection by
    -- connection at the MTA VIP below.
    local extra = pp(in_ip)
    extra.next_hop = { hosts = { mta_vip.addr }, reuse_time = 0 }
    ps[i] = t:proxy{ name = "p" .. i, mode = "forward", policies = R.POLICIES,
                     extra = extra }
  end
  local vip = t:haproxy{ name = "vip", ip = in_ip, backends = ps, send_proxy = "v2" }
  for i = 1, 2 do mtas[i]:use_proxies{ vip } end
  local c = setmetatable({ t = t, sent = {}, order = {}, mta = mtas[1], down = down,
                           mailbox = mailbox, proxies = ps }, C.Cluster)

  for i = 1, 6 do
    t:eq(c:send("clean", "bidi " .. i, { to = mtas[(i % 2) + 1] }).code, 250)
  end
  t:eq(c:send("card", "bidi card", { to = mtas[2] }).code, 250)
  t:require(down:wait(6, 10))
  t:require(mailbox:wait(1, 10), "the sender gets the NDR")
  for i = 1, 2 do t:require(mtas[i]:wait_idle(10)) end

  local seen = c:check_ledger()
  for _, subj in ipairs(c.order) do
    if seen[subj] then c:inspected_once(seen[subj], subj) end
  end
  t:eq(c:relayed(), 6, "each clean message inspected once")
  t:eq(c:blocked(), 1, "the card message refused once")
  t:eq(count(ps, "event=relayed", "hop=" .. mta_vip.addr), 6, "the proxies forwarded to the MTA VIP")
  t:eq(count(ps, "event=proxy-protocol", "balancer=" .. in_ip .. ":", "client=" .. mtas[1].ip .. ":")
    + count(ps, "event=proxy-protocol", "balancer=" .. in_ip .. ":", "client=" .. mtas[2].ip .. ":"), 7,
    "the proxies learnt each real MTA from the PROXY header")
  local back = 0
  for i = 1, 2 do
    for _, e in ipairs(mtas[i]:events("received")) do
      if e.message.listener == "resubmit" then
        back = back + 1
        t:eq(e.message.client_ip, mta_vip.ip, "came back through the MTA VIP")
      end
    end
  end
  t:eq(back, 6, "six messages came back to the MTA cluster")
  -- One connection per message the proxies took, the refused one too: a
  -- proxy opens its next hop at MAIL, so that RCPT gets the next hop's
  -- own answer, and learns the verdict only at the end of DATA.
  t:eq(lb_lines(t, mta_vip, 7), 7, "the MTA VIP carried a connection per message, and nothing else")
  local inc = incidents(ps)
  t:eq(#inc, 1, "one incident")
  if inc[1] then
    t:eq(inc[1].client_ip, mtas[2].ip, "the incident shows the MTA that sent it, behind the VIP")
  end
  t:eq(mtas[2]:count("bounced"), 1, "the sending MTA bounced the refused message")
end)

-- Bi-directional in reflecting mode: the balancer makes its own address
-- the source (no PROXY protocol), the proxies reflect to it, and a return
-- VIP on that address, at the resubmit port, spreads the mail over the
-- MTAs' resubmit listeners. It works, but the proxies only ever see the
-- balancer: the incident names it, not the MTA.
def("IP load balancer, bi-directional, reflecting to a return VIP",
    "Capacity: load balancer (bi-directional, reflect)", function(t)
  local RETURN_PORT = 10026
  local down = t:sink{ name = "downstream" }
  local mailbox = t:sink{ name = "mailbox" }
  local mtas = {}
  for i = 1, 2 do
    mtas[i] = t:mta{ name = "mta" .. i, downstream = down, local_domains = { R.LOCAL_DOMAIN },
                     mailbox = mailbox, sender_exceptions = { "", R.REVIEW },
                     retry = 0.05, max_retry = 0.4 }
  end
  local vip_ip = t:ip()
  local ret = t:haproxy{ name = "returnvip", ip = vip_ip, port = RETURN_PORT,
                         backends = { mtas[1].resubmit, mtas[2].resubmit } }
  local ps = {}
  for i = 1, 2 do
    -- No next-hop session reuse: the return VIP is checked connection by
    -- connection below.
    ps[i] = t:proxy{ name = "p" .. i, mode = "reflect", resubmit_port = RETURN_PORT,
                     policies = R.POLICIES, extra = { next_hop = { reuse_time = 0 } } }
  end
  local vip = t:haproxy{ name = "vip", ip = vip_ip, backends = ps }
  for i = 1, 2 do mtas[i]:use_proxies{ vip } end
  local c = setmetatable({ t = t, sent = {}, order = {}, mta = mtas[1], down = down,
                           mailbox = mailbox, proxies = ps }, C.Cluster)

  for i = 1, 4 do
    t:eq(c:send("clean", "return " .. i, { to = mtas[(i % 2) + 1] }).code, 250)
  end
  t:eq(c:send("card", "return card", { to = mtas[1] }).code, 250)
  t:require(down:wait(4, 10))
  t:require(mailbox:wait(1, 10))
  for i = 1, 2 do t:require(mtas[i]:wait_idle(10)) end

  local seen = c:check_ledger()
  for _, subj in ipairs(c.order) do
    if seen[subj] then c:inspected_once(seen[subj], subj) end
  end
  t:eq(c:relayed(), 4, "each clean message inspected once")
  -- One connection per message (the refused one too, see above).
  t:eq(lb_lines(t, ret, 5), 5, "every reflected message went through the return VIP")
  local inc = incidents(ps)
  t:eq(#inc, 1, "one incident")
  if inc[1] then
    t:eq(inc[1].client_ip, vip_ip, "without the PROXY protocol the incident names the balancer")
  end
end)
