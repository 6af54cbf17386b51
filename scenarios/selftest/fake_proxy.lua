-- Runner self-test for a proxy that misbehaves. Run with MP_BINDIR set to
-- the directory of the fake mailprevent that tests/e2e/runner_test.c
-- writes: it logs event=listening, then exits 4 on SIGHUP and 3 on
-- SIGTERM. Both scenarios must fail.

scenario {
  name = "a proxy that dies unexpectedly fails the scenario",
  run = function(t)
    local p = t:proxy{ next_hop = "127.0.0.1:9" }
    p:signal("HUP")          -- not an expected exit, unlike p:stop()
    t:wait_until(function() return not p:running() end, 10, "the proxy to exit")
  end,
}

scenario {
  name = "a proxy failing at teardown fails the scenario",
  run = function(t)
    t:proxy{ next_hop = "127.0.0.1:9" }
    t:ok(true)
  end,
}
