-- Real Postfix as the Prevent-integrated MTA: the configuration fragments
-- for each architecture, the chains the suites in scenarios/postfix/ build
-- with them, and the generator of docs/integration/postfix.md.
--
-- The fragments below are the single source: t:postfix{} runs exactly
-- these lines (with the scenario's addresses), and the guide shows exactly
-- these lines (with example addresses). `make postfix-doc` regenerates the
-- guide; the suite fails while it is stale.
--
-- Not a suite itself. A suite loads it with
--
--   local P = load(assert(sim.read("scenarios/lib/postfix.lua")),
--                  "@scenarios/lib/postfix.lua", "t", _ENV)()

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()

local P = { R = R }

-- ---- placeholders ------------------------------------------------------------

-- What {{NAME}} stands for. `doc` is what the guide shows; the suites
-- fill in their own addresses (P.values).
P.PLACEHOLDERS = {
  { "MTA_IP", "192.0.2.10", "the integrated MTA's own address (Postfix's smtp_bind_address; the proxy reflects to it)" },
  { "PROXY_IP", "192.0.2.20", "mailprevent's address (`listen`, and `source_address` for client-IP routing)" },
  { "PROXY_PORT", "10025", "mailprevent's port (`listen`)" },
  { "PROXIES", "[192.0.2.20]:10025", "every proxy, tried in order: `[192.0.2.20]:10025, [192.0.2.21]:10025` (a list needs Postfix 3.5 or later; give the tables below a line for each)" },
  { "PROXY_HELO", "prevent1.corp.example", "mailprevent's `helo_name`" },
  { "RESUBMIT_PORT", "10026", "the second listener, mailprevent's `resubmit_port` (listener routing)" },
  { "REINJECT_PORT", "10026", "the re-injection listener for inspected mail (the other three)" },
  { "ENCRYPT_HOP", "[192.0.2.30]:25", "the encryption gateway" },
  { "QUARANTINE_HOP", "[192.0.2.31]:25", "the quarantine host" },
  { "BYPASS_HOP", "[192.0.2.40]:25", "where uninspected mail goes when no proxy answers (pass through on failure)" },
  { "DOWNSTREAM_HOP", "[192.0.2.50]:25", "forwarding mode: the MTA after the proxy (bypass on failure)" },
  { "TLS_CA", "/etc/postfix/tls/prevent-ca.pem", "TLS: the CA (or bundle) that signed mailprevent's certificate" },
  { "PROXY_TLS_NAME", "prevent1.corp.example", "TLS: a name in mailprevent's certificate" },
  { "MTA_TLS_CERT", "/etc/postfix/tls/mta.chain.pem", "TLS: Postfix's own certificate chain (names `MTA_IP`, which mailprevent checks)" },
  { "MTA_TLS_KEY", "/etc/postfix/tls/mta.key", "TLS: its key" },
}

P.DOC_VALUES = {}
for _, p in ipairs(P.PLACEHOLDERS) do P.DOC_VALUES[p[1]] = p[2] end

-- The pass header as a regexp: table pattern (case does not matter there).
local function regex_escape(s)
  return (s:gsub("[%^%$%(%)%.%[%]%*%+%?%{%}%|\\/]", "\\%0"))
end
P.PASS_RE = "/^" .. regex_escape(R.PASS_NAME) .. ":[[:space:]]*" .. regex_escape(R.PASS_VALUE)
  .. "[[:space:]]*$/"

-- {{NAME}} -> values[NAME]; an unknown name is an error (a typo in a fragment).
function P.render(text, values)
  return (text:gsub("{{([%w_]+)}}", function(k)
    local v = values[k]
    if v == nil then error("postfix fragment: no value for {{" .. k .. "}}", 2) end
    return tostring(v)
  end))
end

-- ---- the fragments ---------------------------------------------------------------
--
-- Each piece: main (main.cf lines), master (master.cf lines), maps
-- ({ file = content }, in $config_directory). Comments in them are part of
-- the guide.

-- Every reflecting architecture: the content filter that sends new mail to
-- mailprevent, and a cleanup service that routes on the headers its
-- policies add. That cleanup serves only mail that came back from the
-- proxy: a header_checks FILTER replaces any earlier FILTER and the
-- content_filter, so in a cleanup that also sees new mail, a sender who
-- writes "X-CFilter: Encrypt" would choose a route past the proxy.
P.COMMON = {
  main = [=[
# New mail goes to mailprevent first; the architecture below decides
# which mail counts as inspected and skips it.
content_filter = prevent:{{PROXIES}}
]=],
  master = [=[
# The SMTP client that talks to mailprevent (the name content_filter uses).
prevent   unix  -       -       n       -       -       smtp
{{PREVENT_OPTIONS}}
# The cleanup for inspected mail: routes on the headers the policies add.
inspected-cleanup unix n -      n       -       0       cleanup
  -o header_checks=regexp:$config_directory/prevent_routes
]=],
  maps = {
    prevent_routes = [=[
# Added by mailprevent's policies (lua/policies/x-cfilter-*.lua).
/^X-CFilter:[[:space:]]*Encrypt[[:space:]]*$/     FILTER smtp:{{ENCRYPT_HOP}}
/^X-CFilter:[[:space:]]*Quarantine[[:space:]]*$/  FILTER smtp:{{QUARANTINE_HOP}}
]=],
  },
}

-- The listener that takes inspected mail on, for architectures 2-4: Postfix
-- re-injects mail it recognises as inspected here (a FILTER to itself), so
-- that it reaches the inspected-cleanup above. Only Postfix itself may use it.
P.REINJECT = {
  master = [=[
# Inspected mail goes on from here: no content filter, and the cleanup
# that routes on X-CFilter. Postfix is its only client.
{{MTA_IP}}:{{REINJECT_PORT}} inet n -   n       -       -       smtpd
  -o content_filter=
  -o cleanup_service_name=inspected-cleanup
  -o mynetworks={{MTA_IP}}/32
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_helo_restrictions=
]=],
}

P.ARCH = {}

P.ARCH.listener = {
  title = "Second SMTP listener",
  port = "resubmit",
  recognise = "the port it arrived on",
  master = [=[
# The second listener: mailprevent hands inspected mail back here
# (its resubmit_port). Nobody but the proxies may use it.
{{MTA_IP}}:{{RESUBMIT_PORT}} inet n -   n       -       -       smtpd
  -o content_filter=
  -o cleanup_service_name=inspected-cleanup
  -o mynetworks={{PROXY_IP}}/32
  -o smtpd_client_restrictions=permit_mynetworks,reject
]=],
  proxy_yaml = [=[
mode: reflect
listen: "{{PROXY_IP}}:{{PROXY_PORT}}"
resubmit_port: {{RESUBMIT_PORT}}
allow_clients: ["{{MTA_IP}}"]
]=],
  bypass = "A host that reaches the second listener skips inspection, so it accepts only the "
    .. "proxies' addresses (`mynetworks` and `smtpd_client_restrictions` on that listener). "
    .. "With that in place, nothing a sender puts in a message or says in the SMTP dialogue "
    .. "gets past the proxy; the suite checks that a forged pass header, a forged HELO, a forged "
    .. "`X-CFilter` header and a direct connection to the second listener all fail.",
}

P.ARCH.client_ip = {
  title = "SMTP client IP address",
  port = "reinject",
  recognise = "the address the connection comes from",
  main = [=[
# Mail from mailprevent's source_address was inspected: on to the
# re-injection listener (no content filter there).
smtpd_client_restrictions = check_client_access cidr:$config_directory/prevent_clients
]=],
  maps = {
    prevent_clients = [=[
# mailprevent's source_address, one line per proxy
{{PROXY_IP}}/32   FILTER smtp:[{{MTA_IP}}]:{{REINJECT_PORT}}
]=],
  },
  reinject = true,
  proxy_yaml = [=[
mode: reflect
listen: "{{PROXY_IP}}:{{PROXY_PORT}}"
source_address: "{{PROXY_IP}}"   # the address Postfix trusts
resubmit_port: 25                 # Postfix's main listener
allow_clients: ["{{MTA_IP}}"]
]=],
  bypass = "Only a connection from a proxy's address skips inspection. A sender cannot forge "
    .. "that from a mail client; a host that can take over the address (or a service on the "
    .. "proxy host that relays mail) can. The suite shows it with a connection from the proxy's "
    .. "own address (a finding), and checks that a forged pass header, HELO or `X-CFilter` "
    .. "header changes nothing.",
}

P.ARCH.helo = {
  title = "HELO string",
  port = "reinject",
  recognise = "the name the client gives in HELO/EHLO",
  main = [=[
# Mail from a client that greets with mailprevent's helo_name was
# inspected: on to the re-injection listener.
smtpd_helo_required = yes
smtpd_helo_restrictions = check_helo_access texthash:$config_directory/prevent_helo
]=],
  maps = {
    prevent_helo = [=[
# mailprevent's helo_name, one line per proxy
{{PROXY_HELO}}   FILTER smtp:[{{MTA_IP}}]:{{REINJECT_PORT}}
]=],
  },
  reinject = true,
  proxy_yaml = [=[
mode: reflect
listen: "{{PROXY_IP}}:{{PROXY_PORT}}"
helo_name: "{{PROXY_HELO}}"      # the name Postfix trusts
resubmit_port: 25                 # Postfix's main listener
allow_clients: ["{{MTA_IP}}"]
]=],
  bypass = "Anyone who runs their own SMTP client can greet with the proxy's name, and their "
    .. "mail skips inspection: the suite shows it (a finding). Keep the name out of public "
    .. "view, and prefer the listener or client-IP architecture.",
}

P.ARCH.header = {
  title = "Message header",
  port = "reinject",
  recognise = "the pass header in the message",
  main = [=[
# Mail that carries mailprevent's pass header was inspected: on to the
# re-injection listener. (Only mail that arrives by SMTP or pickup goes
# through these checks; Postfix's own bounces never do.)
header_checks = regexp:$config_directory/prevent_pass_header
]=],
  maps = {
    prevent_pass_header = [=[
# mailprevent's pass_header
{{PASS_RE}}   FILTER smtp:[{{MTA_IP}}]:{{REINJECT_PORT}}
]=],
  },
  reinject = true,
  proxy_yaml = [=[
mode: reflect
listen: "{{PROXY_IP}}:{{PROXY_PORT}}"
pass_header: "{{PASS}}"   # the header Postfix trusts
resubmit_port: 25                 # Postfix's main listener
allow_clients: ["{{MTA_IP}}"]
]=],
  bypass = "The header is part of the message, and the sender writes the message: any mail "
    .. "client that can add a header line skips inspection. The suite shows it (a finding). "
    .. "Use this only when nothing else is possible.",
}

-- STARTTLS both ways. Postfix to mailprevent: options of the prevent
-- transport ("secure": the chain must verify and carry the name). Back
-- from mailprevent: the listener it reflects to offers STARTTLS with a
-- certificate that names MTA_IP, which mailprevent checks (tls.outbound:
-- follow uses TLS back because Postfix used it).
P.TLS = {
  prevent_options = [=[
  -o smtp_tls_security_level=secure
  -o smtp_tls_secure_cert_match={{PROXY_TLS_NAME}}
  -o smtp_tls_CAfile={{TLS_CA}}
  -o smtp_tls_loglevel=1
]=],
  listener_options = [=[
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_cert_file={{MTA_TLS_CERT}}
  -o smtpd_tls_key_file={{MTA_TLS_KEY}}
  -o smtpd_tls_loglevel=1
]=],
  forward_main = [=[
# STARTTLS to mailprevent; its certificate must verify and carry the name.
smtp_tls_security_level = secure
smtp_tls_secure_cert_match = {{PROXY_TLS_NAME}}
smtp_tls_CAfile = {{TLS_CA}}
smtp_tls_loglevel = 1
]=],
  downstream_main = [=[
# The downstream MTA offers STARTTLS; mailprevent verifies it (tls.trust_file).
smtpd_tls_security_level = may
smtpd_tls_cert_file = {{MTA_TLS_CERT}}
smtpd_tls_key_file = {{MTA_TLS_KEY}}
smtpd_tls_loglevel = 1
]=],
  proxy_yaml = [=[
tls:
  cert_file: /etc/mailprevent/tls/prevent1.chain.pem   # names PROXY_TLS_NAME
  key_file: /etc/mailprevent/tls/prevent1.key
  trust_file: /etc/mailprevent/tls/mta-ca.pem          # signed Postfix's certificate
  outbound: follow                                     # TLS back when Postfix used it
]=],
}

-- Failure modes, as options of the prevent transport.
P.FAILOVER = {
  block = {
    title = "Block on failure",
    options = "",
    text = "With no option, mail waits in Postfix's deferred queue while no proxy answers "
      .. "and goes to the proxy when it is back (`postqueue -f` sends it at once). Nothing "
      .. "leaves uninspected.",
  },
  pass = {
    title = "Pass through on failure",
    options = [=[
  -o smtp_fallback_relay={{BYPASS_HOP}}
]=],
    text = "`smtp_fallback_relay` on the prevent transport: when no proxy can be reached, Postfix "
      .. "hands the mail to the bypass host instead, uninspected (the bypass MX of the guide). "
      .. "Mail that a proxy refuses or defers does not go there.",
  },
}

-- Forwarding mode: Postfix is the upstream MTA; the proxy forwards to the
-- downstream MTA.
P.FORWARD = {
  main = [=[
# All outbound mail goes through mailprevent, which forwards it to the
# downstream MTA (its next_hop).
relayhost = [{{PROXY_IP}}]:{{PROXY_PORT}}
]=],
  bypass_main = [=[
# Pass through on failure: straight to the downstream MTA when no proxy
# can be reached.
smtp_fallback_relay = {{DOWNSTREAM_HOP}}
]=],
  proxy_yaml = [=[
mode: forward
listen: "{{PROXY_IP}}:{{PROXY_PORT}}"
next_hop:
  hosts: ["{{DOWNSTREAM}}"]
allow_clients: ["{{MTA_IP}}"]
]=],
}

-- Around the fragments, in the suites only: where inspected mail goes.
P.HARNESS = {
  main = [=[
# (test harness) the organisation's next hops
relayhost = {{DOWNSTREAM_HOP}}
transport_maps = texthash:$config_directory/transport
]=],
  forward_main = [=[
# (test harness) local mail, such as NDRs to the sender
transport_maps = texthash:$config_directory/transport
]=],
  maps = {
    transport = [=[
# (test harness) the sender's own domain
corp.example   smtp:{{MAILBOX_HOP}}
]=],
  },
}

-- ---- putting an architecture together ---------------------------------------------

local function append(list, text, values)
  if text and text ~= "" then list[#list + 1] = P.render(text, values) end
end

-- The main.cf lines, master.cf lines and maps of one reflecting
-- architecture with the given failover ("block" or "pass").
function P.integration(arch, values, failover, tls)
  local a = assert(P.ARCH[arch], "no such architecture: " .. tostring(arch))
  local v = {}
  for k, x in pairs(values) do v[k] = x end
  v.PREVENT_OPTIONS = P.render(P.FAILOVER[failover or "block"].options, values)
    .. (tls and P.render(P.TLS.prevent_options, values) or "")
  v.PASS_RE = P.PASS_RE
  v.PASS = R.PASS
  local main, master, maps = {}, {}, {}
  append(main, P.COMMON.main, v)
  append(main, a.main, v)
  append(master, P.COMMON.master, v)
  if tls and arch ~= "listener" then error("the suites run TLS with the listener architecture only") end
  append(master, a.master and (a.master .. (tls and P.TLS.listener_options or "")), v)
  if a.reinject then append(master, P.REINJECT.master, v) end
  for name, text in pairs(P.COMMON.maps) do maps[name] = P.render(text, v) end
  for name, text in pairs(a.maps or {}) do maps[name] = P.render(text, v) end
  return { main = table.concat(main, "\n"), master = table.concat(master, "\n"), maps = maps }
end

-- The scenario's values for the placeholders.
function P.values(c)
  return {
    MTA_IP = c.pf.ip,
    PROXY_IP = c.proxy.ip,
    PROXY_PORT = c.proxy.port,
    PROXIES = c.proxies_list or ("[" .. c.proxy.ip .. "]:" .. c.proxy.port),
    PROXY_HELO = c.proxy.helo_name,
    RESUBMIT_PORT = c.pf.ports.resubmit or "-",
    REINJECT_PORT = c.pf.ports.reinject or "-",
    ENCRYPT_HOP = "[" .. c.enc.ip .. "]:" .. c.enc.port,
    QUARANTINE_HOP = "[" .. c.quar.ip .. "]:" .. c.quar.port,
    BYPASS_HOP = c.bypass and ("[" .. c.bypass.ip .. "]:" .. c.bypass.port) or "-",
    DOWNSTREAM_HOP = "[" .. c.down.ip .. "]:" .. c.down.port,
    MAILBOX_HOP = "[" .. c.mailbox.ip .. "]:" .. c.mailbox.port,
    DOWNSTREAM = c.down.addr,
    TLS_CA = c.pki and c.pki.trust or "-",
    PROXY_TLS_NAME = P.TLS_PROXY_NAME,
    MTA_TLS_CERT = c.pki and c.pki.mta.cert or "-",
    MTA_TLS_KEY = c.pki and c.pki.mta.key or "-",
  }
end

P.TLS_PROXY_NAME = "proxy.mailprevent.test"
P.TLS_MTA_NAME = "mta.mailprevent.test"

-- ---- Postfix present? --------------------------------------------------------------

P.MISSING = sim.postfix_missing()
if P.MISSING and not sim.env("MP_POSTFIX_DOC") then
  print("!!! SKIPPING every Postfix scenario: " .. P.MISSING)
end

function P.need(t)
  if P.MISSING then t:skip("no Postfix here: " .. P.MISSING) end
end

-- ---- the chain ----------------------------------------------------------------------
--
--   sender --> Postfix --content_filter--> mailprevent (reflect) --> Postfix --+--> mailbox   (corp.example)
--                                                                            +--> encryption (X-CFilter: Encrypt)
--                                                                            +--> quarantine (X-CFilter: Quarantine)
--                                                                            +--> downstream (relayhost)

local Chain = {}
Chain.__index = Chain

-- P.chain(t, arch, opts): sinks, a Postfix instance with the
-- architecture's fragments, and a real bin/mailprevent reflecting to it.
-- opts.failover: "block" (default) or "pass" (adds a bypass sink).
function P.chain(t, arch, opts)
  P.need(t)
  opts = opts or {}
  local a = assert(P.ARCH[arch], "no such architecture: " .. tostring(arch))
  local c = setmetatable({ t = t, arch = arch }, Chain)
  c.down = t:sink{ name = "downstream" }
  if opts.single_sink then
    -- one host stands in for every next hop (the staging checklist)
    c.mailbox, c.enc, c.quar = c.down, c.down, c.down
  else
    c.mailbox = t:sink{ name = "mailbox" }
    c.enc = t:sink{ name = "encryption" }
    c.quar = t:sink{ name = "quarantine" }
  end
  c.failover = opts.failover or "block"
  if c.failover == "pass" then c.bypass = t:sink{ name = "bypass" } end
  c.pf = t:postfix{ name = "postfix", ports = { a.port }, start = false }
  -- reflect_to: the resubmit port for the listener architecture, the
  -- main listener for the others.
  local tls
  if opts.tls then
    -- certificates that name each host's loopback address (what the proxy
    -- checks) and, for the proxy, the name Postfix checks
    local pip = t:ip()
    c.pki = t:pki{ hosts = { proxy = { P.TLS_PROXY_NAME, pip }, mta = { P.TLS_MTA_NAME, c.pf.ip } } }
    local proxy_pki = c.pki
    if opts.tls == "untrusted" then
      -- a proxy certificate from a CA that Postfix does not trust
      proxy_pki = t:pki{ name = "other", hosts = { proxy = { P.TLS_PROXY_NAME, pip } } }
    end
    tls = { cert = proxy_pki.proxy.cert, key = proxy_pki.proxy.key, trust = c.pki.trust,
            outbound = "follow" }
    c.proxy_ip = pip
  end
  c.proxy = t:proxy{ ip = c.proxy_ip, reflect_to = c.pf, policies = R.POLICIES, tls = tls,
                     extra = { allow_clients = { c.pf.ip } } }
  if opts.second_proxy then
    -- a second proxy on the same address (so the tables need no second
    -- line), listed after the first
    c.proxy2 = t:proxy{ name = "proxy2", ip = c.proxy.ip, reflect_to = c.pf,
                        policies = R.POLICIES, extra = { allow_clients = { c.pf.ip } } }
    c.proxies_list = "[" .. c.proxy.ip .. "]:" .. c.proxy.port .. ", ["
      .. c.proxy2.ip .. "]:" .. c.proxy2.port
  end
  c.values = P.values(c)
  local cfg = P.integration(arch, c.values, c.failover, opts.tls)
  local main = { P.render(P.HARNESS.main, c.values), cfg.main }
  local maps = cfg.maps
  maps.transport = P.render(P.HARNESS.maps.transport, c.values)
  c.pf:start{ main = main, master = cfg.master, maps = maps }
  return c
end

function Chain:send(kind, extra)
  local spec = {}
  for k, v in pairs(R.MAIL[kind] or error("no such mail: " .. tostring(kind))) do spec[k] = v end
  spec.to, spec.from, spec.rcpt = self.pf, R.SENDER, { R.RCPT }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return self.t:send(spec)
end

-- Nothing left in Postfix's queue: every copy has gone where it goes. A
-- message that loops never lets the queue empty.
function Chain:settle()
  return self.t:require(self.pf:wait_queue_empty(10), "Postfix's queue empties (nothing loops)")
end

function Chain:inspections()
  return self.proxy:log_count(" event=mail ")
end

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

-- How many times Postfix took this message in: from the sender, back from
-- the proxy, and (architectures 2-4) re-injected to itself.
function Chain:passes()
  return P.ARCH[self.arch].reinject and 3 or 2
end

-- Received lines that this Postfix instance wrote.
function Chain:own_received(m)
  local n = 0
  for _, r in ipairs(m:headers("Received")) do
    if r:find("by " .. self.pf.myhostname, 1, true) then n = n + 1 end
  end
  return n
end

-- Delivered after exactly one pass through the proxy.
function Chain:handled_once(m, what)
  local t = self.t
  what = what and (what .. ": ") or ""
  t:eq(self:own_received(m), self:passes(), what .. "through Postfix " .. self:passes()
    .. " times (Received), so through the proxy once")
  t:eq(#m:headers(R.PASS_NAME), 1, what .. "the pass header exactly once")
  t:eq(m.client_ip, self.pf.ip, what .. "delivered by Postfix")
end

-- Postfix's NDR in the sender's mailbox: from <>, to the sender, quoting
-- the policy's reply (Postfix folds long lines; compare without them).
function Chain:check_ndr(ndr, reply)
  local t = self.t
  local function flat(s) return (s:gsub("%s+", " ")) end
  t:eq(ndr.from, "", "the NDR comes from <>")
  t:eq(ndr.rcpts, { R.SENDER }, "the NDR goes to the sender")
  t:eq(ndr:header("Auto-Submitted"), "auto-replied", "Postfix marks it Auto-Submitted")
  t:contains(flat(ndr.body), flat(reply or R.CARD_REPLY), "the NDR carries the policy's reply text")
  t:contains(ndr:header("From") or "", "MAILER-DAEMON", "Postfix wrote it (From: MAILER-DAEMON)")
end

function Chain:incident(action, policy)
  local t = self.t
  local inc = t:require(self.proxy:wait_incidents(1, 5))
  local last = inc[#inc]
  t:eq(last.action, action, "incident action")
  t:eq(last.policies and last.policies[1] and last.policies[1].name, policy, "incident policy")
  return last, inc
end

P.Chain = Chain

-- ---- chapter 5 functional tests -------------------------------------------------------

local function name(arch, what) return "postfix " .. arch .. ": " .. what end

function P.functional(arch)
  local function def(what, check, run)
    scenario { name = name(arch, what), check = check, architecture = arch,
               timeout = 30, tags = { "postfix" }, run = run }
  end

  def("no policy violated", "No policy violated", function(t)
    local c = P.chain(t, arch)
    local r = c:send("clean")
    t:eq(r.code, 250, "Postfix accepted the message: " .. tostring(r.text))
    local m = t:require(c.down:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ downstream = 1 }, "delivered downstream once and only once")
    t:eq(m.rcpts, { R.RCPT }, "to its recipient")
    t:eq(m.subject, R.MAIL.clean.subject, "unchanged")
    c:handled_once(m)
    t:eq(c.proxy:log_count("event=relayed"), 1, "inspected once (event=relayed)")
    t:eq(c:inspections(), 1, "one transaction at the proxy")
    t:eq(c.pf:log_count("relay=" .. c.proxy.ip), 1, "Postfix handed it to the proxy once")
    t:eq(c.proxy:incidents(), {}, "no incident")
  end)

  def("block: Postfix's NDR carries the policy's text", "Block SMTP message: NDR", function(t)
    local c = P.chain(t, arch)
    local r = c:send("card")
    t:eq(r.code, 250, "Postfix accepts first: it is store and forward")
    local ndr = t:require(c.mailbox:wait(1, 10))[1]
    c:settle()
    c:check_ndr(ndr)
    c:expect_counts({ mailbox = 1 }, "nothing delivered but the NDR")
    t:eq(c.pf:log_count("status=bounced"), 1, "Postfix bounced it once")
    t:eq(c.proxy:log_count("event=blocked"), 1, "the proxy blocked it")
    t:eq(c:inspections(), 1, "the NDR itself did not go to the proxy")
    c:incident("block", "Payment card numbers")
  end)

  def("redirect to the review address", "Block SMTP message: redirect", function(t)
    local c = P.chain(t, arch)
    local r = c:send("iban", { rcpt = { R.RCPT, R.LOCAL_RCPT } })
    t:eq(r.code, 250, r.text)
    local m = t:require(c.down:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ downstream = 1 }, "one copy, for the reviewer; none for bob or carol")
    t:eq(m.rcpts, { R.REVIEW }, "only the review address gets it")
    c:handled_once(m)
    local inc = c:incident("redirect", "Bank details for review")
    t:eq(inc.redirect_to, R.REVIEW, "the incident names the review address")
  end)

  def("notification delivered", "Send email notification", function(t)
    local c = P.chain(t, arch)
    local r = c:send("ssn")
    t:eq(r.code, 250, r.text)
    t:require(c.down:wait(2, 10))          -- the original and the notice to security
    t:require(c.mailbox:wait(1, 10))       -- the notice to the sender
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
      t:contains(n.subject, "Social Security numbers", "it names the policy")
      t:contains(n.body, R.SSN_MASKED, "it shows the masked sample")
      t:ok(not n.body:find(R.SSN, 1, true), "not the number itself")
    end
    t:eq(c:inspections(), 1, "Postfix recognised the notification: not inspected again")
    c:incident("monitor", "Social Security numbers")
  end)

  def("X-CFilter: Encrypt goes to the encryption hop", "Modify SMTP message: header", function(t)
    local c = P.chain(t, arch)
    local r = c:send("confidential")
    t:eq(r.code, 250, r.text)
    local m = t:require(c.enc:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ encryption = 1 }, "to the encryption hop, not the plain downstream")
    t:eq(m:header("X-CFilter"), "Encrypt", "the proxy added the header")
    t:eq(m.rcpts, { R.RCPT })
    c:handled_once(m)
    c:incident("modify", "Encrypt confidential mail")
  end)

  def("subject changed and X-CFilter: Quarantine", "Modify SMTP message: subject", function(t)
    local c = P.chain(t, arch)
    local r = c:send("exe")
    t:eq(r.code, 250, r.text)
    local m = t:require(c.quar:wait(1, 10))[1]
    c:settle()
    c:expect_counts({ quarantine = 1 }, "held by the quarantine hop only")
    t:eq(m.subject, "[QUARANTINE] " .. R.MAIL.exe.subject, "the subject was changed")
    t:eq(m:header("X-CFilter"), "Quarantine", "the header was added")
    c:handled_once(m)
  end)
