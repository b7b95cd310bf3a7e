"""`rotator repl` and `rotator status` against a running `rotator run` on the emulator.

The interactive session runs in a pty, as an operator's terminal would: a multi-line
chunk, the workflows() helper, an aws.call answered by moto (signatures checked), an
error with a traceback that leaves the daemon running, and Ctrl-C abandoning a wait.
The socket is created 0600, and a peer with another uid is refused (SO_PEERCRED)."""
import json, os, pty, select, signal, socket, stat, subprocess, sys, tempfile, time

ROOT = os.environ.get("ROTATOR_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ROTATOR") or os.path.join(ROOT, "rotator")
sys.path.insert(0, os.path.join(ROOT, "tests", "bed"))
import bed  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()


class Pty:
    """A process on a pseudo-terminal; expect() waits for text in its output."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        self.buf = b""

    def send(self, text):
        os.write(self.fd, text.encode())

    def expect(self, needle, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            idx = self.buf.find(needle.encode())
            if idx >= 0:
                out, self.buf = self.buf[:idx + len(needle)], self.buf[idx + len(needle):]
                return out.decode(errors="replace")
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    self.buf += os.read(self.fd, 4096)
                except OSError:
                    break
        return None

    def close(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


with bed.Emulator() as emu:
    emu.create_table("orders-staging-repl", items=3)
    state = tempfile.mkdtemp(prefix="rotator-repl-")
    pols = tempfile.mkdtemp(prefix="rotator-pol-")
    with open(os.path.join(pols, "main.lua"), "w") as f:
        f.write('rule { name = "staging", source_pattern = "(?i)-production$", replacement = "-staging" }\n')
    env = dict(bed.env_for_rotator(emu), ROTATOR_ROOT=ROOT, HOME=state, TERM="dumb",
               ROTATOR_STATE_DIR=state, ROTATOR_POLICIES=os.path.join(pols))
    log = open(os.path.join(state, "daemon.log"), "w")
    daemon = subprocess.Popen([BIN, "run"], env=env, stderr=log, stdout=subprocess.DEVNULL)
    sock = os.path.join(state, "rotator.sock")
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    try:
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        t.ok(mode == 0o600, f"the control socket is created mode 0600 (got {oct(mode)})")

        r = subprocess.run([BIN, "status", "--json"], env=env, capture_output=True, text=True, timeout=10)
        st = json.loads(r.stdout)
        t.ok(r.returncode == 0 and st["pid"] == daemon.pid and st["policies"][0]["sha256"], "status --json: pid and policy hashes")
        r = subprocess.run([BIN, "status"], env=env, capture_output=True, text=True, timeout=10)
        t.ok(r.returncode == 0 and "uptime_s" in r.stdout and "last_reload" in r.stdout, "status (text) for humans")

        p = Pty([BIN, "repl"], env)
        t.ok(p.expect("> ") is not None, "repl attaches and prompts")
        p.send("for i = 1, 3 do\r")
        t.ok(p.expect(">> ") is not None, "an unfinished chunk asks for more (>> prompt)")
        p.send("  print('line', i * 10)\r")
        p.expect(">> ")
        p.send("end\r")
        out = p.expect("> ")
        t.ok(out and "line\t10" in out and "line\t30" in out, "the multi-line chunk ran in the daemon", out)
        p.send("workflows()\r")
        out = p.expect("> ")
        t.ok(out and "workflow" in out and "state" in out, "workflows() lists workflows", out)
        p.send("require('aws').call('dynamodb', 'DescribeTable', {TableName = 'orders-staging-repl'}).Table.ItemCount\r")
        out = p.expect("> ", timeout=20)
        t.ok(out and "\n3" in out.replace("\r", ""), "aws.call works interactively (answered by moto, signature checked)", out)
        p.send("error('on purpose')\r")
        out = p.expect("> ")
        t.ok(out and "on purpose" in out and "stack traceback" in out, "an error prints a traceback", out)
        t.ok(daemon.poll() is None, "and the daemon keeps running")
        p.send("require('engine.task').sleep(60)\r")
        time.sleep(0.3)
        p.send("\x03")
        out = p.expect("> ", timeout=5)
        t.ok(out and "interrupted" in out, "Ctrl-C abandons a wait and the prompt returns", out)
        p.send("1 + 1\r")
        out = p.expect("> ")
        t.ok(out and "2" in out, "the session goes on after Ctrl-C", out)
        t.ok(daemon.poll() is None, "Ctrl-C did not touch the daemon")
        p.close()

        if os.geteuid() == 0:
            # Open the file-mode barriers so the other uid reaches SO_PEERCRED, the check
            # under test here (the 0600 mode is checked above).
            os.chmod(state, 0o711)
            os.chmod(sock, 0o666)
            child = os.fork()
            if child == 0:
                code = 1
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    s = socket.socket(socket.AF_UNIX)
                    s.settimeout(10)
                    s.connect(sock)
                    # The daemon answers a refused peer at once and hangs up: read first
                    # (a write could meet the closed socket before the refusal is read).
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    code = 0 if data[:1] == b"n" and b"refused" in data else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(child, 0)
            os.chmod(sock, 0o600)
            os.chmod(state, 0o700)
            t.ok(os.waitstatus_to_exitcode(status) == 0, "a connection from another uid is refused (SO_PEERCRED)")
        else:
            t.skip("another uid is refused", "needs root to connect as another uid")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            rc = daemon.wait()
        log.close()
    t.ok(rc == 0, "the daemon stops cleanly")
    t.ok(not os.path.exists(sock), "and removes its socket")
    text = open(os.path.join(state, "daemon.log")).read()
    t.ok(emu.rotator_keys[1] not in text if hasattr(emu, "rotator_keys") else "SecretAccessKey" not in text, "no secret in the daemon log")

sys.exit(t.done())
