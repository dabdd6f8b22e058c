"""A progress callback for the terminal: one tqdm bar per stage, written to stderr."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from metarec_core.types import ProgressEvent


class CliProgress:
    """Callable progress adapter: ``CliProgress()(event)`` keeps one tqdm bar per stage.

    A new stage closes the previous bar and opens the next; metrics (e.g. the loss) show after
    the count. Off a terminal tqdm redraws at most every ``min_interval`` seconds.
    """

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._stage: str | None = None
        self._bar: tqdm | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage != self._stage or self._bar is None:
            self.close()
            self._stage = event.stage
            self._bar = tqdm(
                total=event.total or None,
                desc=f"{event.stage:<12}",
                file=self.stream,
                mininterval=self.min_interval,
                dynamic_ncols=True,
                leave=True,
            )
        bar = self._bar
        if event.total and bar.total != event.total:
            bar.total = event.total
        extra = " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
        bar.set_postfix_str(f"{event.message} {extra}".strip(), refresh=False)
        bar.update(event.current - bar.n)  # redraws at most every min_interval seconds
        if event.total > 0 and event.current >= event.total:
            self.close()

    def close(self) -> None:
        """Close the open bar (a finished stage closes its own)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
