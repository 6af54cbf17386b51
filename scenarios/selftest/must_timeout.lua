-- Runner self-test: the per-scenario timeout. Each scenario here must fail
-- within about a second, whatever its waits ask for.

scenario {
  name = "a wait longer than the scenario",
  timeout = 1,
  run = function(t)
    t:wait_until(function() return false end, 600, "something that never happens")
  end,
}

scenario {
  name = "a Lua loop that never waits",
  timeout = 1,
  run = function(t)
    local n = 0
    while true do n = n + 1 end
  end,
}

scenario {
  name = "a long scenario cut short by --timeout",
  timeout = 600,
  run = function(t)
    local s = t:sink{ rules = { "dot=hang" } }
    t:send{ to = s, rcpt = "a@y.example", timeout = 600 }
  end,
}
