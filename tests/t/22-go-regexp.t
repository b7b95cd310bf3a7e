#!/usr/bin/env python3
"""Rule patterns behave as in Go, or `rotator check` says why not. Go's own regexp
(tests/go/regexporacle, built here with the stdlib only) is the oracle: for a few hundred
patterns (hand-picked, in the original tool's style, and generated from a fixed seed) on
table-like names (and a few probe strings holding the characters the warned classes are
about), the first match's submatch offsets and ReplaceAllString's result must equal what
the real PCRE2 binding gives, as rules compile patterns. Every difference must fall in a
class `rotator check` warns of for that pattern (policy/gocompat.lua), and every class
named as a Go difference must show one, so the warnings are neither missing nor idle."""
import json, os, random, shutil, subprocess, sys, tempfile

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
BUILD = os.environ.get("ROTATOR_BUILD") or os.path.join(ROOT, "build")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402

t = Tap()
GO = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
if not GO:
    t.skip("Go regexp oracle", "no Go toolchain (go on PATH or /usr/local/go/bin/go): the oracle cannot be built")
    sys.exit(t.done())

GO_DIFFERENCES = {"empty-repeat", "caseless-property", "octal", "space", "vspace"}

SUBJECTS = [
    "orders-production", "Orders-Production", "orders-prod", "customers-production-eu",
    "orders.v2-production", "orders_production", "PRODUCTION", "x-Production-Production",
    "orders-production-20261125-03-00-00", "orders-staging-20261125-03-00-00", "a", "ab", "aaa",
    "b", "aab", "abab", "123-456", "prod", "-production", "orders--production", "a-b-c-d",
    "Users", "users-prod-2", "abcdefghijkll",
    # probes: characters the warned classes are about (not valid table names)
    "a\x0bb", "a\nb", "a b", "caf\u00e9-production", "\u00c9cole-prod", "\u212a-prod",
]

HAND = [
    ("-Production$", "-qa"), ("(?i)-production$", "-staging"), ("^(.*)-prod(uction)?$", "${1}-qa"),
    ("^(.*)-production$", "$1-staging"), ("^(?P<base>[a-z]+)-production$", "${base}-qa"),
    ("^(?<base>[a-z]+)-prod", "${base}"), ("-(prod|production)$", "-$1x"), ("-(prod|production)$", "-${1}x"),
    ("production", "staging"), ("^orders-", "reports-"), ("(?i)^ORDERS", "o"), ("\\.v2", "_v3"),
    ("[0-9]+", "N"), ("\\d+", "<$0>"), ("\\w+", "[$0]"), ("\\b", "|"), ("\\B", "."), ("x*", "-"),
    ("a*?", "."), ("(a|ab)(c|bcd)?", "$2$1"), ("^$", "empty"), ("$", "!"), ("^", "^"), ("\\A[a-z]", "A"),
    ("[a-z]\\z", "Z"), ("(?m)^a", "A"), ("(?s)a.b", "X"), ("a.b", "X"), ("(?U)a+", "A"), ("a{2}", "2"),
    ("a{1,2}", "1"), ("a{,2}", "lit"), ("[[:alpha:]]+", "w"), ("[[:^digit:]]", "."), ("\\pL+", "L"),
    ("\\p{Lu}", "U"), ("[\\p{Ll}]", "l"), ("\\QO.\\E", "q"), ("[]a]", "x"), ("[^-]+", "s"),
    ("(?i)k", "K"), ("caf\u00e9", "cafe"), ("\u00e9", "e"), (".-prod", "P"), ("^.{5}", "five"),
    ("\\x{e9}", "E"), ("\\x41", "a"), ("(a)|(b)", "[$1|$2]"), ("(a)?b", "$1"), ("(?:o|or)ders", "$0"),
    ("(?P<env>prod(uction)?)$", "${env}.$2"), ("$$", "$$"), ("-", "$$"), ("(o)(r)", "$2$1$"),
    ("(o)", "${1"), ("(o)", "$"), ("(?i)(?-i:O)", "0"), ("(?i:O)r", "0"),
    # the warned classes
    ("(a*)*", "<$1>"), ("(a*)+", "<$1>"), ("(a|)+", "<$1>"), ("(|a)*", "<$1>"), ("(a?)*b", "<$1>"),
    ("(a*)*b", "<$1>"), ("((a)|b)*", "<$1$2>"), ("(a*)?", "<$1>"), ("(a*){2}", "<$1>"),
    ("(?i)\\p{Lu}+", "U"), ("(?i)^\\p{Ll}+$", "l"), ("(?i)\\PL", "P"),
    ("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)\\12", "oct"), ("\\12", "n"), ("[\\12]", "n"),
    ("a\\sb", "_"), ("a\\Sb", "_"), ("[\\s]", "_"), ("a\\vb", "_"), ("[\\v]", "_"),
    ("^([a-z0-9]+-?)*$", "$1"), ("^([a-z]+)*-prod", "$1"), ("(\\w+\\.?)+$", "$1"),
]


