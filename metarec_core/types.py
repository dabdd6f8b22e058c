"""Small shared types: progress events and the progress-callback protocol."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report from a long job.

    Attributes:
        stage: short name of the current stage, e.g. "embed", "meta-train", "evaluate".
        current: units done in this stage.
        total: units in this stage (0 when unknown).
        message: optional human-readable detail.
        metrics: optional numbers to plot live (e.g. {"loss": 0.42}).
    """

    stage: str
    current: int
    total: int = 0
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Fraction done in [0, 1] (0 when the total is unknown)."""
        return min(1.0, self.current / self.total) if self.total > 0 else 0.0


Progress = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default progress callback: ignore every event."""
