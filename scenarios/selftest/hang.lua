-- Runner self-test: interrupting the runner. The first scenario starts a
-- proxy, says "ready" (on stderr with --verbose) and waits; the test then
-- sends SIGINT and checks that everything was torn down. The second one
-- must never run.

scenario {
  name = "waits until interrupted",
  run = function(t)
    local down = t:sink{}
    t:proxy{ next_hop = down }
    t:note("ready")
    t:wait_until(function() return false end, 600, "an interruption")
  end,
}

scenario {
  name = "never runs",
  run = function(t)
    t:fail("ran after the interruption")
  end,
}
