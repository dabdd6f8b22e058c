"""The CLI's progress callback: one tqdm bar per stage on the given stream."""

from __future__ import annotations

import io

from metarec_core.cli.progress_bar import CliProgress
from metarec_core.types import ProgressEvent


def test_one_bar_per_stage_with_counts_and_metrics():
    out = io.StringIO()
    progress = CliProgress(out, min_interval=0)
    for i in range(1, 5):
        progress(ProgressEvent("embed", i, 4))
    progress(ProgressEvent("meta-train", 10, 20, metrics={"loss": 0.5}))
    progress(ProgressEvent("meta-train", 20, 20, metrics={"loss": 0.25}))
    text = out.getvalue()
    assert "embed" in text and "4/4" in text
    assert "meta-train" in text and "20/20" in text and "loss=0.25" in text
    assert progress._bar is None  # a finished stage closes its bar


def test_unknown_total_counts_without_a_bar():
    out = io.StringIO()
    progress = CliProgress(out, min_interval=0)
    progress(ProgressEvent("import", 3, 0, message="rows"))
    progress.close()
    assert "import" in out.getvalue() and "3" in out.getvalue()
