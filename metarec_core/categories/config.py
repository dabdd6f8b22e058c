"""CategoryConfig: the settings a user chooses for the new-category engine, and EngineConstants:
the measured constants of its classification steps. Both are validated when built."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

from metarec_core.errors import ValidationError


@dataclass(frozen=True)
class EngineConstants:
    """Measured constants of few-shot classification (``engine.score``); change them only to
    rerun an ablation. Each was chosen on held-out Instacart departments (folds of 5 departments,
    untrained engine; figures in benchmarks/README.md). A weight of 0 turns its step off, which
    is how ``CategoryModel.plain`` builds the plain-prototype baseline.
    """

    # Task-mean centring before comparing: +1 to +4 accuracy points for prototypes.
    center: bool = True
    # Category-name embedding added to each prototype; used only when the support agrees.
    name_weight: float = 1.0
    # Name weight x 2 / sqrt(examples), capped at 2x: one example says less than its name.
    name_weight_by_shots: bool = True
    # Names join label propagation's graph as labelled items: 5-way 1-shot +0.000 to +0.008.
    name_nodes: bool = True
    # At 1 shot the names must recognise this share of the support (and twice chance's).
    names_prior_floor: float = 0.2
    # Names are kept unless they get more than this many more support items wrong (2 let
    # meaningless names through).
    names_loo_slack: int = 1
    # A single category's name is used when its examples rank in this top share of the queries.
    name_rank_max_share: float = 0.25
    # ... which needs at least this many queries to rank among.
    name_rank_min_queries: int = 20
    # Share of a prototype's mean similarity to its closest queries taken off (hubs): all-way
    # 1-shot +0.007 to +0.028; 1.0 lost up to 0.24.
    hub_correction: float = 0.25
    # Queries per prototype that measure how much of a hub it is.
    hub_neighbors: int = 30
    # Prototypes move this far towards the queries propagation gives them, then propagate
    # again: 1-shot +0.004 to +0.016.
    reestimate_weight: float = 0.5
    # ... only up to this many queries per category (with hundreds it lost up to 0.021).
    reestimate_max_per_category: float = 60.0
    # Label propagation over a k-NN graph of support and queries (0 = off); with
    # ``propagate_alpha_by_queries`` this value only switches it on.
    propagate_alpha: float = 0.9
    # Alpha from r queries per category, 1 - r ** -power within [min, max]: within ~0.005 of
    # the best fixed alpha from 5 to 300+ queries per category.
    propagate_alpha_by_queries: bool = True
    propagate_alpha_min: float = 0.6
    propagate_alpha_max: float = 0.99
    propagate_alpha_power: float = 0.7
    # Neighbours per item in the propagation graph.
    propagate_neighbors: int = 10
    # Fewer queries make the graph nearly complete and shared words drag items across.
    propagate_min_queries: int = 20
    # Weight of a query's own prototype probabilities as its seed.
    propagate_prior: float = 0.3
    # Share of each category's most similar labelled item (an example or its name) in the
    # similarities that seed propagation, beside the prototype's: all-way 5-shot +0.005 to
    # +0.016 on each of 6 held-out sets; 5-way within +-0.001.
    example_share: float = 0.3
    # Power on propagated probabilities: calibration error 0.04-0.11 against 0.15-0.22.
    sharpen: float = 1.5
    # Word features of the task's titles joined at this weight to the encoder's (closed sets of
    # 2+ categories): all-way 5-shot +0.006 to +0.017 and 1-shot +0.001 to +0.013 on each of 6
    # held-out sets, 5-way within +-0.005; 1.0 lost 0.004 at 5-way.
    word_weight: float = 0.7
    # ... hashed to this many dimensions (128: level to -0.003).
    word_dims: int = 256
    # Open set: the threshold never falls below this quantile of leave-one-out similarities.
    open_set_quantile: float = 0.1
    # "separate": the cut between in-category and other-category similarities; "quantile".
    open_set_rule: str = "separate"
    # With 2+ categories and enough queries the support's threshold is averaged at this weight
    # with the queries' own (mixture): new-category F1 0.442 -> 0.458.
    open_set_query_weight: float = 0.5
    # Fewest queries for that mixture threshold.
    mixture_min_queries: int = 50
    # Fewest leave-one-out similarities for a threshold from the support.
    min_loo_for_threshold: int = 3
    # Threshold with nothing to leave out and no trained model: the 10% quantile of 1-shot
    # queries' similarity to their own prototype, raw and after centring.
    fallback_threshold_raw: float = 0.15
    fallback_threshold_centred: float = -0.05

    def __post_init__(self) -> None:
        _check_types(self, "EngineConstants")
        _check_bounds(self, "EngineConstants", _ENGINE_UPPER_BOUNDS)
        checks = [
            (self.name_weight >= 0, "name_weight must be >= 0"),
            (0.0 <= self.names_prior_floor <= 1.0, "names_prior_floor must be in [0, 1]"),
            (self.names_loo_slack >= 0, "names_loo_slack must be >= 0"),
            (0.0 <= self.name_rank_max_share <= 1.0, "name_rank_max_share must be in [0, 1]"),
            (self.name_rank_min_queries >= 1, "name_rank_min_queries must be >= 1"),
            (self.hub_correction >= 0, "hub_correction must be >= 0"),
            (0.0 <= self.example_share <= 1.0, "example_share must be in [0, 1]"),
            (self.hub_neighbors >= 1, "hub_neighbors must be >= 1"),
            (self.reestimate_weight >= 0, "reestimate_weight must be >= 0"),
            (self.reestimate_max_per_category >= 0, "reestimate_max_per_category must be >= 0"),
            (0.0 <= self.propagate_alpha < 1.0, "propagate_alpha must be in [0, 1)"),
            (
                0.0 <= self.propagate_alpha_min <= self.propagate_alpha_max < 1.0,
                "propagate_alpha_min <= propagate_alpha_max must lie in [0, 1)",
            ),
            (self.propagate_alpha_power > 0, "propagate_alpha_power must be > 0"),
            (self.propagate_neighbors >= 1, "propagate_neighbors must be >= 1"),
            (self.propagate_prior >= 0, "propagate_prior must be >= 0"),
            (self.propagate_min_queries >= 2, "propagate_min_queries must be >= 2"),
            (self.sharpen > 0, "sharpen must be > 0"),
            (self.word_weight >= 0, "word_weight must be >= 0"),
            (self.word_dims >= 1, "word_dims must be >= 1"),
            (0.0 <= self.open_set_quantile < 1.0, "open_set_quantile must be in [0, 1)"),
            (self.open_set_rule in ("separate", "quantile"), "open_set_rule: separate|quantile"),
            (0.0 <= self.open_set_query_weight <= 1.0, "open_set_query_weight must be in [0, 1]"),
            (self.mixture_min_queries >= 2, "mixture_min_queries must be >= 2"),
            (self.min_loo_for_threshold >= 1, "min_loo_for_threshold must be >= 1"),
        ]
        _raise_first("EngineConstants", checks)

    @classmethod
    def from_dict(cls, data: dict) -> EngineConstants:
        """Build from a dict, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay on the projection (keeps it near the identity).
        temperature: initial scale of cosine logits (learned during meta-training).
        seed: seed for episode sampling, initialisation and the open-set mixture.
        device: "auto" | "cpu" | "cuda" | "cuda:N" for meta-training and the propagation
            graph's neighbour search (a GPU this machine lacks: the CPU).
        engine: the measured constants of classification (``EngineConstants``).
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
    seed: int = 0
    device: str = "auto"
    engine: EngineConstants = field(default_factory=EngineConstants)

    def __post_init__(self) -> None:
        if not isinstance(self.engine, EngineConstants):
            raise ValidationError(
                f"CategoryConfig: engine must be EngineConstants, got {self.engine!r}"
            )
        _check_types(self, "CategoryConfig")
        _check_bounds(self, "CategoryConfig", _UPPER_BOUNDS)
        checks = [
            (self.rank >= 0, "rank must be >= 0"),
            (self.episodes >= 0, "episodes must be >= 0"),
            (self.n_way >= 2, "n_way must be >= 2"),
            (self.k_shot_max >= 1, "k_shot_max must be >= 1"),
            (self.n_query >= 1, "n_query must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.temperature > 0, "temperature must be > 0"),
            (bool(self.encoder) and len(self.encoder) <= 200, "encoder must be named"),
            (self.seed >= 0, "seed must be >= 0"),
            (len(self.device) <= 16, "device must be a device name"),
        ]
        _raise_first("CategoryConfig", checks)

    def to_dict(self) -> dict:
        """A JSON-ready copy (the engine constants nested under "engine")."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CategoryConfig:
        """Build from a dict, ignoring unknown keys (configs written by newer versions).

        Engine constants may come nested under "engine" or, as in flat configs, beside the
        settings; the nested ones win.
        """
        names = {f.name for f in fields(cls)} - {"engine"}
        engine = {k: v for k, v in data.items() if k in _ENGINE_FIELDS}
        nested = data.get("engine")
        if nested is not None and not isinstance(nested, dict):
            raise ValidationError(f"CategoryConfig: engine must be a mapping, got {nested!r}")
        engine.update(nested or {})
        settings = {k: v for k, v in data.items() if k in names}
        return cls(**settings, engine=EngineConstants.from_dict(engine))


_ENGINE_FIELDS = frozenset(f.name for f in fields(EngineConstants))

# upper bounds, so a config.json from elsewhere cannot ask for hours of work or huge tensors
_UPPER_BOUNDS = {
    "rank": 4096,
    "episodes": 1_000_000,
    "n_way": 1000,
    "k_shot_max": 1000,
    "n_query": 10_000,
    "lr": 10.0,
    "weight_decay": 10.0,
    "temperature": 1000.0,
    "seed": 2**32 - 1,
}
_ENGINE_UPPER_BOUNDS = {
    "name_weight": 100.0,
    "names_loo_slack": 1000,
    "name_rank_min_queries": 1_000_000,
    "hub_correction": 10.0,
    "hub_neighbors": 10_000,
    "reestimate_weight": 100.0,
    "reestimate_max_per_category": 1e6,
    "propagate_alpha_power": 100.0,
    "propagate_neighbors": 1000,
    "propagate_min_queries": 1_000_000,
    "propagate_prior": 100.0,
    "sharpen": 100.0,
    "word_weight": 100.0,
    "word_dims": 4096,
    "mixture_min_queries": 1_000_000,
    "min_loo_for_threshold": 1_000_000,
    "fallback_threshold_raw": 1.0,
    "fallback_threshold_centred": 1.0,
}


def _check_types(obj, what: str) -> None:
    """Each value has its default's type (a config.json may not)."""
    for f in fields(obj):
        if f.default is MISSING:  # nested blocks check themselves
            continue
        value, default = getattr(obj, f.name), f.default
        kind = float if isinstance(default, float) else type(default)
        ok = isinstance(value, int | float) if kind is float else isinstance(value, kind)
        if not ok or (kind is not bool and isinstance(value, bool)):
            raise ValidationError(f"{what}: {f.name} must be {kind.__name__}, got {value!r}")


def _check_bounds(obj, what: str, bounds: dict) -> None:
    too_big = [name for name, hi in bounds.items() if not getattr(obj, name) <= hi]
    if too_big:
        name = too_big[0]
        raise ValidationError(
            f"{what}: {name} must be <= {bounds[name]:,}, got {getattr(obj, name)!r}"
        )


def _raise_first(what: str, checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ValidationError(f"{what}: {message}")
