-- Mark mail that talks about projects still under wraps.
--
-- Trigger: two or more mentions of the code names below (any letter
--          case; whole words; a run of spaces or a line break matches the
--          space inside a phrase).
-- Action:  prefix the subject with "[RESTRICTED] " and add a header that
--          mail clients can show. Change `modify` to `block` to refuse
--          such mail instead.

local codenames = dlp.keywords({
  "project nightingale",
  "bluebird merger",
  "operation lantern",
}, { whole_word = true })

return {
  name = "Restricted project code names",

  match = function(msg)
    return codenames:count(msg:text())
  end,

  -- a single passing mention is tolerated
  threshold = 2,

  actions = {
    modify = {
      subject = { prepend = "[RESTRICTED] " },
      headers = { "X-Restricted: code name mentioned" },
    },
  },
}
