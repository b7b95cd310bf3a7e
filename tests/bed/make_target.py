"""Run a Makefile target on the binary under test: `make -o BIN TARGET OUT=BIN`, so the
target packages or installs that binary as it is (never rebuilding it: under `make asan`
that would relink the sanitizer build with other flags)."""
import subprocess


def make(root: str, binary: str, target: str, *assignments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", root, "-o", binary, target, "OUT=" + binary, *assignments],
                          capture_output=True, text=True, timeout=timeout)
