-- An example policy. Copy it, edit it, then `rotator check` and `kill -HUP` the daemon.
-- Each rule: the first whose source_pattern matches the backed-up table's NAME wins.
-- Try a change without AWS: rotator replay --dry-run notification.json
rule {
  name = "staging",
  source_pattern = "(?i)-production$", -- PCRE2, matched against the table name
  replacement = "-staging",             -- Go ReplaceAllString template: $0, $1, ${name}
  -- The restored table's ARN goes here (PutParameter, Overwrite, Type=String). The
  -- parameter never goes backwards: a copy of an older backup does not replace a newer one.
  ssm_parameter = "/rotator/staging/table-arn",
  -- AWS Backup-managed recovery points (arn:aws:backup:...:recovery-point:...) restore
  -- through backup:StartRestoreJob with this role.
  iam_role_arn = "arn:aws:iam::123456789012:role/rotator-backup-restore",
  -- copy_source_tags = true,  -- the source's tags onto the copy (StartRestoreJob only)

  -- Optional hooks (see scripts/policy/rules.lua for the full list):
  -- restore = { BillingModeOverride = "PAY_PER_REQUEST" },  -- DynamoDB backups only; a
  --   recovery point takes only SSESpecificationOverride (StartRestoreJob's encryption)
  -- target_name = function(ctx) return ctx.table_name:lower() .. "-copy" .. ctx.suffix end,
  -- after_active = function(ctx) --[[ ctx.table_arn, ctx.call(service, action, params) ]] end,
  -- wait_for_active = false,  -- with no ssm_parameter: stop after starting the restore

  -- Beyond restore (README "Beyond restore"):
  -- retention = { keep = 2, max_age = "7d" },        -- delete older Rotator-made copies
  -- copy_ttl = true,                                  -- TTL from the source table
  -- pitr = true,                                     -- point-in-time recovery on the copy
  -- carry_over = { "stream", "autoscaling", "contributor_insights", "resource_policy" },
  -- deletion_protection = false,
  -- tags = { team = "orders" },
  -- validation = { item_count = true, item_count_tolerance = 0.01, key_schema = true },
  -- alert_topic_arn = "arn:aws:sns:us-east-1:123456789012:rotator-alerts",
}
