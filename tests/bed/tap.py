"""A tiny TAP producer for the Python integration tests (prove reads it).

    t = Tap()
    t.ok(x == 1, "x is one")
    t.eq(got, want, "values match")
    with t.case("restore copies the items"):   # ok unless the block raises
        ...
    t.skip("needs ../shared", "no shared events")
    sys.exit(t.done())                        # prints 1..N; exit status 1 if any failed
"""

from __future__ import annotations

import sys
import traceback
from contextlib import contextmanager
from typing import Any, Iterator


class Tap:
    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.n = 0
        self.failed: list[str] = []

    def _emit(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def diag(self, msg: Any) -> None:
        """Diagnostics: "# " lines on stderr (prove shows them)."""
        for line in str(msg).splitlines() or [""]:
            sys.stderr.write(f"# {line}\n")
        sys.stderr.flush()

    def note(self, msg: Any) -> None:
        """Comments on stdout (shown with prove -v)."""
        for line in str(msg).splitlines() or [""]:
            self._emit(f"# {line}")

    def ok(self, cond: Any, name: str, diag: Any = None) -> bool:
        self.n += 1
        name = name.replace("#", "\\#")
        if cond:
            self._emit(f"ok {self.n} - {name}")
        else:
            self._emit(f"not ok {self.n} - {name}")
            self.failed.append(name)
            if diag is not None:
                self.diag(diag)
        return bool(cond)

    def eq(self, got: Any, want: Any, name: str) -> bool:
        return self.ok(got == want, name, f"     got: {got!r}\nexpected: {want!r}")

    def skip(self, name: str, reason: str) -> None:
        self.n += 1
        self._emit(f"ok {self.n} - {name} # SKIP {reason}")

    @contextmanager
    def case(self, name: str) -> Iterator[None]:
        """One test point: ok if the block finishes, not ok (with the traceback) if it raises."""
        try:
            yield
        except Exception:
            self.ok(False, name, traceback.format_exc())
        else:
            self.ok(True, name)

    def bail(self, reason: str) -> None:
        self._emit(f"Bail out! {reason}")
        sys.exit(255)

    def done(self) -> int:
        self._emit(f"1..{self.n}")
        if self.failed:
            self.diag(f"failed {len(self.failed)} of {self.n}: " + "; ".join(self.failed))
        return 1 if self.failed else 0
