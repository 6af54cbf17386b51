-- Tell the sender (and the security team) when mail carries US Social
-- Security numbers. The message itself is delivered: this policy only
-- reports.
--
-- Trigger: a US SSN written ddd-dd-dddd or ddd dd dddd in the text.
-- Action:  a notification to the envelope sender and to
--          security@example.com; an incident is recorded.

return {
  name = "Social Security numbers",

  match = function(msg)
    return dlp.ssn(msg:text())
  end,

  actions = {
    notify = {
      to = { "security@example.com" },
      sender = true,
      subject = "Your message matched the policy: {policy}",
      body = "Your message to {recipients} contains what looks like a\n" ..
             "US Social Security number ({sample}).\n" ..
             "It was delivered, and the security team was told.\n" ..
             "Please do not send such numbers by mail.\n",
    },
  },
}
