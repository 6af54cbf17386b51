-- Ask the downstream gateway to encrypt mail that is marked confidential.
--
-- Trigger: the word "confidential" (any letter case, as a whole word) in
-- the subject or in the text of the message.
-- Action:  add the header "X-CFilter: Encrypt"; an encryption gateway
--          after the proxy acts on it. The message is delivered.

-- Compiled once, when the file is loaded: never inside match.
local marker = dlp.keywords({ "confidential" }, { whole_word = true })

return {
  name = "Encrypt confidential mail",

  match = function(msg)
    local n = marker:count(msg.subject) + marker:count(msg:text())
    return n > 0
  end,

  actions = {
    modify = { headers = { "X-CFilter: Encrypt" } },
  },
}
