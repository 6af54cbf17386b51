-- Runner self-test with a real bin/mailprevent ($MP_BINDIR, default bin).
-- Everything here must pass.

scenario {
  name = "forward mode: a message reaches the sink through the proxy",
  check = "Runner: proxy in forward mode",
  run = function(t)
    local down = t:sink{ name = "downstream" }
    local p = t:proxy{ mode = "forward", next_hop = { down } }
    t:match(p.addr, "^127%.[%d.]+:%d+$", "listening on its own address")
    t:ok(p.port > 0, "port 0 became a real port")
    t:ok(p.pid ~= nil and p:running())
    local r = t:send{ to = p, from = "alice@corp.example", rcpt = "bob@example.net",
      subject = "through the proxy" }
    t:eq(r.code, 250, r.text)
    local msgs = t:require(down:wait(1, 10))
    t:eq(#msgs, 1, "delivered once")
    local m = msgs[1]
    t:eq(m.subject, "through the proxy")
    t:eq(m:header("X-Filter-Loop"), "Reflected", "the pass header marks it")
    t:eq(m.client_ip, p.ip, "sent from the proxy's source_address")
    t:eq(m.helo, p.helo_name)
    t:ok(p:wait_log("event=relayed", 5))
    t:eq(p:log_count("event=relayed"), 1)
    t:eq(p:incidents(), {}, "no policy, no incident")
  end,
}

scenario {
  name = "a policy blocks, and the incident is recorded",
  run = function(t)
    local down = t:sink{}
    local p = t:proxy{ next_hop = down, policy_source = { [[
      return {
        name = "selftest block",
        match = function(msg) return (msg.subject or ""):find("SECRET") ~= nil end,
        actions = { block = { reply = "550 5.7.1 selftest says no" } },
      }
    ]] } }
    local r = t:send{ to = p, rcpt = "bob@example.net", subject = "SECRET plans" }
    t:eq(r.code, 550)
    t:contains(r.text, "selftest says no")
    local inc = t:require(p:wait_incidents(1, 5))
    t:eq(inc[1].action, "block")
    t:eq(down:count(), 0, "nothing delivered")
    r = t:send{ to = p, rcpt = "bob@example.net", subject = "harmless" }
    t:eq(r.code, 250)
  end,
}

scenario {
  name = "stop, start on the same address, reload, kill",
  run = function(t)
    local down = t:sink{}
    local p = t:proxy{ next_hop = down }
    local addr = p.addr
    t:eq(p:stop(), 0, "SIGTERM: clean exit")
    t:eq(p.state, "stopped")
    p:start()
    t:eq(p.addr, addr, "same address after a restart")
    local ok, line = p:reload{ pass_header = "X-Selftest: reloaded" }
    t:ok(ok, line)
    t:eq(p.pass_header, "X-Selftest: reloaded")
    t:eq(t:send{ to = p, rcpt = "a@example.net" }.code, 250)
    t:eq(t:require(down:wait(1, 5))[1]:header("X-Selftest"), "reloaded")
    ok, line = p:reload{ extra = { limits = { max_errors = 0 } } }
    t:eq(ok, false, "a bad configuration is refused")
    t:contains(line, "status=refused")
    t:eq(p:kill(), 128 + 9, "killed")
  end,
}

scenario {
  name = "reflect mode: back to the MTA's resubmit listener",
  architecture = "listener",
  run = function(t)
    local down = t:sink{ name = "downstream" }
    local mta = t:mta{ downstream = down }
    local p = t:proxy{ reflect_to = mta }
    t:eq(p.mode, "reflect")
    mta:use_proxies{ p }
    t:eq(t:send{ to = mta, rcpt = "bob@example.net" }.code, 250)
    t:require(down:wait(1, 10))
    t:require(mta:wait_idle(10))
    t:eq(mta:count("delivered", "proxy"), 1, "inspected once")
    t:eq(mta:count("delivered", "downstream"), 1, "delivered once")
    t:eq(down:message(1).listener, "main")
    t:eq(p:log_count("event=relayed"), 1)
  end,
}

scenario {
  name = "client_ip: the MTA learns the proxy's address from use_proxies",
  architecture = "client_ip",
  run = function(t)
    local down = t:sink{ name = "downstream" }
    local mta = t:mta{ downstream = down }
    local p = t:proxy{ reflect_to = mta }
    mta:use_proxies{ p }
    t:eq(t:send{ to = mta, rcpt = "bob@example.net" }.code, 250)
    t:require(down:wait(1, 10))
    t:require(mta:wait_idle(10))
    t:eq(mta:count("delivered", "proxy"), 1, "inspected once, no loop")
    t:eq(mta:count("delivered", "downstream"), 1, "delivered once")
    t:eq(#mta:events("received"), 2, "from the sender, then back from the proxy")
    t:eq(mta:events("received")[2].message.client_ip, p.ip)
  end,
}
