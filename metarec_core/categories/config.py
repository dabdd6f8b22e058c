"""CategoryConfig: every knob of the new-category engine, validated when it is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from metarec_core.errors import ValidationError


@dataclass(frozen=True)
class CategoryConfig:
    """Settings for meta-training and few-shot classification; defaults run on a CPU in minutes.

    Attributes:
        encoder: text encoder name for ``get_encoder`` ("minilm" or "fake" in tests).
        rank: rank of the learned residual projection ``z = x + U (V x)`` (0 = identity).
        episodes: meta-training episodes.
        n_way: categories per training episode (capped by the categories available).
        k_shot_max: support shots per category in an episode are drawn from 1..k_shot_max.
        n_query: query items per category in an episode.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the projection (keeps it near the identity).
        temperature: initial scale of cosine logits (learned during meta-training).
        center: subtract the mean of the support and query pool before comparing (transductive).
        name_weight: weight of the category-name embedding added to each prototype (0 = off);
            at classification time it is only used when leave-one-out on the support agrees.
        refine_steps: soft k-means steps that refine prototypes with the unlabelled queries.
        open_set_quantile: quantile of the leave-one-out in-category similarities used as the
            open-set threshold (lower = accept more).
        seed: seed for episode sampling and initialisation.
        device: "auto" | "cpu" | "cuda" | "cuda:N" for meta-training.
    """

    encoder: str = "minilm"
    rank: int = 64
    episodes: int = 1500
    n_way: int = 20
    k_shot_max: int = 5
    n_query: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 10.0
    center: bool = True
    name_weight: float = 1.0
    refine_steps: int = 3
    open_set_quantile: float = 0.1
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = [
            (self.rank >= 0, "rank must be >= 0"),
            (self.episodes >= 0, "episodes must be >= 0"),
            (self.n_way >= 2, "n_way must be >= 2"),
            (self.k_shot_max >= 1, "k_shot_max must be >= 1"),
            (self.n_query >= 1, "n_query must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.name_weight >= 0, "name_weight must be >= 0"),
            (self.refine_steps >= 0, "refine_steps must be >= 0"),
            (0.0 <= self.open_set_quantile < 1.0, "open_set_quantile must be in [0, 1)"),
            (bool(self.encoder), "encoder must be named"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValidationError(f"CategoryConfig: {message}")

    def to_dict(self) -> dict:
        """A JSON-ready copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CategoryConfig:
        """Build from a dict, ignoring unknown keys (configs written by newer versions)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
