-- rotator setup: the embedded IAM policy equals README.md's iam-policy block (the installed
-- binary has no README), attribute comparison by meaning, the queue policy's shape.
local T = require "engine.testing"
local json = require "json"
local host = require "host"
local setup = require "cmd.setup"

local function readme_policy()
  local text = assert(host.read_file("README.md"))
  local section = assert(text:match("<!%-%- iam%-policy:begin %-%->(.-)<!%-%- iam%-policy:end %-%->"), "iam-policy section")
  return assert(section:match("```json[ \t]*\n(.-)\n[ \t]*```"), "json block")
end

return {
  embedded_policy_equals_readme_block = function()
    local readme = readme_policy()
    T.eq(json.decode(setup.IAM_POLICY), json.decode(readme), "setup.lua's IAM_POLICY drifted from README.md")
    T.eq(setup.IAM_POLICY:gsub("%s+$", ""), readme:gsub("%s+$", ""), "same text")
  end,

  diff_compares_json_by_meaning = function()
    local want = { RedrivePolicy = json.encode({ deadLetterTargetArn = "arn:q", maxReceiveCount = "5" }) }
    T.eq(setup.diff({ RedrivePolicy = '{"maxReceiveCount":"5","deadLetterTargetArn":"arn:q"}' }, want), nil)
    T.eq(setup.diff({}, want), want)
    T.eq(setup.diff({ RedrivePolicy = '{"maxReceiveCount":"3","deadLetterTargetArn":"arn:q"}' }, want), want)
  end,

  queue_policy_allows_only_the_topic = function()
    local p = json.decode(setup.queue_policy("arn:aws:sqs:us-east-1:1:q", "arn:aws:sns:us-east-1:1:t"))
    local s = p.Statement[1]
    T.eq({ s.Effect, s.Action, s.Resource, s.Principal.Service, s.Condition.ArnEquals["aws:SourceArn"] },
      { "Allow", "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q", "sns.amazonaws.com", "arn:aws:sns:us-east-1:1:t" })
  end,
}
