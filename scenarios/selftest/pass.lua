-- Runner self-test: everything here must pass (mta-sim run exits 0).
-- Driven by tests/e2e/runner_test.c. No proxy is started.

scenario {
  name = "assertions that hold",
  check = "Runner: assertions",
  tags = { "selftest" },
  run = function(t)
    t:ok(true, "true")
    t:eq(1 + 1, 2, "numbers")
    t:eq("abc", "abc", "strings")
    t:eq({ "a", { b = 1 } }, { "a", { b = 1 } }, "tables compare by content")
    t:ne({ 1 }, { 2 }, "different tables")
    t:contains("hello world", "o w")
    t:contains({ "x", "yz" }, "yz", "a list holds an element")
    t:eq(t:match("code=250 ok", "code=(%d+)"), "250")
    t:eq(t:require(42, "a value"), 42, "require passes its value on")
    t:ok(t:elapsed() >= 0)
    print("print goes to the notes", 1, true)
    t:note("a note")
  end,
}

scenario {
  name = "addresses are loopback and distinct",
  run = function(t)
    local a, b = t:ip(), t:ip()
    t:match(a, "^127%.%d+%.%d+%.%d+$", "an IPv4 loopback address")
    t:ne(a, b)
    t:ne(t.client_ip, a, "the sender's address is its own")
    t:eq(t.client_ip, t.client_ip, "and stays the same")
    t:eq(t.name, "addresses are loopback and distinct")
    t:ok(#t.dir > 0, "a temp directory")
  end,
}

scenario {
  name = "the sim library",
  run = function(t)
    local m = sim.message{ from = "a@x.example", to = "b@y.example",
      subject = "Subj", body = "Body text", headers = { "X-One: 1" } }
    t:contains(m, "Subject: Subj\r\n")
    t:contains(m, "X-One: 1\r\n")
    t:contains(m, "Body text")
    t:match(m, "\r\nMessage%-ID: <[^>]+>\r\n")
    local v = t:require(sim.json_decode('{"a": [1, 2.5, "\\u00e9"], "b": {"c": true}, "n": null}'))
    t:eq(v, { a = { 1, 2.5, "\u{e9}" }, b = { c = true } })
    local bad, err = sim.json_decode("{")
    t:eq(bad, nil)
    t:contains(err, "json")
    t:eq(sim.addr("127.0.0.1:25"), "127.0.0.1:25")
    t:eq(sim.architectures, { "listener", "client_ip", "helo", "header" })
    t:eq(sim.repr({ 1, "x" }), '{1, "x"}')
    local none, rerr = sim.read("/nonexistent/file")
    t:eq(none, nil)
    t:ok(rerr ~= nil)
    t:eq(io, nil, "no io library")
    t:eq(require, nil, "no require")
  end,
}

scenario {
  name = "wait_until returns what the condition returned",
  run = function(t)
    local n = 0
    local v, w = t:wait_until(function() n = n + 1; return n >= 1 and "done", n end, 5)
    t:eq(v, "done")
    t:eq(w, 1, "checked at once, before any event")
    local none, err = t:wait_until(function() return false end, 0.05, "nothing")
    t:eq(none, nil)
    t:eq(err, "timeout: nothing")
  end,
}

scenario {
  name = "a sink records what t:send sent",
  run = function(t)
    local s = t:sink{ name = "downstream", rules = { "rcpt:nobody@y.example=reply:550 5.1.1 no such user" } }
    local r = t:send{ to = s, from = "alice@x.example", rcpt = { "bob@y.example", "nobody@y.example" },
      subject = "hello", body = "hi", headers = { ["X-Map"] = "m" },
      attachments = { { filename = "a.txt", content_type = "text/plain", data = "attached" } } }
    t:eq(r.code, 250, "accepted")
    t:ok(r.ok)
    t:eq(r.rcpt, { 250, 550 }, "one recipient refused")
    local msgs = t:require(s:wait(1, 5))
    t:eq(#msgs, 1)
    local m = msgs[1]
    t:eq(m.from, "alice@x.example")
    t:eq(m.rcpts, { "bob@y.example" })
    t:eq(m.client_ip, t.client_ip, "client address is the scenario's")
    t:eq(m.helo, "client.sim.test")
    t:eq(m.subject, "hello")
    t:eq(m:header("x-map"), "m", "header names ignore case")
    t:eq(m:headers("X-Map"), { "m" })
    t:eq(m:header("X-Absent"), nil)
    t:contains(m.content, "filename")
    t:eq(m.size, #m.content)
    t:eq(s:count(), 1)
    t:eq(s:sessions(), 1)
    t:eq(s:message(1).id, m.id)
    t:eq(s:message(2), nil)
    local ok, err = pcall(function() return m.no_such_field end)
    t:eq(ok, false, "unknown message field raises")
    t:contains(err, "no_such_field")
  end,
}

scenario {
  name = "t:send_all runs sessions side by side",
  run = function(t)
    local s = t:sink{}
    local rs = t:send_all{
      { to = s, rcpt = "a@y.example", subject = "one" },
      { to = s, rcpt = "b@y.example", subject = "two" },
      { to = s.addr, rcpt = "c@y.example", content = "Subject: raw\r\n\r\nbody\r\n" },
    }
    t:eq(#rs, 3)
    for i, r in ipairs(rs) do t:eq(r.code, 250, "session " .. i) end
    t:eq(#t:require(s:wait(3, 5)), 3)
    local none, err = s:wait(4, 0.05)
    t:eq(none, nil)
    t:contains(err, "3 of 4")
  end,
}

scenario {
  name = "a refused session reports its code",
  run = function(t)
    local s = t:sink{ greeting = "554 5.3.2 go away" }
    local r = t:send{ to = s, rcpt = "a@y.example" }
    t:eq(r.code, 554)
    t:eq(r.ok, false)
    t:eq(r.greeting, 554)
    local port = t:ip() .. ":9"   -- nothing listens there
    r = t:send{ to = port, rcpt = "a@y.example", timeout = 5 }
    t:eq(r.code, 0)
    t:ok(r.error ~= nil, "a transport error")
  end,
}

scenario {
  name = "t:external stands for a host the scenario did not start",
  run = function(t)
    local s = t:sink{}
    local ext = t:external{ host = s.ip, port = s.port, name = "staging" }
    t:eq(ext.addr, s.addr)
    t:eq(t:send{ to = ext, rcpt = "a@y.example" }.code, 250)
    t:eq(t:external{ addr = "192.0.2.1:25" }.host, "192.0.2.1")
  end,
}

scenario {
  name = "escapes <&> and \"quotes\" in names",
  run = function(t) t:ok(true) end,
}

scenario {
  name = "skipped when there is nothing to test",
  run = function(t)
    t:skip("no staging host configured")
    t:fail("not reached")
  end,
}
