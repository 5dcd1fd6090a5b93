"""Progress lines for long asset steps: a handful per step, not one event per item.

Every ``context.log`` line is an event written to the instance's event log (a database
row, a few milliseconds each). One line per judge call made about half of the demo's
judging step (6.5 s of 12.6 s on four batches) the storing of progress events, and buried
the run's useful lines in the UI. A step now logs at each tenth of its work, after a quiet spell
of ``quiet_s`` seconds (so a slow remote judge still shows it is alive), and at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STEPS = 10
QUIET_S = 30.0


class ThrottledProgress:
    """A ``(done, total[, message])`` callback that forwards only the lines worth reading to ``emit``.

    ``unit`` ends each line unless a call brings its own ``message``."""

    def __init__(
        self,
        emit: Callable[[str], None],
        unit: str = "",
        steps: int = STEPS,
        quiet_s: float = QUIET_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.emit = emit
        self.unit = unit
        self.steps = steps
        self.quiet_s = quiet_s
        self.clock = clock
        self._logged_step = -1
        self._logged_at = clock()

    def __call__(self, done: int, total: int, message: str | None = None) -> None:
        if total <= 0:
            return
        step = done * self.steps // total
        now = self.clock()
        if done >= total or step > self._logged_step or now - self._logged_at >= self.quiet_s:
            self._logged_step = step
            self._logged_at = now
            self.emit(f"{done}/{total} {self.unit if message is None else message}".rstrip())


def batch_progress(log: Callable[[str], None], batch: str, unit: str) -> ThrottledProgress:
    """Progress of one prompt batch inside a multi-partition run: each line names its batch."""

    def emit(line: str) -> None:
        log(f"batch {batch}: {line}")

    return ThrottledProgress(emit, unit=unit)