def generated(n, seed=12):
    rnd = random.Random(seed)
    atoms = ["a", "o", "r", "P", "d", "-", "_", "\\.", "0", "[a-z]", "[A-Z]", "[^-]", "[a-z0-9]", "\\w",
             "\\d", ".", "[[:alpha:]]", "\\b", "(?i)p", "[aeiou]", "[.-]", "\\W", "\\D"]
    quants = ["", "", "", "*", "+", "?", "{1,2}", "*?", "+?", "??", "{2,}"]

    def seq(depth):
        out = []
        for _ in range(rnd.randint(1, 4)):
            if depth < 2 and rnd.random() < 0.25:
                inner = "|".join(seq(depth + 1) for _ in range(rnd.randint(1, 2)))
                item = rnd.choice(["(", "(?:", "(?P<g%d>" % rnd.randint(0, 99)]) + inner + ")"
            else:
                item = rnd.choice(atoms)
            q = rnd.choice(quants)
            if q and item in ("\\b",):
                q = ""
            out.append(item + q)
        return "".join(out)

    pats, seen = [], set()
    while len(pats) < n:
        p = seq(0)
        if rnd.random() < 0.3:
            p = "^" + p
        if rnd.random() < 0.3:
            p = p + "$"
        if p not in seen:
            seen.add(p)
            pats.append((p, rnd.choice(["-qa", "${1}-qa", "$0.x", "[$1]", "$1x", "${g1}", "$$", "-$2-"])))
    return pats


CASES = HAND + generated(260)
tmp = tempfile.mkdtemp(prefix="rotator-goregexp-")
cases_path = os.path.join(tmp, "cases.json")
with open(cases_path, "w") as f:
    json.dump({"cases": [{"pattern": p, "template": tp} for p, tp in CASES], "subjects": SUBJECTS}, f)

# Build the oracle into the build folder (the Go cache there too: later runs are quick).
oracle = os.path.join(BUILD, "regexporacle")
genv = dict(os.environ, GOCACHE=os.path.join(BUILD, "gocache"), GOPATH=os.path.join(BUILD, "gopath"),
            GOPROXY="off", GOFLAGS="-mod=mod", GOTOOLCHAIN="local", CGO_ENABLED="0")
b = subprocess.run([GO, "build", "-o", oracle, "."], cwd=os.path.join(ROOT, "tests", "go", "regexporacle"),
                   capture_output=True, text=True, timeout=600, env=genv)
if b.returncode != 0:
    t.ok(False, "the Go oracle builds")
    t.diag(b.stderr)
    sys.exit(t.done())

with open(cases_path) as f:
    g = subprocess.run([oracle], stdin=f, capture_output=True, text=True, timeout=120)
t.eq(g.returncode, 0, "the Go oracle ran")
go = [json.loads(line) for line in g.stdout.splitlines()]

out_path = os.path.join(tmp, "rotator.ndjson")
r = subprocess.run([BIN, "eval", 'return dofile(os.getenv("ORACLE_SCRIPT"))'], capture_output=True, text=True,
                   timeout=300, env=dict(os.environ, ORACLE_CASES=cases_path, ORACLE_OUT=out_path,
                                         ORACLE_SCRIPT=os.path.join(ROOT, "tests", "go", "rotator_side.lua")))
t.eq(r.returncode, 0, "Rotator's side ran")
if r.returncode:
    t.diag(r.stderr[-2000:])
with open(out_path, encoding="utf-8", errors="replace") as f:  # a split character shows as U+FFFD
    ours = [json.loads(line) for line in f]
t.eq(len(go), len(CASES), "Go answered every case")
t.eq(len(ours), len(CASES), "Rotator answered every case")

accepted = [i for i, a in enumerate(go) if "error" not in a]
t.ok(len(accepted) >= 250, f"{len(accepted)} patterns Go accepts, {len(SUBJECTS)} subjects each")

unexplained, shown, compared = [], set(), 0
for i in accepted:
    ga, ra = go[i], ours[i]
    classes = set(ra.get("classes") or [])
    if "error" in ra:
        unexplained.append(f"{ga['pattern']!r}: Go accepts it, PCRE2 does not: {ra['error']}")
        continue
    for s, gr, rr in zip(SUBJECTS, ga["results"], ra["results"]):
        compared += 1
        if rr.get("failed"):
            if "backtrack" not in classes:
                unexplained.append(f"{ga['pattern']!r} on {s!r}: the match failed ({rr['match']}) unwarned")
            continue
        if gr["match"] == rr["match"] and gr["replaced"] == rr["replaced"]:
            continue
        why = classes & GO_DIFFERENCES
        if why:
            shown |= why
        else:
            unexplained.append(f"{ga['pattern']!r} template {CASES[i][1]!r} on {s!r}: Go {gr['match']} "
                               f"{gr['replaced']!r}, PCRE2 {rr['match']} {rr['replaced']!r}")
t.diag(f"{compared} pattern x subject pairs compared")
t.ok(not unexplained, f"every difference is one check warns of ({len(unexplained)} not)")
for u in unexplained[:40]:
    t.diag(u)
for c in sorted(GO_DIFFERENCES):
    t.ok(c in shown, f"warned class {c} shows a real difference")

# The hand-picked patterns in the original tool's style raise no warning.
quiet = [p for p, _ in HAND[:20] if ours[CASES.index((p, dict(HAND)[p]))].get("classes")]
t.eq(quiet, [], "the usual patterns raise no warning")
sys.exit(t.done())
