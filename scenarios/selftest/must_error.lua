-- Runner self-test: a Lua error fails the scenario with a traceback.

local function helper(v)
  return v.field                                   -- line 4
end

scenario {
  name = "a Lua error",
  run = function(t)
    helper(nil)                                    -- line 10
  end,
}

scenario {
  name = "misusing the API is an error too",
  run = function(t)
    t:sink{ nmae = "typo" }                        -- line 17
  end,
}
