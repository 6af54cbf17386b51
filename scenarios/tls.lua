-- TLS: STARTTLS on both sides of the proxy, certificate chains checked,
-- and what happens when a next hop's certificate cannot be trusted. See
-- docs/tls.md for the proxy's rules and certs-gen.
--
-- Every scenario makes its own test PKI with t:pki{} (bin/certs-gen). Each
-- host's certificate names its own loopback address, because that is what
-- the peers check: the sender checks the host it dialled, the proxy the
-- next hop as configured (an address here) or, in reflect mode, the MTA's
-- address, and the integrated MTA the address of each hop it delivers to.
--
--   bin/mta-sim run scenarios/tls.lua

local R = load(assert(sim.read("scenarios/lib/reflect.lua")),
  "@scenarios/lib/reflect.lua", "t", _ENV)()

local PROTO = "^TLSv1%.[23] "           -- m.tls: "TLSv1.3 TLS_AES_256_GCM_SHA384"
local PROXY_NAME = "proxy.mailprevent.test"
local DOWN_NAME = "downstream.mailprevent.test"
local MTA_NAME = "mta.mailprevent.test"

local function def(name, check, arch, run)
  scenario { name = "tls: " .. name, check = check, architecture = arch,
             tags = { "tls" }, timeout = 20, run = run }
end

-- A role's tls option from a certs-gen leaf (pki.LABEL or a bad variant).
local function serve(leaf, extra)
  local o = { cert = leaf.cert, key = leaf.key }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function send(t, to, extra)
  local spec = { to = to, from = R.SENDER, rcpt = { R.RCPT },
                 subject = R.MAIL.clean.subject, body = R.MAIL.clean.body }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return t:send(spec)
end

-- Forwarding mode: a PKI for the proxy and the downstream, a proxy with
-- STARTTLS that trusts the PKI's root, and a downstream sink. opts:
--   down_tls   the downstream's tls option (default: its good certificate)
--   down       more t:sink options for the downstream
--   proxy_tls  more keys for the proxy's tls option
local function forwarding(t, opts)
  opts = opts or {}
  local pip, dip = t:ip(), t:ip()
  local pki = t:pki{ hosts = { proxy = { PROXY_NAME, pip }, downstream = { DOWN_NAME, dip } },
                     bad = { "downstream" } }
  local down_opts = { name = "downstream", ip = dip, tls = serve(pki.downstream) }
  if opts.down_tls ~= nil then down_opts.tls = opts.down_tls(pki) end
  for k, v in pairs(opts.down or {}) do down_opts[k] = v end
  local down = t:sink(down_opts)
  local p = t:proxy{ ip = pip, next_hop = down, tls = serve(pki.proxy, { trust = pki.trust }) }
  return pki, p, down
end

-- ---- both legs over TLS ------------------------------------------------------

def("forwarding: STARTTLS in and out, both verified", "TLS: forwarding end to end",
  "forwarding", function(t)
  local pki, p, down = forwarding(t)
  local r = send(t, p, { starttls = true, tls_trust = pki.trust })
  t:eq(r.code, 250, r.text)
  t:ok(r.tls, "the upstream session ran over TLS")
  t:eq(r.tls_verify, "ok", "the sender verified the proxy's chain and address")
  t:eq(r.tls_peer, PROXY_NAME)
  local m = t:require(down:wait(1, 5))[1]
  t:match(m.tls or "plaintext", PROTO, "the downstream received it over TLS")
  t:eq(m.client_ip, p.ip, "from the proxy")
  local inb = t:require(p:wait_log("event=tls side=inbound", 5))
  t:contains(inb, "client=" .. t.client_ip .. ":")
  local out = t:require(p:wait_log("event=tls side=outbound", 5))
  t:contains(out, "hop=" .. down.addr)
  t:contains(out, "verify=ok", "the proxy verified the downstream's chain against trust_file")
  t:contains(out, "peer=" .. DOWN_NAME)
  t:require(p:wait_log("event=relayed", 5))
  t:eq(down:count(), 1, "delivered once")
end)

