#!/usr/bin/env python3
"""`make deb` on the binary under test: the package's name, version and dependencies, the
files where Debian expects them (binary, engine scripts, examples, copyright, changelog,
manual page, unit, the empty policy folder, /etc/default/rotator as a conffile), the system
user made in postinst, lintian without errors; then the package unpacked into a throw-away
root (`dpkg -x`) runs from there: `version`, and `check` with its scripts found beside the
installed binary, on the empty policy folder and on the shipped example."""
import os, re, shutil, subprocess, sys, tempfile

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
from tap import Tap  # noqa: E402
from make_target import make  # noqa: E402

t = Tap()
tmp = tempfile.mkdtemp(prefix="rotator-deb-")
version = open(os.path.join(ROOT, "VERSION")).read().strip()
arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
r = make(ROOT, BIN, "deb", "BUILD=" + tmp)
deb = os.path.join(tmp, "rotator_%s_%s.deb" % (version, arch))
t.ok(r.returncode == 0 and os.path.isfile(deb), "make deb builds rotator_<VERSION>_<arch>.deb", r.stderr[-800:])


def dpkg_deb(*args):
    return subprocess.run(["dpkg-deb", *args, deb], capture_output=True, text=True).stdout


fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", dpkg_deb("-f"), re.M))
t.eq((fields.get("Package"), fields.get("Version"), fields.get("Architecture")), ("rotator", version, arch),
     "package name, version from VERSION, architecture")
depends = [d.split()[0] for d in fields.get("Depends", "").split(", ")]
libs = [n for n in ("libc6", "libcurl4", "liblua5.4-0", "libpcre2-8-0", "libsqlite3-0", "libedit2",
                    "libssl3", "adduser") if n not in depends]
t.ok(libs == [], "Depends lists the shared libraries the binary links (dpkg-shlibdeps) and adduser",
     "missing %s from %s" % (libs, fields.get("Depends")))

listing = set(line.split()[-1].lstrip(".") for line in dpkg_deb("-c").splitlines())
want = ["/usr/bin/rotator", "/usr/share/rotator/scripts/cmd/run.lua", "/usr/share/doc/rotator/examples/example.lua",
        "/usr/share/doc/rotator/copyright", "/usr/share/doc/rotator/changelog.gz",
        "/usr/share/man/man1/rotator.1.gz", "/lib/systemd/system/rotator.service", "/etc/rotator/policies/",
        "/etc/default/rotator"]
t.eq([p for p in want if p not in listing], [], "the files sit where Debian expects them")
t.eq(sorted(p for p in listing if p.startswith("/etc/rotator/policies/") and p != "/etc/rotator/policies/"), [],
     "the policy folder ships empty: a fresh install acts on nothing")

ctl = os.path.join(tmp, "control")
subprocess.run(["dpkg-deb", "-e", deb, ctl], check=True)
conffiles = open(os.path.join(ctl, "conffiles")).read().split()
t.eq(conffiles, ["/etc/default/rotator"], "/etc/default/rotator is a conffile (an upgrade keeps local edits)")
postinst = open(os.path.join(ctl, "postinst")).read()
t.ok(re.search(r"adduser --system .*rotator", postinst.replace("\\\n", " ")) is not None and "getent passwd rotator" in postinst,
     "postinst creates the rotator system user once")
prerm = open(os.path.join(ctl, "prerm")).read()
t.ok("deb-systemd-invoke stop 'rotator.service'" in prerm, "prerm stops the service on removal")

lintian = shutil.which("lintian")
if not lintian:
    t.skip("lintian reports no errors", "lintian is not installed (vendor/debian-packages.txt lists it)")
else:
    r = subprocess.run([lintian, "--no-cfg", deb], capture_output=True, text=True, timeout=300)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    t.ok(r.returncode == 0 and not [x for x in tags if x.startswith("E:")],
         "lintian reports no errors", "\n".join(tags) or r.stderr[-300:])
    t.note("lintian: %d warnings%s" % (len(tags), "".join("\n" + x for x in tags)))

root = os.path.join(tmp, "root")
subprocess.run(["dpkg", "-x", deb, root], check=True)
inst = os.path.join(root, "usr", "bin", "rotator")
env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOURCE_", "REPLACEMENT_", "SSM_", "ROTATOR_"))}
env.update(AWS_EC2_METADATA_DISABLED="true", ROTATOR_STATE_DIR=os.path.join(tmp, "state"))


def run(*args):
    return subprocess.run([inst, *args], capture_output=True, text=True, cwd="/", env=env, timeout=30)


r = run("version")
t.ok(r.returncode == 0 and version in r.stdout, "the unpacked binary prints its version", r.stdout + r.stderr)
policies = os.path.join(root, "etc", "rotator", "policies")
r = run("--policies", policies, "check")
t.ok(r.returncode == 0 and "0 rules" in r.stdout, "check with the packaged scripts on the empty policy folder",
     r.stdout + r.stderr)
shutil.copy(os.path.join(root, "usr", "share", "doc", "rotator", "examples", "example.lua"), policies)
r = run("--policies", policies, "check")
t.ok(r.returncode == 0 and "1 policy files, 1 rules" in r.stdout,
     "check loads the shipped example policy", r.stdout + r.stderr)

unit = open(os.path.join(root, "lib", "systemd", "system", "rotator.service")).read()
t.ok("ExecStart=/usr/bin/rotator --state-dir /var/lib/rotator --policies /etc/rotator/policies run" in unit,
     "the packaged unit runs /usr/bin/rotator on /etc/rotator/policies")
analyze = shutil.which("systemd-analyze")
if not analyze:
    t.skip("systemd-analyze verify on the packaged unit", "systemd-analyze is not installed (Debian package systemd)")
else:
    # The binary lives in the throw-away root, not in /usr/bin: point the copy there.
    copy = os.path.join(tmp, "rotator.service")
    with open(copy, "w") as f:
        f.write(unit.replace("/usr/bin/rotator", inst))
    r = subprocess.run([analyze, "verify", copy], capture_output=True, text=True,
                       env=dict(os.environ, MANPATH=os.path.join(root, "usr", "share", "man")))
    t.ok(r.returncode == 0 and (r.stdout + r.stderr).strip() == "", "systemd-analyze verify passes on the packaged unit",
         r.stdout + r.stderr)

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(t.done())
