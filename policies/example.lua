-- An example policy. Copy it, edit it, then `rotator check` and `kill -HUP` the daemon.
-- Each rule: the first whose source_pattern matches the backed-up table's NAME wins.
rule {
  name = "staging",
  source_pattern = "(?i)-production$", -- PCRE2, matched against the table name
  replacement = "-staging",             -- Go ReplaceAllString template: $0, $1, ${name}
  ssm_parameter = "/staging/database-arn",
}