end

-- ---- failover ----------------------------------------------------------------------------

function P.failover(arch)
  scenario { name = name(arch, "block on proxy failure: Postfix holds the mail"),
             check = "Basic failover: block", architecture = arch, timeout = 30,
             tags = { "postfix" }, run = function(t)
    local c = P.chain(t, arch)
    t:eq(c.proxy:stop(), 0, "the proxy is stopped")
    c.pf:mark()
    local r = c:send("clean", { subject = "held while the proxy is down" })
    t:eq(r.code, 250, "Postfix still accepts mail")
    local line = t:require(c.pf:wait_log("status=deferred", 10), "Postfix deferred it")
    t:contains(line, "connect to " .. c.proxy.ip, "because the proxy did not answer")
    -- (qmgr moves it to the deferred queue just after that line, and
    -- back to the active queue for each retry: either is "held")
    local q = t:require(c.pf:queue())
    t:eq(#q, 1, "one message waits in Postfix's queue")
    t:eq(q[1] and q[1].sender, R.SENDER, "the sender's message")
    c:expect_counts({}, "nothing left Postfix")
    c.proxy:start()
    t:require(c.pf:flush())
    local m = t:require(c.down:wait(1, 10))[1]
    c:settle()
    t:eq(m.subject, "held while the proxy is down", "once the proxy is back, it is delivered")
    c:handled_once(m)
    t:eq(c.proxy:log_count("event=relayed"), 1, "after inspection")
    c:expect_counts({ downstream = 1 })
  end }

  scenario { name = name(arch, "pass through on proxy failure: the bypass relay"),
             check = "Basic failover: pass through", architecture = arch, timeout = 30,
             tags = { "postfix" }, run = function(t)
    local c = P.chain(t, arch, { failover = "pass" })
    t:eq(c.proxy:kill(), 137, "the proxy is gone")
    local r = c:send("clean", { subject = "while the proxy is down" })
    t:eq(r.code, 250, "Postfix still accepts mail")
    local m = t:require(c.bypass:wait(1, 10))[1]
    c:settle()
    t:eq(m.subject, "while the proxy is down", "it took the bypass route")
    t:eq(m:header(R.PASS_NAME), nil, "uninspected: no pass header")
    c.proxy:start()
    r = c:send("clean", { subject = "proxy back" })
    t:eq(r.code, 250)
    m = t:require(c.down:wait(1, 10))[1]
    c:settle()
    t:eq(m.subject, "proxy back", "the stream goes through the proxy again")
    c:handled_once(m)
    c:expect_counts({ downstream = 1, bypass = 1 })
  end }
end

-- Two proxies in the content_filter list: the second takes over while the
-- first is down, and nothing waits.
function P.two_proxies(arch)
  scenario { name = name(arch, "two proxies: the second takes over"),
             check = "Basic failover: second proxy", architecture = arch, timeout = 30,
             tags = { "postfix" }, run = function(t)
    local c = P.chain(t, arch, { second_proxy = true })
    t:contains(c.pf:file("main.cf"), c.values.PROXIES, "both proxies in content_filter")
    t:eq(c:send("clean", { subject = "first" }).code, 250)
    t:require(c.down:wait(1, 10))
    c:settle()
    t:eq(c.proxy:log_count("event=relayed"), 1, "the first proxy while it is up")
    t:eq(c.proxy:kill(), 137, "the first proxy is gone")
    t:eq(c:send("clean", { subject = "second" }).code, 250)
    local m = t:require(c.down:wait(2, 10))[2]
    c:settle()
    t:eq(m.subject, "second")
    c:handled_once(m)
    t:eq(c.proxy2:log_count("event=relayed"), 1, "the second proxy took it")
    t:eq(c.pf:log_count("status=deferred"), 0, "without delay")
  end }
end

-- ---- security: what gets past each architecture ------------------------------------------

-- A card message from a sender who tries to pass as inspected: "blocked"
-- (the proxy saw it; the sender got the NDR), "bypassed" (it left
-- uninspected), or "refused" (Postfix refused it outright).
function P.attempt(c, extra)
  local t = c.t
  local r = c:send("card", extra)
  if r.code // 100 == 5 then
    t:eq(c:inspections(), 0, "the proxy never saw it")
    return "refused", r
  end
  t:eq(r.code, 250, "Postfix accepted the message: " .. tostring(r.text))
  t:require(t:wait_until(function()
    return c.down:count() + c.mailbox:count() + c.enc:count() + c.quar:count() > 0
  end, 10, "the card message to go somewhere"))
  c:settle()
  if c.mailbox:count() == 0 then
    t:eq(c:inspections(), 0, "the proxy never saw it")
    return "bypassed", r
  end
  c:check_ndr(c.mailbox:message(1))
  t:eq(c.proxy:log_count("event=blocked"), 1, "the proxy inspected and blocked it")
  c:expect_counts({ mailbox = 1 })
  return "blocked", r
end

local function forged(arch, what, check, expect, extra_fn, finding)
  scenario { name = name(arch, what), check = check, architecture = arch, timeout = 30,
             tags = { "postfix", "security" }, run = function(t)
    local c = P.chain(t, arch)
    local got = P.attempt(c, extra_fn(c))
    t:eq(got, expect, what)
    if got == expect and finding then t:finding("postfix " .. arch .. ": " .. finding(c)) end
  end }
end

function P.security(arch)
  local expect = {
    header = arch == "header" and "bypassed" or "blocked",
    helo = arch == "helo" and "bypassed" or "blocked",
  }
  forged(arch, "a forged pass header " .. (expect.header == "bypassed" and "bypasses" or
    "does not bypass") .. " inspection", "Security: forged pass header", expect.header,
    function() return { headers = { R.PASS } } end,
    expect.header == "bypassed" and function() return "a sender who adds '" .. R.PASS
      .. "' to a message skips inspection: a card number went downstream unseen." end)
  forged(arch, "a forged proxy HELO " .. (expect.helo == "bypassed" and "bypasses" or
    "does not bypass") .. " inspection", "Security: forged proxy HELO", expect.helo,
    function(c) return { helo = c.proxy.helo_name } end,
    expect.helo == "bypassed" and function(c) return "a client that greets with the proxy's "
      .. "name (" .. c.proxy.helo_name .. ") skips inspection: a card number went "
      .. "downstream unseen." end)
  -- The routing headers act only in the inspected-cleanup, whatever the
  -- architecture: a sender cannot pick the encryption route.
  forged(arch, "a forged X-CFilter: Encrypt does not bypass inspection",
    "Security: forged routing header", "blocked",
    function() return { headers = { "X-CFilter: Encrypt" } } end)

  if arch == "listener" then
    forged(arch, "the second listener refuses everyone but the proxy",
      "Security: resubmit port open", "refused",
      function(c) return { to = c.pf.ip .. ":" .. c.pf.ports.resubmit } end)
  else
    forged(arch, "the re-injection listener refuses everyone but Postfix",
      "Security: re-injection port open", "refused",
      function(c) return { to = c.pf.ip .. ":" .. c.pf.ports.reinject } end)
  end
  if arch == "client_ip" then
    -- Why the routing headers have a cleanup of their own: the same rules
    -- in main.cf's header_checks (one cleanup for all mail) replace the
    -- content filter for new mail too.
    scenario { name = name(arch, "X-CFilter routes in the main cleanup would let a forged header through"),
               check = "Security: forged routing header (control)", architecture = arch,
               timeout = 30, tags = { "postfix", "security" }, run = function(t)
      local c = P.chain(t, arch)
      t:require(c.pf:stop())
      local cfg = P.integration(arch, c.values, "block")
      c.pf:start{ main = { P.render(P.HARNESS.main, c.values), cfg.main,
                           "header_checks = regexp:$config_directory/prevent_routes" } }
      t:eq(P.attempt(c, { headers = { "X-CFilter: Encrypt" } }), "bypassed",
        "with one cleanup, a forged X-CFilter: Encrypt skips the proxy")
      t:eq(c.enc:count(), 1, "straight to the encryption hop, uninspected")
    end }
    forged(arch, "only a connection from the proxy's own address bypasses inspection",
      "Security: proxy IP reused", "bypassed",
      function(c) return { source = c.proxy.ip } end,
      function(c) return "the proxy's address is the only credential: mail sent from "
        .. c.proxy.ip .. " went out uninspected. Keep other hosts off that address." end)
  end
end

-- ---- forwarding mode ---------------------------------------------------------------------

-- Postfix upstream -> mailprevent (forward) -> downstream: a sink, or a
-- second Postfix (opts.postfix_downstream) that routes X-CFilter itself.
function P.forward_chain(t, opts)
  P.need(t)
  opts = opts or {}
  local c = setmetatable({ t = t, arch = "forwarding" }, Chain)
  c.down = t:sink{ name = "downstream" }
  c.mailbox = t:sink{ name = "mailbox" }
  c.enc = t:sink{ name = "encryption" }
  c.quar = t:sink{ name = "quarantine" }
  c.pf = t:postfix{ name = "upstream", start = false }
  local next_hop = c.down
  if opts.postfix_downstream or opts.tls then
    c.pf2 = t:postfix{ name = "downstream_mta", start = false }
    next_hop = c.pf2
  end
  local tls, pip
  if opts.tls then
    pip = t:ip()
    c.pki = t:pki{ hosts = { proxy = { P.TLS_PROXY_NAME, pip }, mta = { P.TLS_MTA_NAME, c.pf2.ip } } }
    tls = { cert = c.pki.proxy.cert, key = c.pki.proxy.key, trust = c.pki.trust, outbound = "follow" }
  end
  c.proxy = t:proxy{ ip = pip, mode = "forward", next_hop = next_hop, policies = R.POLICIES,
                     tls = tls, extra = { allow_clients = { c.pf.ip } } }
  c.values = P.values(c)
  local v = c.values
  local main = { P.render(P.HARNESS.forward_main, v), P.render(P.FORWARD.main, v) }
  if opts.bypass then main[#main + 1] = P.render(P.FORWARD.bypass_main, v) end
  if opts.tls then main[#main + 1] = P.render(P.TLS.forward_main, v) end
  c.pf:start{ main = main, maps = { transport = P.render(P.HARNESS.maps.transport, v) } }
  if c.pf2 then
    local main2 = { "relayhost = " .. v.DOWNSTREAM_HOP,
                    "header_checks = regexp:$config_directory/prevent_routes" }
    if opts.tls then main2[#main2 + 1] = P.render(P.TLS.downstream_main, v) end
    c.pf2:start{ main = main2, maps = { prevent_routes = P.render(P.COMMON.maps.prevent_routes, v) } }
  end
  return c
end

-- ---- the staging checklist (appendix B) -------------------------------------------------

P.CHECK_ENV = {
  { "CHECK_MTA", "", "`host:port` of the staging MTA's SMTP listener, where the test mail is submitted. Unset: a local Postfix stands in." },
  { "CHECK_SINK", "", "`ip:port` where the toolkit's sink listens, an address the staging MTA can reach. The MTA must deliver the test domains there: the recipients' (`example.net` and `example.com` by default) and the sender's own (for NDRs and notices). Required with `CHECK_MTA`." },
  { "CHECK_PROXY", "", "`host:port` of the proxy. Optional: checks that it refuses a client that is not an integrated MTA (the toolkit's host)." },
  { "CHECK_SENDER", R.SENDER, "the envelope sender of the test mail" },
  { "CHECK_RCPT", R.RCPT, "the recipient" },
  { "CHECK_REVIEW", R.REVIEW, "the address the redirect policy sends to" },
  { "CHECK_SECURITY", R.SECURITY, "the address the notify policy tells" },
  { "CHECK_WAIT", "60", "seconds to wait for each message at the sink" },
  { "CHECK_FAILOVER", "", "`block` or `pass`, once you have stopped the proxy: checks that failure mode. Unset: the failover check is skipped." },
}

local function env(name)
  for _, e in ipairs(P.CHECK_ENV) do
    if e[1] == name then
      local v = sim.env(name)
      if v then return v end
      return e[2] ~= "" and e[2] or nil
    end
  end
  error("no such setting " .. name)
end

-- Where the checks send and look: the staging systems named in the
-- environment, or a local Postfix (listener architecture) with one sink
-- for every next hop.
local function target(t)
  local mta = sim.env("CHECK_MTA")
  local tg = { sender = env("CHECK_SENDER"), rcpt = env("CHECK_RCPT"), review = env("CHECK_REVIEW"),
               security = env("CHECK_SECURITY") }
  if mta then
    local sink = sim.env("CHECK_SINK")
    t:require(sink, "CHECK_SINK (ip:port for the toolkit's sink) is required with CHECK_MTA")
    local ip, port = sink:match("^%[?([^%]]+)%]?:(%d+)$")
    t:require(ip, "CHECK_SINK must be ip:port, not " .. sink)
    tg.sink = t:sink{ name = "staging-sink", ip = ip, port = tonumber(port) }
    tg.mta = t:external{ addr = mta, name = "staging-mta" }
    local proxy = sim.env("CHECK_PROXY")
    tg.proxy = proxy and t:external{ addr = proxy, name = "staging-proxy" }
    tg.wait = tonumber(env("CHECK_WAIT")) or 60
    tg.failover = sim.env("CHECK_FAILOVER")
    return tg
  end
  local c = P.chain(t, "listener", { single_sink = true })
  tg.chain, tg.mta, tg.sink, tg.proxy, tg.wait = c, c.pf, c.down, c.proxy, 10
  return tg
end

local tag_n = 0
local function send(t, tg, kind, extra)
  tag_n = tag_n + 1
  local tag = string.format("[mp-check %d-%d]", os.time(), tag_n)
  local spec = {}
  for k, v in pairs(R.MAIL[kind]) do spec[k] = v end
  spec.subject = spec.subject .. " " .. tag
  spec.to, spec.from, spec.rcpt = tg.mta, tg.sender, { tg.rcpt }
  for k, v in pairs(extra or {}) do spec[k] = v end
  local r = t:send(spec)
  t:eq(r.code, 250, "the MTA accepted the test message: " .. tostring(r.text or r.error))
  return tag, r
end

-- Messages at the sink whose content mentions tag (the original, or an
-- NDR that quotes its headers).
local function tagged(tg, tag)
  local out = {}
  for _, m in ipairs(tg.sink:messages()) do
    if m.content:find(tag, 1, true) then out[#out + 1] = m end
  end
  return out
end

local function wait_for(t, tg, fn, what)
  return t:wait_until(fn, tg.wait, what)
end

-- Local runs have a queue to wait on; staging runs wait for what they expect.
local function settle(tg)
  if tg.chain then tg.chain:settle() end
end

P.CHECK_ITEMS = {}

function P.checklist()
  local function def(check, what, run)
    P.CHECK_ITEMS[#P.CHECK_ITEMS + 1] = { check, what }
    if P.checklist_items_only then return end     -- P.doc() wants the list only
    scenario { name = "checklist: " .. check, check = check, timeout = 600,
               tags = { "checklist" }, run = run }
  end

  def("No policy violated", "a clean message arrives once, with the pass header once", function(t)
    local tg = target(t)
    local tag = send(t, tg, "clean")
    t:require(wait_for(t, tg, function() return #tagged(tg, tag) >= 1 end, "the message at the sink"))
    settle(tg)
    local got = tagged(tg, tag)
    t:eq(#got, 1, "delivered once")
    t:eq(got[1].rcpts, { tg.rcpt }, "to its recipient")
    t:eq(#got[1]:headers(R.PASS_NAME), 1, "inspected: the pass header once")
  end)

  def("Block SMTP message: NDR", "a card number: the sender gets an NDR with the policy's text; the message goes nowhere", function(t)
    local tg = target(t)
    local tag = send(t, tg, "card")
    local ndr = t:require(wait_for(t, tg, function()
      for _, m in ipairs(tagged(tg, tag)) do if m.from == "" then return m end end
    end, "an NDR at the sink"))
    settle(tg)
    t:eq(ndr.rcpts, { tg.sender }, "the NDR goes to the sender")
    t:contains((ndr.body:gsub("%s+", " ")), (R.CARD_REPLY:gsub("%s+", " ")), "it quotes the policy's reply")
    for _, m in ipairs(tagged(tg, tag)) do
      t:ok(m.from == "", "no copy of the card message itself arrived (got one for " .. table.concat(m.rcpts, ",") .. ")")
    end
  end)

  def("Block SMTP message: redirect", "an IBAN: only the review address gets it", function(t)
    local tg = target(t)
    local tag = send(t, tg, "iban")
    local m = t:require(wait_for(t, tg, function() return tagged(tg, tag)[1] end, "the redirected copy"))
    settle(tg)
    t:eq(#tagged(tg, tag), 1, "one copy")
    t:eq(m.rcpts, { tg.review }, "for the review address only")
  end)

  def("Send email notification", "an SSN: delivered, and a notice with the masked number", function(t)
    local tg = target(t)
    local tag = send(t, tg, "ssn")
    t:require(wait_for(t, tg, function() return #tagged(tg, tag) >= 1 end, "the original"))
    local notice = t:require(wait_for(t, tg, function()
      for _, m in ipairs(tg.sink:messages()) do
        if m.from ~= tg.sender and m.body:find(R.SSN_MASKED, 1, true) then return m end
      end
    end, "a notification"))
    settle(tg)
    t:eq(tagged(tg, tag)[1].rcpts, { tg.rcpt }, "the original is delivered")
    t:ok(not notice.body:find(R.SSN, 1, true), "the notice does not repeat the number")
    local all = {}
    for _, m in ipairs(tg.sink:messages()) do
      if m.from ~= tg.sender then for _, r in ipairs(m.rcpts) do all[#all + 1] = r end end
    end
    t:contains(all, tg.security, "the security address is told")
  end)

  def("Modify SMTP message: header", "\"Confidential\": it arrives with X-CFilter: Encrypt", function(t)
    local tg = target(t)
    local tag = send(t, tg, "confidential")
    local m = t:require(wait_for(t, tg, function() return tagged(tg, tag)[1] end, "the message"))
    settle(tg)
    t:eq(m:header("X-CFilter"), "Encrypt", "the policy's header")
  end)

  def("Modify SMTP message: subject", "an .exe attachment: the subject starts with [QUARANTINE]", function(t)
    local tg = target(t)
    local tag = send(t, tg, "exe")
    local m = t:require(wait_for(t, tg, function() return tagged(tg, tag)[1] end, "the message"))
    settle(tg)
    t:match(m.subject or "", "^%[QUARANTINE%] ", "the changed subject")
  end)

  def("Security: forged pass header", "a card number with a forged pass header is still blocked (a finding if not)", function(t)
    local tg = target(t)
    local tag = send(t, tg, "card", { headers = { R.PASS } })
    local m = t:require(wait_for(t, tg, function() return tagged(tg, tag)[1] end, "an NDR or the message"))
    settle(tg)
    if m.from == "" then
      t:contains((m.body:gsub("%s+", " ")), (R.CARD_REPLY:gsub("%s+", " ")), "blocked by the policy")
    else
      t:finding("a message with a forged '" .. R.PASS .. "' went through uninspected: the MTA "
        .. "routes on the pass header (see the guide's ranking)")
    end
  end)

  def("Proxy accepts only the integrated MTAs", "a client that is not an MTA is refused by the proxy", function(t)
    local tg = target(t)
    if not tg.proxy then t:skip("CHECK_PROXY is not set") end
    local r = t:send{ to = tg.proxy, from = tg.sender, rcpt = tg.rcpt, subject = "direct to the proxy",
                      body = "This should be refused." }
    t:ok(not r.ok, "the proxy refused the toolkit's host: " .. tostring(r.code) .. " " .. tostring(r.text or r.error))
  end)

  def("Basic failover", "with the proxy stopped: held (block) or delivered uninspected (pass)", function(t)
    local tg = target(t)
    local c = tg.chain
    local mode = tg.failover or (c and "block")
    if not mode then t:skip("stop the proxy and set CHECK_FAILOVER=block or pass") end
    if c then t:eq(c.proxy:stop(), 0, "(local) the proxy is stopped"); c.pf:mark() end
    local tag = send(t, tg, "clean")
    if mode == "pass" then
      local m = t:require(wait_for(t, tg, function() return tagged(tg, tag)[1] end, "the message"))
      t:eq(m:header(R.PASS_NAME), nil, "delivered uninspected, by the bypass route")
      return
    end
    if c then
      t:require(c.pf:wait_log("status=deferred", 10), "(local) Postfix deferred it")
    else
      t:wait_until(function() return #tagged(tg, tag) > 0 end, tg.wait, "nothing to arrive")
    end
    t:eq(#tagged(tg, tag), 0, "nothing arrived while the proxy is down")
    if c then
      c.proxy:start()
      t:require(c.pf:flush())
      t:require(wait_for(t, tg, function() return tagged(tg, tag)[1] end, "the held message"))
      c:settle()
      t:eq(#tagged(tg, tag)[1]:headers(R.PASS_NAME), 1, "(local) once the proxy is back: inspected and delivered")
    else
      t:note("start the proxy again and check that the held message arrives")
    end
  end)
end

-- ---- the guide ------------------------------------------------------------------------------

local function block(lang, text)
  return "```" .. lang .. "\n" .. text:gsub("\n+$", "") .. "\n```\n"
end

local function maps_doc(maps)
  local names = {}
  for k in pairs(maps) do names[#names + 1] = k end
  table.sort(names)
  local out = {}
  for _, k in ipairs(names) do
    out[#out + 1] = "`$config_directory/" .. k .. "`:\n\n" .. block("", maps[k])
  end
  return table.concat(out, "\n")
end

-- docs/integration/postfix.md, from the fragments above and the doc text in
-- scenarios/postfix/doc.md.in ({{@NAME}} marks where generated parts go).
function P.doc()
  local v = P.DOC_VALUES
  local parts = {}
  local vals = {}
  for k, x in pairs(v) do vals[k] = x end
  vals.PASS_RE, vals.PASS = P.PASS_RE, R.PASS
  vals.DOWNSTREAM = "192.0.2.50:25"

  local ph = { "| Placeholder | Example | What |", "|---|---|---|" }
  for _, p in ipairs(P.PLACEHOLDERS) do
    ph[#ph + 1] = "| `" .. p[1] .. "` | `" .. p[2] .. "` | " .. p[3] .. " |"
  end
  parts.PLACEHOLDERS = table.concat(ph, "\n") .. "\n"

  parts.COMMON = "main.cf:\n\n" .. block("", P.render(P.COMMON.main, vals))
    .. "\nmaster.cf (the [failover](#when-the-proxy-fails) option, if any, goes under `prevent`):\n\n"
    .. block("", (P.COMMON.master:gsub("{{PREVENT_OPTIONS}}\n", "")):gsub("{{([%w_]+)}}",
      function(k) return tostring(vals[k]) end))
    .. "\n" .. maps_doc((function()
      local m = {}
      for k, x in pairs(P.COMMON.maps) do m[k] = P.render(x, vals) end
      return m end)())
  parts.REINJECT = "master.cf:\n\n" .. block("", P.render(P.REINJECT.master, vals))

  for _, arch in ipairs(sim.architectures) do
    local a = P.ARCH[arch]
    local out = {}
    if a.main then out[#out + 1] = "main.cf:\n\n" .. block("", P.render(a.main, vals)) end
    if a.master then out[#out + 1] = "master.cf:\n\n" .. block("", P.render(a.master, vals)) end
    if a.maps then
      local m = {}
      for k, x in pairs(a.maps) do m[k] = P.render(x, vals) end
      out[#out + 1] = maps_doc(m)
    end
    if a.reinject then
      out[#out + 1] = "Plus the [re-injection listener](#the-re-injection-listener-architectures-2-4)."
        .. "\n"
    end
    out[#out + 1] = "mailprevent:\n\n" .. block("yaml", P.render(a.proxy_yaml, vals))
    out[#out + 1] = "**How it can be bypassed.** " .. a.bypass .. "\n"
    parts["ARCH_" .. arch] = table.concat(out, "\n")
  end

  parts.FAILOVER = "**" .. P.FAILOVER.block.title .. ".** " .. P.FAILOVER.block.text .. "\n\n"
    .. "**" .. P.FAILOVER.pass.title .. ".** " .. P.FAILOVER.pass.text .. " In master.cf, "
    .. "under the prevent transport:\n\n"
    .. block("", "prevent   unix  -       -       n       -       -       smtp\n"
      .. P.render(P.FAILOVER.pass.options, vals))
  parts.FORWARD = "main.cf:\n\n" .. block("", P.render(P.FORWARD.main, vals))
    .. "\nPass through on failure (leave it out to block on failure):\n\n"
    .. block("", P.render(P.FORWARD.bypass_main, vals))
    .. "\nmailprevent:\n\n" .. block("yaml", P.render(P.FORWARD.proxy_yaml, vals))
  vals.TLS_CA, vals.PROXY_TLS_NAME = P.DOC_VALUES.TLS_CA, P.DOC_VALUES.PROXY_TLS_NAME
  parts.TLS = "Under the `prevent` transport in master.cf (Postfix checks the proxy):\n\n"
    .. block("", "prevent   unix  -       -       n       -       -       smtp\n"
      .. P.render(P.TLS.prevent_options, vals))
    .. "\nUnder the listener the proxy reflects to (here the second listener; "
    .. "the proxy checks Postfix):\n\n"
    .. block("", P.render("{{MTA_IP}}:{{RESUBMIT_PORT}} inet n -   n       -       -       smtpd\n"
      .. "  ...\n" .. P.TLS.listener_options, vals))
    .. "\nmailprevent:\n\n" .. block("yaml", P.TLS.proxy_yaml)
    .. "\nForwarding mode, in the upstream Postfix's main.cf:\n\n"
    .. block("", P.render(P.TLS.forward_main, vals))
    .. "\nand in the downstream MTA's (a Postfix in the suite):\n\n"
    .. block("", P.render(P.TLS.downstream_main, vals))
  parts.HARNESS = block("", P.render(P.HARNESS.main, vals))
  local ck = { "| Variable | Default | |", "|---|---|---|" }
  for _, e in ipairs(P.CHECK_ENV) do
    ck[#ck + 1] = "| `" .. e[1] .. "` | " .. (e[2] ~= "" and ("`" .. e[2] .. "`") or "") .. " | " .. e[3] .. " |"
  end
  ck[#ck + 1] = ""
  ck[#ck + 1] = "| Check | What is sent and expected |"
  ck[#ck + 1] = "|---|---|"
  if #P.CHECK_ITEMS == 0 then
    P.checklist_items_only = true
    P.checklist()
    P.checklist_items_only = nil
  end
  for _, it in ipairs(P.CHECK_ITEMS) do ck[#ck + 1] = "| " .. it[1] .. " | " .. it[2] .. " |" end
  parts.CHECKLIST = table.concat(ck, "\n") .. "\n"

  local tpl = assert(sim.read("scenarios/postfix/doc.md.in"))
  local text = tpl:gsub("{{@([%w_]+)}}", function(k)
    local x = parts[k]
    if x == nil then error("doc.md.in: no part {{@" .. k .. "}}") end
    return (x:gsub("\n+$", ""))
  end)
  return text
end

return P
