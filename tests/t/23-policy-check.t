#!/usr/bin/env python3
"""`rotator check` on policy files in temp dirs, through the real binary: each problem is
reported at the line of the field at fault (file:line), with a "did you mean" for a
misspelt field or group name; replacements that cannot form a DynamoDB table name and
template references to groups the pattern lacks fail the check; warnings (Go
differences, exponential backtracking) name the construct and do not fail it."""
import os, subprocess, sys, tempfile

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
TMP = tempfile.mkdtemp(prefix="rotator-check-")


def check(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([BIN, "check", path], capture_output=True, text=True, timeout=30)
    return path, r


def expect_error(name, text, line, *needles):
    path, r = check(name, text)
    lines = [l for l in r.stderr.splitlines() if l.startswith(path + ":")]
    ok = r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{path}:{line}: ") \
        and all(n in lines[0] for n in needles)
    t.ok(ok, f"{name}: reported at line {line}")
    if not ok:
        t.diag(f"rc={r.returncode} stderr={r.stderr!r}")


# Each case: the problem sits on a field line away from the `rule {` line.
expect_error("bad-replacement.lua", """-- staging copies
rule {
  name = "staging",
  source_pattern = "-production$",

  replacement = "/staging copy!",
}
""", 6, 'replacement "/staging copy!"', '"/" can never be in a DynamoDB table name')

expect_error("missing-group.lua", """rule {
  name = "qa",
  source_pattern = "^(.*)-prod$",
  replacement = "${2}-qa",
}
""", 4, "${2} refers to group 2, but source_pattern has 1 group")

expect_error("dollar-two.lua", """rule { name = "qa",
  source_pattern = "^(.*)-prod$", replacement = "$2-qa" }
""", 2, "$2 refers to group 2")

expect_error("missing-name.lua", """rule {
  name = "qa",
  source_pattern = "^(?P<base>.*)-prod$",
  restore = { BillingModeOverride = "PAY_PER_REQUEST", source_pattern = "not a field line" },
  replacement = "${bas}-qa",
}
""", 5, "${bas} names no group", "did you mean ${base}?")

expect_error("longest-name.lua", """rule {
  name = "qa", source_pattern = "^(.*)-prod$",
  replacement = "$1_qa",
}
""", 3, 'is group "1_qa"', "write ${1}_qa")

expect_error("typo.lua", """local base = "orders"
rule {
  name = "qa",
  source_patern = "^" .. base .. "-prod$",
  replacement = "-qa",
}
""", 4, "unknown rule field 'source_patern'", "did you mean 'source_pattern'?")

expect_error("far-off.lua", """rule {
  name = "qa", source_pattern = "-prod$", replacement = "-qa",
  colour = "blue",
}
""", 3, "unknown rule field 'colour'")
path, r = check("far-off.lua", open(os.path.join(TMP, "far-off.lua")).read())
t.ok("did you mean" not in r.stderr, "no suggestion for a field nothing is near")

expect_error("bad-regex.lua", """rule {
  name = "qa",
  replacement = "-qa",
  source_pattern = "^(orders-prod",
}
""", 4, 'source_pattern "^(orders-prod" does not compile', "missing closing parenthesis")

expect_error("long-literal.lua", 'rule {\n  name = "qa", source_pattern = "x",\n  replacement = "%s",\n}\n'
             % ("y" * 240), 3, "exceed DynamoDB's 255")

# Rules a file returns as a list: each rule's fields have their lines too.
expect_error("returned.lua", """return {
  { name = "a", source_pattern = "-prod$", replacement = "-qa" },
  {
    name = "b",
    source_pattern = "-prod$",
    replacment = "-qa",
  },
}
""", 6, "did you mean 'replacement'?")

# A field of a nested table is not taken for the rule's own; comments and strings that
# look like fields do not mislead the scan.
expect_error("nested.lua", """--[[ rule { replacement = "x" } ]]
local s = "rule { replacement = 1 }"
rule { name = "n", source_pattern = "-prod$",
  restore = { replacement = "nested" },
  --  replacement = "commented out"
  replacement = "bad name",
}
""", 6, '" " can never be')

# Several rules, several problems: each reported, at its own line.
path, r = check("several.lua", """rule {
  name = "one", source_pattern = "(", replacement = "-qa",
}
rule {
  name = "two", source_pattern = "x",
  replacement = "$$-qa",
}
""")
got = sorted(l.split(": ")[0] for l in r.stderr.splitlines() if l.startswith(path))
t.eq(got, [f"{path}:2", f"{path}:6"], "two problems, two lines")
t.ok('"$" can never be' in r.stderr, "$$ is a literal '$'")

# A rule built elsewhere falls back to the rule's line.
expect_error("built.lua", """local function make(n) return { name = n, source_pattern = "x", replacement = "a b" } end

rule(make("x"))
""", 3, '" " can never be')

# A good policy: exit 0, and referring to every kind of group is fine.
path, r = check("good.lua", """rule {
  name = "qa",
  source_pattern = "^(?P<base>[a-z]+)-(prod)(uction)?$",
  replacement = "${base}-${2}x-$3-$0-qa.$$x",
  target_name = function(ctx) return ctx.default_name:gsub("%$", "") end,
}
rule { name = "plain", source_pattern = "(?i)-production$", replacement = "-staging" }
""")
t.eq(r.returncode, 0, "a good policy passes")
t.ok("2 rules" in r.stdout, "and counts its rules")
if r.returncode:
    t.diag(r.stderr)

# Warnings: at the source_pattern's line, naming the construct and its class; exit 0.
WARNED = [
    ("^([a-z0-9]+-?)*$", "([a-z0-9]+-?)*", "backtrack"),
    ("^(a*)*-prod$", "(a*)*", "empty-repeat"),
    ("(?i)^\\\\p{Lu}+-prod$", "\\p{Lu}", "caseless-property"),
    ("^orders\\\\12", "\\12", "octal"),
    ("^orders\\\\s", "\\s", "space"),
    ("^orders\\\\v", "\\v", "vspace"),
]
for pat, construct, cls in WARNED:
    path, r = check(f"warn-{cls}.lua", 'rule {\n  name = "w",\n  replacement = "-staging",\n'
                    f'  source_pattern = "{pat}",\n}}\n')
    lines = [l for l in r.stderr.splitlines() if l.startswith(path)]
    ok = r.returncode == 0 and len(lines) >= 1 and lines[0].startswith(f"{path}:4: warning: ") \
        and f"`{construct}`" in lines[0] and f"({cls})" in lines[0] and "warning(s)" in r.stdout
    t.ok(ok, f"warning {cls} at the source_pattern line, naming {construct}")
    if not ok:
        t.diag(f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}")
path, r = check("quiet.lua", 'rule { name = "q", source_pattern = "^[a-z0-9]+(-[a-z0-9]+)*-production$",'
                ' replacement = "-staging" }\n')
t.ok(r.returncode == 0 and "warning" not in r.stderr, "a required separator is not exponential: no warning")

# No policy rules: the default rule from the original tool's settings is checked instead.
empty = tempfile.mkdtemp(prefix="rotator-check-empty-")
base = {k: v for k, v in os.environ.items() if k not in ("SOURCE_PATTERN", "REPLACEMENT_PATTERN", "SSM_PARAMETER_NAME")}
r = subprocess.run([BIN, "--policies", empty, "check"], capture_output=True, text=True, timeout=30,
                   env=dict(base, SOURCE_PATTERN="^([a-z0-9]+-?)*$", REPLACEMENT_PATTERN="$1-qa"))
t.ok(r.returncode == 0 and "environment/flags: warning:" in r.stderr and "(backtrack)" in r.stderr
     and "default rule from SOURCE_PATTERN" in r.stdout, "the default rule's pattern is linted")
r = subprocess.run([BIN, "--policies", empty, "check"], capture_output=True, text=True, timeout=30,
                   env=dict(base, SOURCE_PATTERN="^(.*)-prod$", REPLACEMENT_PATTERN="${2}-qa"))
t.ok(r.returncode == 2 and "REPLACEMENT_PATTERN" in r.stderr and "${2} refers to group 2" in r.stderr,
     "a default rule that would fail later fails the check")

sys.exit(t.done())
