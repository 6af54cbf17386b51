-- Shared parts of cluster.lua and failover.lua (the guide's chapter 4,
-- "Capacity and Fault Tolerance", and its basic failover tests). Not a
-- suite itself. A suite loads it with
--
--   local C = load(assert(sim.read("scenarios/lib/cluster.lua")),
--                  "@scenarios/lib/cluster.lua", "t", _ENV)()
--
-- The MX-based cluster every builder here makes (one loopback address per
-- host, every proxy and the bypass host on the same port, since an MX
-- record names a host and not a port):
--
--                         DNS (t:dns): dlp.corp.example MX 10 p1, MX 10 p2[, MX 20 bypass]
--                          |
--   sender --> MTA --MX--> p1 | p2 (reflect) --resubmit--> MTA --> downstream / mailbox
--               \--------> bypass (lowest priority: mail passes uninspected)
--
-- Every scenario keeps a ledger of what it sent, and checks at the end
-- that each message arrived exactly once, at exactly one host.

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()

local C = { R = R }

C.PORT = 10025                 -- the proxies' listener (the guide's ServerSocketPort)
C.MX = "dlp.corp.example"      -- the name the MTA looks up to find its proxies

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end
C.copy = copy

-- Zone lines for hosts = { { host=, ip=, pref= }, ... }: an MX record of
-- C.MX for each host with a preference, and an A record for each.
function C.zone(hosts)
  local z = {}
  for _, h in ipairs(hosts) do
    if h.pref then z[#z + 1] = string.format("%s 60 MX %d %s", C.MX, h.pref, h.host) end
    z[#z + 1] = string.format("%s 60 A %s", h.host, h.ip)
  end
  return z
end

local Cluster = {}
Cluster.__index = Cluster
C.Cluster = Cluster

-- C.mx(t, opts): an MX-based cluster of reflecting proxies. opts:
--   n        proxies, all at preference 10 (default 2)
--   bypass   true: a bypass host at preference 20 (MX-based bypass)
--   mta      more t:mta options (e.g. max_queue_age, bypass)
--   proxy    more t:proxy options for every proxy
function C.mx(t, opts)
  opts = opts or {}
  local c = setmetatable({ t = t, sent = {}, order = {} }, Cluster)
  local n = opts.n or 2
  c.down = t:sink{ name = "downstream" }
  c.mailbox = t:sink{ name = "mailbox" }
  c.hosts = {}
  for i = 1, n do
    c.hosts[i] = { pref = 10, host = "p" .. i .. "." .. C.MX, ip = t:ip() }
  end
  if opts.bypass then
    -- The guide's "alternative SMTP listener": it takes mail on the
    -- proxies' port and passes it on without inspection.
    c.bypass = t:sink{ name = "bypass", port = C.PORT }
    c.hosts[#c.hosts + 1] = { pref = 20, host = "bypass." .. C.MX, ip = c.bypass.ip }
  end
  c.dns = t:dns{ name = "dns", zone = C.zone(c.hosts) }
  local mo = {
    downstream = c.down, local_domains = { R.LOCAL_DOMAIN }, mailbox = c.mailbox,
    sender_exceptions = { "", R.REVIEW },
    proxy_mx = C.MX, dns = c.dns, proxy_port = C.PORT, dns_timeout = 0.5,
    -- quick retries: failover scenarios wait for them
    retry = 0.05, max_retry = 0.4, connect_timeout = 2,
  }
  for k, v in pairs(opts.mta or {}) do mo[k] = v end
  c.mta = t:mta(mo)
  c.proxies = {}
  for i = 1, n do
    local po = { name = "p" .. i, ip = c.hosts[i].ip, port = C.PORT,
                 reflect_to = c.mta, policies = R.POLICIES }
    for k, v in pairs(opts.proxy or {}) do po[k] = v end
    c.proxies[i] = t:proxy(po)
  end
  return c
end

-- One message, with a subject of its own for the ledger. kind is one of
-- reflect.lua's R.MAIL kinds; extra adds t:send options.
function Cluster:send(kind, tag, extra)
  local spec = copy(R.MAIL[kind] or error("no such mail: " .. tostring(kind)))
  spec.subject = spec.subject .. " [" .. tag .. "]"
  spec.to = spec.to or self.mta
  spec.from, spec.rcpt = R.SENDER, { R.RCPT }
  for k, v in pairs(extra or {}) do spec[k] = v end
  self:expect(spec.subject, kind)
  return self.t:send(spec)
end

-- n clean messages at once (one session each); every one must be accepted.
function Cluster:send_many(n, tag, extra)
  local specs = {}
  for i = 1, n do
    specs[i] = copy(R.MAIL.clean)
    specs[i].subject = R.MAIL.clean.subject .. " [" .. tag .. " " .. i .. "]"
    specs[i].to, specs[i].from, specs[i].rcpt = self.mta, R.SENDER, { R.RCPT }
    for k, v in pairs(extra or {}) do specs[i][k] = v end
    self:expect(specs[i].subject, "clean")
  end
  for i, r in ipairs(self.t:send_all(specs)) do
    self.t:eq(r.code, 250, "message " .. tag .. " " .. i .. " accepted: " .. tostring(r.text))
  end
end

function Cluster:expect(subject, kind)
  assert(not self.sent[subject], "subject used twice: " .. subject)
  self.sent[subject] = kind
  self.order[#self.order + 1] = subject
end

function Cluster:settle(seconds)
  return self.t:require(self.mta:wait_idle(seconds or 10),
    "the MTA's queue empties (nothing lost in it, nothing loops)")
end

-- Messages passed on by all the proxies together (one line each).
function Cluster:relayed()
  local n = 0
  for _, p in ipairs(self.proxies) do n = n + p:log_count("event=relayed") end
  return n
end

function Cluster:blocked()
  local n = 0
  for _, p in ipairs(self.proxies) do n = n + p:log_count("event=blocked") end
  return n
end

-- The sinks where sent mail may end up.
function Cluster:sinks()
  local s = { self.down }
  if self.bypass then s[#s + 1] = self.bypass end
  for _, x in ipairs(self.extra_sinks or {}) do s[#s + 1] = x end
  return s
end

-- The ledger: every clean message sent arrived exactly once, at one host,
-- and nothing arrived that was not sent. Blocked kinds must not arrive at
-- all (their NDR goes to the sender's mailbox). Returns subject -> message
-- and host -> count.
function Cluster:check_ledger(what)
  local t = self.t
  local seen, where, count = {}, {}, {}
  for _, s in ipairs(self:sinks()) do
    count[s.name] = 0
    for _, m in ipairs(s:messages()) do
      local subj = m.subject or "(none)"
      if self.sent[subj] == nil then
        t:fail((what or "ledger") .. ": " .. s.name .. " got a message nobody sent: " .. subj)
      elseif seen[subj] then
        t:fail((what or "ledger") .. ": delivered twice: " .. subj .. " (at " .. where[subj]
          .. " and " .. s.name .. ")")
      else
        seen[subj], where[subj] = m, s.name
      end
      count[s.name] = count[s.name] + 1
    end
  end
  local lost = {}
  for _, subj in ipairs(self.order) do
    local blocked = self.sent[subj] == "card"
    if blocked and seen[subj] then
      t:fail((what or "ledger") .. ": a blocked message was delivered: " .. subj)
    elseif not blocked and not seen[subj] then
      lost[#lost + 1] = subj
    end
  end
  t:eq(lost, {}, (what or "ledger") .. ": no message lost")
  return seen, count, where
end

-- Inspected once: through the MTA twice (from the sender, back from a
-- proxy) and one pass header.
function Cluster:inspected_once(m, what)
  local t = self.t
  t:eq(#m:headers(R.PASS_NAME), 1, what .. ": the pass header exactly once")
  t:eq(#m:headers("Received"), 2, what .. ": through the MTA exactly twice")
end

-- Passed uninspected: no pass header, through the MTA once.
function Cluster:uninspected(m, what)
  local t = self.t
  t:eq(m:header(R.PASS_NAME), nil, what .. ": no pass header")
  t:eq(#m:headers("Received"), 1, what .. ": through the MTA once")
end

-- The proxy (index) the MTA handed each of its deliveries to, by address.
function Cluster:proxy_at(addr)
  for i, p in ipairs(self.proxies) do
    if p.addr == addr then return i end
  end
  return nil
end

return C