def("reflecting: MTA to proxy and back, both legs over TLS", "TLS: reflecting end to end",
  "listener", function(t)
  local mip, pip, dip = t:ip(), t:ip(), t:ip()
  local pki = t:pki{ hosts = { mta = { MTA_NAME, mip }, proxy = { PROXY_NAME, pip },
                               downstream = { DOWN_NAME, dip } } }
  local down = t:sink{ name = "downstream", ip = dip, tls = serve(pki.downstream) }
  local mta = t:mta{ ip = mip, downstream = down, retry = 0.05, max_retry = 0.4,
                     tls = serve(pki.mta, { outbound = "must", trust = pki.trust }) }
  local p = t:proxy{ ip = pip, reflect_to = mta, tls = serve(pki.proxy, { trust = pki.trust }) }
  mta:use_proxies{ p }

  local r = send(t, mta, { starttls = true, tls_trust = pki.trust })
  t:eq(r.code, 250, r.text)
  t:eq(r.tls_verify, "ok", "the sender verified the MTA")
  t:eq(r.tls_peer, MTA_NAME)
  local m = t:require(down:wait(1, 10))[1]
  t:require(mta:wait_idle(10))

  -- Checked where it arrived: the MTA took it twice, from the sender and
  -- back from the proxy on the resubmit listener, over TLS both times.
  local got = mta:events("received")
  t:eq(#got, 2, "received from the sender, then back from the proxy")
  for i, ev in ipairs(got) do
    t:match(ev.message.tls or "plaintext", PROTO, "arrival " .. i .. " at the MTA came over TLS")
  end
  if #got == 2 then
    t:eq(got[2].message.listener, "resubmit")
    t:eq(got[2].message.client_ip, p.ip, "the second one from the proxy")
  end
  local rcvd = m:headers("Received")
  t:eq(#rcvd, 2, "two Received fields from the MTA")
  t:contains(rcvd[1] or "", "([" .. p.ip .. "])", "the newest is the proxy's delivery")
  t:contains(rcvd[1] or "", "with ESMTPS", "the proxy used STARTTLS to the MTA")
  t:contains(rcvd[2] or "", "([" .. t.client_ip .. "])", "the older one is the sender's")
  t:contains(rcvd[2] or "", "with ESMTPS", "the sender used STARTTLS to the MTA")
  t:match(m.tls or "plaintext", PROTO, "and the MTA delivered it downstream over TLS")

  local inb = t:require(p:wait_log("event=tls side=inbound", 5))
  t:contains(inb, "client=" .. mta.ip .. ":")
  local out = t:require(p:wait_log("event=tls side=outbound", 5))
  t:contains(out, "verify=ok", "the proxy verified the MTA's certificate for its address")
  t:contains(out, "peer=" .. MTA_NAME)
  t:eq(mta:count("delivered", "downstream"), 1, "delivered once")
end)

def("upstream without STARTTLS gives a plain downstream", "TLS: outbound follows inbound",
  "forwarding", function(t)
  local pki, p, down = forwarding(t)
  local plain = send(t, p)
  t:eq(plain.code, 250, plain.text)
  t:eq(plain.tls, false)
  local m = t:require(down:wait(1, 5))[1]
  t:eq(m.tls, nil, "the downstream got it in clear, though it offers STARTTLS")
  t:require(p:wait_log("event=relayed", 5))
  t:eq(p:log_count("event=tls "), 0, "no TLS on either side")
  -- and the same proxy follows a session that does use STARTTLS
  local r = send(t, p, { starttls = true, tls_trust = pki.trust })
  t:eq(r.code, 250, r.text)
  local msgs = t:require(down:wait(2, 5))
  t:match(msgs[2].tls or "plaintext", PROTO, "the next message, over TLS upstream, went over TLS")
end)

-- ---- next hops that cannot be trusted -------------------------------------------

-- What the downstream does wrong, and the reason the proxy logs for it.
local BAD_HOPS = {
  { what = "an untrusted CA", tls = function(k) return serve(k.downstream.untrusted) end,
    reason = "unable to get local issuer certificate" },
  { what = "an expired certificate", tls = function(k) return serve(k.downstream.expired) end,
    reason = "certificate has expired" },
  { what = "a certificate for another name", tls = function(k) return serve(k.downstream.wronghost) end,
    reason = "IP address mismatch" },
  { what = "a self-signed certificate", tls = function(k) return serve(k.downstream.selfsigned) end,
    reason = "self-signed certificate" },
  -- a certificate, but STARTTLS is not advertised: what a downgrade
  -- attacker who strips the capability from the EHLO reply leaves
  { what = "no STARTTLS offered", tls = function(k) return serve(k.downstream) end,
    down = { no_ext = { "STARTTLS" } }, reason = "does not offer STARTTLS" },
  { what = "STARTTLS refused", tls = function(k) return serve(k.downstream) end,
    down = { rules = { "starttls=reply:454 4.7.0 TLS not available" } },
    reason = "STARTTLS refused with 454" },
}

for _, bad in ipairs(BAD_HOPS) do
  def("next hop with " .. bad.what .. " gets nothing, the upstream 454",
    "TLS: next hop verification", "forwarding", function(t)
    local pki, p, down = forwarding(t, { down_tls = bad.tls, down = bad.down })
    local r = send(t, p, { starttls = true, tls_trust = pki.trust })
    t:eq(r.code, 454, "a temporary failure, so the upstream keeps the message: " .. tostring(r.text))
    t:contains(r.text or "", "4.7.0")
    t:ok(r.tls, "the upstream leg itself was TLS")
    local failed = t:require(p:wait_log("event=nexthop-failed", 5))
    t:contains(failed, "hop=" .. down.addr)
    t:contains(failed, bad.reason)
    t:require(p:wait_log("event=nexthop-none reason=tls", 5))
    t:ok(down:sessions() >= 1, "the proxy did reach the next hop")
    t:eq(down:count(), 0, "and gave it nothing")
    t:eq(p:log_count("event=relayed"), 0)
  end)
end

def("the integrated MTA retries after 454 and delivers once the hop is trusted",
  "TLS: next hop verification: upstream retries", "forwarding", function(t)
  local pip, dip = t:ip(), t:ip()
  local pki = t:pki{ hosts = { proxy = { PROXY_NAME, pip }, downstream = { DOWN_NAME, dip } },
                     bad = { "downstream" },
                     -- what the operator adds once the next hop's CA is known
                     bundles = { ["with-hop-ca"] = { "trust.pem", "downstream-untrusted-root.crt" } } }
  local down = t:sink{ name = "downstream", ip = dip, tls = serve(pki.downstream.untrusted) }
  local p = t:proxy{ ip = pip, next_hop = down, tls = serve(pki.proxy, { trust = pki.trust }) }
  local mta = t:mta{ architecture = "listener", proxies = { p }, retry = 0.05, max_retry = 0.2,
                     tls = { outbound = "must", trust = pki.trust } }
  local r = send(t, mta)
  t:eq(r.code, 250, "the MTA queued it")
  local ev = t:require(mta:wait_event{ type = "deferred", count = 2, timeout = 10 })
  t:eq(ev[1].route, "proxy")
  t:eq(ev[1].code, 454, tostring(ev[1].text))
  t:eq(ev[2].attempt, 2, "and retried")
  t:eq(mta:queued(), 1, "the queue holds it")
  t:eq(down:count(), 0, "nothing reached the untrusted hop")
  t:eq(mta:count("bounced"), 0, "not bounced")

  local ok, line = p:reload{ tls = { trust = pki.bundles["with-hop-ca"] } }
  t:require(ok, "reload: " .. tostring(line))
  local m = t:require(down:wait(1, 10))[1]
  t:require(mta:wait_idle(10))
  t:match(m.tls or "plaintext", PROTO, "delivered over TLS")
  t:eq(mta:count("delivered", "proxy"), 1)
  t:eq(down:count(), 1, "delivered once")
end)

-- A bad first hop, a good second one: the message goes to the second.
for _, bad in ipairs({ BAD_HOPS[2], BAD_HOPS[5] }) do
  def("a good second next hop is used when the first has " .. bad.what,
    "TLS: next hop failover", "forwarding", function(t)
    local pip, dip, sip = t:ip(), t:ip(), t:ip()
    local pki = t:pki{ hosts = { proxy = { PROXY_NAME, pip }, downstream = { DOWN_NAME, dip },
                                 second = { "second.mailprevent.test", sip } },
                       bad = { "downstream" } }
    local first_opts = { name = "downstream", ip = dip, tls = bad.tls(pki) }
    for k, v in pairs(bad.down or {}) do first_opts[k] = v end
    local first = t:sink(first_opts)
    local second = t:sink{ name = "second", ip = sip, tls = serve(pki.second) }
    local p = t:proxy{ ip = pip, next_hop = { first, second },
                       tls = serve(pki.proxy, { trust = pki.trust }) }
    local r = send(t, p, { starttls = true, tls_trust = pki.trust })
    t:eq(r.code, 250, r.text)
    local m = t:require(second:wait(1, 5))[1]
    t:match(m.tls or "plaintext", PROTO, "the second hop got it over TLS")
    local failed = t:require(p:wait_log("event=nexthop-failed", 5))
    t:contains(failed, "hop=" .. first.addr)
    t:contains(failed, bad.reason)
    local out = t:require(p:wait_log("event=tls side=outbound", 5))
    t:contains(out, "hop=" .. second.addr)
    t:contains(out, "verify=ok")
    t:require(p:wait_log("event=relayed", 5))
    t:eq(first:count(), 0, "the first got nothing")
    t:eq(second:count(), 1, "the second got it once")
  end)
end

-- ---- the bypass route: the MTA itself must trust the downstream --------------

-- Chapter 3 of the guide: in forwarding mode the MTA normally talks TLS to
-- the proxy only, so trusting the proxy's certificate is enough while the
-- proxy is up. When it is down, the MTA bypasses it and talks TLS to the
-- downstream directly, so it must trust the downstream's certificate as
-- well. Here the downstream (a hosted service) has a CA of its own; the
-- corporate PKI signed the proxy. The MTA trusts either the corporate root
-- only, or the bundle of both that the guide's step 4 builds.
local function bypass_chain(t, trust_both)
  local pip, dip = t:ip(), t:ip()
  local hosted = t:pki{ name = "hosted", hosts = { downstream = { DOWN_NAME, dip } } }
  local corp = t:pki{ name = "corp", hosts = { proxy = { PROXY_NAME, pip } },
                      -- certs-gen bundle --out upstream-trust.pem trust.pem <hosted CA>
                      bundles = { ["upstream-trust"] = { "trust.pem", hosted.trust } } }
  local down = t:sink{ name = "downstream", ip = dip, tls = serve(hosted.downstream) }
  local p = t:proxy{ ip = pip, next_hop = down, tls = serve(corp.proxy, { trust = hosted.trust }) }
  local mta = t:mta{ architecture = "listener", proxies = { p }, bypass = down,
                     retry = 0.05, max_retry = 0.2,
                     tls = { outbound = "must",
                             trust = trust_both and corp.bundles["upstream-trust"] or corp.trust } }
  -- while the proxy is up, the MTA only needs to trust the proxy
  local r = send(t, mta, { subject = "through the proxy" })
  t:eq(r.code, 250, r.text)
  local m = t:require(down:wait(1, 10))[1]
  t:eq(m.client_ip, p.ip, "the first message came through the proxy")
  t:match(m.tls or "plaintext", PROTO, "over TLS")
  t:require(mta:wait_idle(5))
  t:eq(mta:count("delivered", "proxy"), 1)
  t:eq(p:stop(), 0, "the proxy stopped cleanly")
  return mta, down, p
end

def("bypass: an MTA that trusts the downstream's CA delivers over TLS while the proxy is down",
  "TLS: bypass trusts the downstream", "forwarding", function(t)
  local mta, down = bypass_chain(t, true)
  local r = send(t, mta, { subject = "bypassing the proxy" })
  t:eq(r.code, 250, r.text)
  local msgs = t:require(down:wait(2, 10))
  t:require(mta:wait_idle(5))
  t:eq(msgs[2].client_ip, mta.ip, "the second message came from the MTA itself")
  t:match(msgs[2].tls or "plaintext", PROTO, "over TLS")
  t:eq(mta:count("delivered", "bypass"), 1, "by the bypass route")
  t:eq(down:count(), 2)
end)

def("bypass: an MTA that trusts only the proxy defers instead of bypassing in clear",
  "TLS: bypass trusts the downstream", "forwarding", function(t)
  local mta, down = bypass_chain(t, false)
  local r = send(t, mta, { subject = "bypassing the proxy" })
  t:eq(r.code, 250, "the MTA queued it")
  local ev = t:require(mta:wait_event{ type = "deferred", route = "bypass", count = 2, timeout = 10 })
  t:contains(ev[1].text or "", "certificate verification failed")
  t:eq(mta:queued(), 1, "the queue holds it for a later try")
  t:eq(mta:count("delivered", "bypass"), 0)
  t:eq(mta:count("bounced"), 0)
  t:eq(down:count(), 1, "only the message that went through the proxy arrived")
end)

-- ---- the proxy's own inbound rules ------------------------------------------------

def("plaintext injected after STARTTLS is thrown away on both sides",
  "TLS: STARTTLS injection", "forwarding", function(t)
  local pki, p, down = forwarding(t, {
    -- the next hop writes a fake reply in clear right after its 220
    down_tls = function(k) return serve(k.downstream, { inject = "250 injected\\r\\n" }) end })
  -- the sender pipelines "STARTTLS\r\nEHLO injected\r\n", then sends MAIL
  -- before any EHLO over TLS: a proxy that reset the session answers 503
  local r = send(t, p, { starttls_inject = true, tls_trust = pki.trust })
  t:eq(r.error, nil, "the proxy answered nothing of the injected plaintext")
  t:eq(r.code, 250, r.text)
  local m = t:require(down:wait(1, 5))[1]
  t:match(m.tls or "plaintext", PROTO)
  local inb = t:require(p:wait_log("event=tls-discard client=", 5))
  t:contains(inb, "bytes=" .. #"EHLO injected\r\n", "the proxy dropped the client's pipelined EHLO")
  local out = t:require(p:wait_log("event=tls-discard hop=" .. down.addr, 5))
  t:contains(out, "bytes=" .. #"250 injected\r\n", "and what the next hop wrote after its 220")
end)

def("required_inbound: MAIL before STARTTLS gets 530", "TLS: required inbound",
  "forwarding", function(t)
  local pip, dip = t:ip(), t:ip()
  local pki = t:pki{ hosts = { proxy = { PROXY_NAME, pip }, downstream = { DOWN_NAME, dip } } }
  local down = t:sink{ name = "downstream", ip = dip, tls = serve(pki.downstream) }
  local p = t:proxy{ ip = pip, next_hop = down,
                     tls = serve(pki.proxy, { trust = pki.trust, required_inbound = true }) }
  local plain = send(t, p)
  t:eq(plain.code, 530, tostring(plain.text))
  t:contains(plain.text or "", "5.7.0")
  local r = send(t, p, { starttls = true, tls_trust = pki.trust })
  t:eq(r.code, 250, r.text)
  t:require(down:wait(1, 5))
  t:eq(down:count(), 1, "only the message sent over TLS")
end)

def("a proxy key protected by a passphrase file", "TLS: key passphrase",
  "forwarding", function(t)
  local pip, dip = t:ip(), t:ip()
  -- the proxy's PKI has encrypted keys; the sink needs a plain one
  local corp = t:pki{ name = "corp", hosts = { proxy = { PROXY_NAME, pip } },
                      passphrase = "correct horse battery staple" }
  local hosted = t:pki{ name = "hosted", hosts = { downstream = { DOWN_NAME, dip } } }
  t:contains(sim.read(corp.proxy.key) or "", "BEGIN ENCRYPTED PRIVATE KEY")
  local down = t:sink{ name = "downstream", ip = dip, tls = serve(hosted.downstream) }
  local p = t:proxy{ ip = pip, next_hop = down,
                     tls = serve(corp.proxy, { trust = hosted.trust,
                                               passphrase_file = corp.passphrase_file }) }
  local r = send(t, p, { starttls = true, tls_trust = corp.trust })
  t:eq(r.code, 250, r.text)
  t:eq(r.tls_verify, "ok")
  local m = t:require(down:wait(1, 5))[1]
  t:match(m.tls or "plaintext", PROTO)
end)
