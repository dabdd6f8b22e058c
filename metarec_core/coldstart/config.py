"""ColdStartConfig: every knob of the cold-start engine in one frozen, self-validating dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from metarec_core.errors import ValidationError


@dataclass(frozen=True)
class ColdStartConfig:
    """Hyper-parameters of the meta-learned cold-start recommender (defaults run on a CPU).

    Attributes:
        k: support size the model is built for (evaluation and the app use it as the default).
        k_min, k_max: meta-training samples the support size of each episode from this range,
            so one model serves k = 1..10 well.
        dim: size of the learned item/user space.
        inner_steps: gradient steps of the inner loop (adaptation to a user's support).
        inner_lr: initial inner learning rate (per parameter, meta-learned when ``learn_inner_lr``).
        learn_inner_lr: Meta-SGD: learn one inner learning rate per adapted parameter.
        first_order: drop second-order terms in meta-training (faster, slightly less accurate).
        epochs: passes over the warm users during meta-training (at least; see min_steps).
        min_steps: small datasets get more epochs, so that training takes at least this many
            optimiser steps (the best epoch on validation users is kept either way).
        max_steps: at most this many optimiser steps per trained net (0: no cap), which bounds
            training time on very large logs; the default leaves amazon-beauty-sized data alone.
        meta_from_pretrained: start meta-training from the conventionally trained twin's
            weights (then meta-train the adaptation on top) instead of from scratch.
        batch_size: episodes (users) per meta-batch.
        lr: outer (Adam) learning rate.
        weight_decay: L2 on the id embeddings (they are many and sparse).
        max_query: at most this many query items per training episode.
        ease_lambda: ridge strength of the EASE item-item model (used as a baseline and as the
            neighbourhood term of the learned scorer).
        ease_max_items: EASE covers at most this many (most popular) items; above that the
            neighbourhood term and the ``ease`` method cover those items only.
        neighbours: item-item neighbours kept per item in the model directory (item-knn and EASE).
        finetune_steps, finetune_lr: plain SGD on the support for the ``finetune`` method.
        seed: seeds sampling and initialisation (runs are reproducible on one device).
        device: "auto", "cpu", "cuda" or "cuda:N".
    """

    k: int = 3
    k_min: int = 1
    k_max: int = 10
    dim: int = 64
    inner_steps: int = 2
    inner_lr: float = 0.5
    learn_inner_lr: bool = True
    first_order: bool = True
    epochs: int = 3
    min_steps: int = 200
    max_steps: int = 1500
    meta_from_pretrained: bool = True
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.0
    max_query: int = 50
    ease_lambda: float = 500.0
    ease_max_items: int = 15_000
    neighbours: int = 200
    finetune_steps: int = 2
    finetune_lr: float = 0.5
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("k", "k_min", "k_max", "dim", "epochs", "batch_size", "max_query")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValidationError(
                    f"ColdStartConfig.{name} must be a positive integer, got {value!r}"
                )
        non_negative = (
            "inner_steps",
            "finetune_steps",
            "neighbours",
            "ease_max_items",
            "min_steps",
            "max_steps",
        )
        for name in non_negative:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError(
                    f"ColdStartConfig.{name} must be an integer >= 0, got {value!r}"
                )
        for name in ("inner_lr", "lr", "weight_decay", "ease_lambda", "finetune_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValidationError(
                    f"ColdStartConfig.{name} must be a number >= 0, got {value!r}"
                )
        if self.lr <= 0 or self.ease_lambda <= 0:
            raise ValidationError("ColdStartConfig.lr and ease_lambda must be > 0")
        if self.k_min > self.k_max:
            raise ValidationError(f"ColdStartConfig.k_min ({self.k_min}) > k_max ({self.k_max})")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValidationError(
                f"ColdStartConfig.seed must be an integer >= 0, got {self.seed!r}"
            )

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for config.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ColdStartConfig:
        """Build from a dict, ignoring unknown keys (older/newer model directories)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
