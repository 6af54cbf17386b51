-- Refuse mail that carries payment card numbers.
--
-- Trigger: one or more card numbers (Luhn-valid, known issuer prefix and
--          length; plain, or grouped with spaces or dashes) in the subject,
--          the text, or a text attachment.
-- Action:  reject the message with a 550 reply. The sending MTA returns
--          it to the sender with this text.

return {
  name = "Payment card numbers",

  match = function(msg)
    local n, sample = dlp.cards(msg:text())
    n = n + dlp.cards(msg.subject)
    for _, a in ipairs(msg:attachments()) do
      if a.content_type:find("^text/") then
        local k, s = dlp.cards(a.content)
        n = n + k
        sample = sample or s
      end
    end
    -- the second value is kept as the masked sample of the incident
    return n, sample
  end,

  actions = {
    block = {
      reply = "550 5.7.1 Message refused: it contains payment card numbers. Contact dlp@example.com",
    },
  },
}
