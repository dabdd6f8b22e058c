"""ColdStartConfig: every knob of the cold-start engine in one frozen, self-validating dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from metarec_core.errors import ValidationError

# every field's type and inclusive bounds: a config.json from elsewhere is checked on load, so a
# value such as inner_steps = 100000000 is refused instead of hanging ``recommend``
_BOUNDS: dict[str, tuple[type, float, float]] = {
    "k": (int, 1, 100),
    "k_min": (int, 1, 100),
    "k_max": (int, 1, 100),
    "dim": (int, 1, 4096),
    "inner_steps": (int, 0, 100),
    "inner_lr": (float, 0, 100),
    "learn_inner_lr": (bool, 0, 1),
    "first_order": (bool, 0, 1),
    "epochs": (int, 1, 10_000),
    "min_steps": (int, 0, 10_000_000),
    "max_steps": (int, 0, 10_000_000),
    "meta_from_pretrained": (bool, 0, 1),
    "batch_size": (int, 1, 65_536),
    "lr": (float, 0, 10),
    "weight_decay": (float, 0, 10),
    "max_query": (int, 1, 100_000),
    "ease_lambda": (float, 0, 1e12),
    "ease_max_items": (int, 0, 50_000),
    "neighbours": (int, 0, 10_000),
    "finetune_steps": (int, 0, 1000),
    "finetune_lr": (float, 0, 100),
    "seed": (int, 0, 2**32 - 1),
}


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
        learn_inner_lr: Meta-SGD: learn one inner learning rate per adapted parameter (and per
            support size); False keeps every inner rate at ``inner_lr`` (plain MAML).
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
        for name, (kind, lo, hi) in _BOUNDS.items():
            value = getattr(self, name)
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValidationError(
                        f"ColdStartConfig.{name} must be true or false, got {value!r}"
                    )
                continue
            ok_type = isinstance(value, int) if kind is int else isinstance(value, int | float)
            if not ok_type or isinstance(value, bool) or not (lo <= value <= hi):
                what = "an integer" if kind is int else "a number"
                raise ValidationError(
                    f"ColdStartConfig.{name} must be {what} in [{lo:,}, {hi:,}], got {value!r}"
                )
        if self.lr <= 0 or self.ease_lambda <= 0:
            raise ValidationError("ColdStartConfig.lr and ease_lambda must be > 0")
        if self.k_min > self.k_max:
            raise ValidationError(f"ColdStartConfig.k_min ({self.k_min}) > k_max ({self.k_max})")
        if self.k > self.k_max:  # the net has position weights for support sizes up to k_max
            raise ValidationError(f"ColdStartConfig.k ({self.k}) > k_max ({self.k_max})")
        if not isinstance(self.device, str) or len(self.device) > 16:
            raise ValidationError(
                f"ColdStartConfig.device must be a device name, got {self.device!r}"
            )

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for config.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ColdStartConfig:
        """Build from a dict, ignoring unknown keys (older/newer model directories)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
