-- Ask the downstream MTA to quarantine mail that carries programs.
--
-- Trigger: an attachment whose file name ends in an extension that runs
--          code on Windows (.exe, .scr, .bat, .cmd, .js, .vbs, .ps1, .msi).
-- Action:  add "X-CFilter: Quarantine" and tag the subject, so that the
--          MTA holds the message for an administrator.

local risky = { exe = true, scr = true, bat = true, cmd = true,
                js = true, vbs = true, ps1 = true, msi = true }

return {
  name = "Quarantine executable attachments",

  match = function(msg)
    local found = 0
    for _, a in ipairs(msg:attachments()) do
      local ext = a.filename and a.filename:match("%.([%w]+)$")
      if ext and risky[ext:lower()] then
        found = found + 1
      end
    end
    return found
  end,

  actions = {
    modify = {
      subject = { prepend = "[QUARANTINE] " },
      headers = { "X-CFilter: Quarantine" },
    },
  },
}
