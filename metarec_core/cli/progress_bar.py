"""A progress callback for the terminal: one bar per stage, written to stderr."""

from __future__ import annotations

import sys
import time

from metarec_core.types import ProgressEvent


class CliProgress:
    """Callable progress adapter: ``CliProgress()(event)`` draws ``stage [####----] 12/40 msg``."""

    def __init__(self, stream=None, min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._stage: str | None = None
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        done = event.total > 0 and event.current >= event.total
        new_stage = event.stage != self._stage
        if not (new_stage or done or now - self._last >= self.min_interval):
            return
        if new_stage and self._stage is not None and self._tty:
            self.stream.write("\n")
        self._stage, self._last = event.stage, now
        width = 28
        filled = int(width * event.fraction)
        bar = "#" * filled + "-" * (width - filled)
        count = f"{event.current}/{event.total}" if event.total else f"{event.current}"
        extra = " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
        line = f"{event.stage:<12} [{bar}] {count} {event.message} {extra}".rstrip()
        if self._tty:
            self.stream.write("\r" + line[:150].ljust(150) + ("\n" if done else ""))
        elif new_stage or done:
            self.stream.write(line + "\n")
        self.stream.flush()
