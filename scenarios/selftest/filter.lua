-- Runner self-test: --filter. Names chosen so that plain substrings and
-- Lua patterns select different scenarios.

scenario { name = "alpha-one", run = function(t) t:ok(true) end }
scenario { name = "beta.two", run = function(t) t:ok(true) end }
scenario { name = "gamma three", run = function(t) t:ok(true) end }
