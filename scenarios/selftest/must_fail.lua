-- Runner self-test: failures are reported and the run exits 1.
-- tests/e2e/runner_test.c checks the exact report, including line numbers:
-- keep the lines of the failing calls where they are.

scenario {
  name = "failed assertions are recorded and run() goes on",
  check = "Runner: failing assertions",
  run = function(t)
    t:eq(1, 2, "one is two")                       -- line 9
    t:ok(false, "false is true")                   -- line 10
    t:contains("abc", "x")                         -- line 11
    t:note("still running after three failures")
  end,
}

scenario {
  name = "t:require stops the scenario",
  run = function(t)
    t:require(nil, "needed a value")               -- line 19
    t:fail("NOT REACHED")
  end,
}

scenario {
  name = "a failure does not stop the run",
  run = function(t)
    t:ok(true)
  end,
}
