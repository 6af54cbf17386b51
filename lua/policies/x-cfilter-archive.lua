-- Ask the downstream archive to keep a copy of mail about contracts.
--
-- Trigger: a contract reference such as "CTR-2026-00417" (CTR, a year,
--          five digits) in the subject or the text.
-- Action:  add "X-CFilter: Archive". Nothing else changes.

local contract = dlp.regex([[\bCTR-(19|20)\d\d-\d{5}\b]], { caseless = true })

return {
  name = "Archive contract mail",

  match = function(msg)
    local n, sample = contract:count(msg:text())
    local m = contract:count(msg.subject)
    return n + m, sample
  end,

  actions = {
    modify = { headers = { "X-CFilter: Archive" } },
  },
}
