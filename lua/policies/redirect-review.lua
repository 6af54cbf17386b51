-- Send mail with bank account numbers to a reviewer instead of its
-- recipients.
--
-- Trigger: an IBAN (valid length for its country and valid checksum) in
--          the text of the message.
-- Action:  deliver the message to dlp-review@example.com only. The
--          reviewer decides whether to release it. (Add that address as a
--          sender exception on the MTA, so released mail is not caught
--          again.)

return {
  name = "Bank details for review",

  match = function(msg)
    return dlp.iban(msg:text())
  end,

  actions = {
    redirect = "dlp-review@example.com",
  },
}
