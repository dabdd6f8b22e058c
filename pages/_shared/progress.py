"""Adapt engine progress callbacks to Streamlit widgets."""

from __future__ import annotations

import time

import streamlit as st

from metarec_core.types import ProgressEvent


class StreamlitProgress:
    """A progress callback drawing one ``st.progress`` bar (throttled to ~10 updates/s)."""

    def __init__(self, label: str, container=None, min_interval: float = 0.1) -> None:
        self.box = container if container is not None else st.empty()
        self.bar = self.box.progress(0.0, text=label)
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        done = event.total > 0 and event.current >= event.total
        if not done and now - self._last < self.min_interval:
            return
        self._last = now
        count = f" {event.current}/{event.total}" if event.total else ""
        text = f"{event.stage}{count} {event.message}".strip()
        self.bar.progress(event.fraction, text=text)

    def clear(self) -> None:
        self.box.empty()
