-- docs/integration/postfix.md is generated from scenarios/postfix/doc.md.in
-- and the fragments in scenarios/lib/postfix.lua, the ones the Postfix
-- suites run. This scenario fails while the page differs from them.
--
-- `make postfix-doc` writes the page: with MP_POSTFIX_DOC=1 this file
-- prints it to stderr while it loads (`mta-sim run --list`), as one note.

local P = assert(load(assert(sim.read("scenarios/lib/postfix.lua")),
  "@scenarios/lib/postfix.lua", "t", _ENV))()

local page = P.doc()
local PATH = "docs/integration/postfix.md"

if sim.env("MP_POSTFIX_DOC") then
  print((page:gsub("\n$", "")))
end

scenario {
  name = "postfix: " .. PATH .. " is generated from the tested fragments",
  check = "Docs match the tested configuration",
  tags = { "postfix", "docs" },
  run = function(t)
    local have = sim.read(PATH)
    t:require(have, PATH .. " is missing: run `make postfix-doc`")
    if have == page then return end
    -- the first line that differs, to say where
    local n, a, b = 0, nil, nil
    local hl, pl = {}, {}
    for l in (have .. "\n"):gmatch("(.-)\n") do hl[#hl + 1] = l end
    for l in (page .. "\n"):gmatch("(.-)\n") do pl[#pl + 1] = l end
    for i = 1, math.max(#hl, #pl) do
      if hl[i] ~= pl[i] then n, a, b = i, hl[i], pl[i]; break end
    end
    t:fail(PATH .. " is stale (line " .. n .. ": has " .. sim.repr(a) .. ", the fragments make "
      .. sim.repr(b) .. "): run `make postfix-doc`")
  end,
}
