"""CategoryConfig: every knob of the new-category engine, validated when it is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from metarec_core.errors import ValidationError

# Support tuning's measured setting: ``CategoryConfig(tune_steps=SUPPORT_TUNING_STEPS)`` turns it
# on (it is off by default, see ``tune_steps``).
SUPPORT_TUNING_STEPS = 30


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
        name_weight_by_shots: scale the name weight by 2 / sqrt(examples in the category)
            (capped at 2x): the name matters more when a category has one example.
        name_nodes: when the name prior is used, the category names also join the labelled
            items of label propagation's graph, so labels spread from a name to the products
            that read like it. On held-out Instacart departments (3 folds) 5-way 1-shot
            +0.000 to +0.005 per fold with 15 queries per category and +0.005 to +0.008 with 5,
            5-way 5-shot +0.000 to +0.006, all-way and tasks with every other product as queries
            within +-0.001, meaningless names ("category 7") unchanged.
        refine_steps: soft k-means steps that refine prototypes with the unlabelled queries
            (0 = off; it hurt on held-out Instacart departments, label propagation replaced it).
        hub_correction: before the prototype probabilities are formed, each prototype's
            similarities are lowered by this share of its mean similarity to its
            ``hub_neighbors`` closest queries (``protonet.hub_corrected``; 0 = off), so a broad
            category near the centre of the task does not take its neighbours' products. Only
            with at least ``hub_neighbors`` queries. On held-out Instacart departments (3 folds,
            untuned) 0.25 raised all-way 1-shot accuracy by 0.007-0.028 per fold, all-way 5-shot
            by 0.001-0.016, 5-way 1-shot by 0.002-0.006 and 5-way 5-shot by 0.001-0.003; 5-way
            tasks with every other product of the five categories as queries by 0.001-0.027;
            10-way tasks of 5 queries per category and 3-way tasks of 20 stayed level (-0.001
            to +0.004). 0.5 gained a little more in 5-way tasks but lost 0.009 all-way on one fold;
            1.0 lost up to 0.24 all-way.
        hub_neighbors: queries per prototype that measure how much of a hub it is.
        reestimate_weight: after label propagation, each prototype is moved towards the
            queries its category then holds (``protonet.reestimated_prototypes``, their mean
            weighted by squared probability, added at this weight; 0 = off) and the labels are
            propagated again from there. Only with at most ``reestimate_max_per_category``
            queries per category. On held-out Instacart departments (3 folds, untuned) 0.5 raised
            1-shot accuracy in every fold of 5-way tasks with 15, 30 or 60 queries per category
            (+0.004 to +0.015), of 10-way tasks with 5 or 15 (+0.003 to +0.016) and 3-way
            3-shot tasks with 20 (+0.003 to +0.009); at 5 shots -0.002 to +0.012 there. With
            hundreds of queries per category (every other product of the categories as
            queries, all-way tasks) it lost up to 0.021 at 5 shots: propagation, at its longest
            reach there, already uses what the queries hold. Its probabilities come out a
            little more confident: with the hub correction, expected calibration error (10 bins,
            60 tasks per fold) of 5-way 1-shot tasks of 15 queries per category was 0.015-0.130
            per fold, against 0.016-0.061 with neither, and all-way 0.028-0.072 against
            0.029-0.062.
        reestimate_max_per_category: most queries per category for that second round (at 120
            it had gained +0.004 at 1 shot and lost 0.002 at 5).
        propagate_alpha: label propagation over a k-NN graph of support and queries: how much
            each item takes from its neighbours (0 = off, transductive step disabled). With
            ``propagate_alpha_by_queries`` this value only switches propagation on.
        propagate_alpha_by_queries: set alpha from the task instead, by the queries per category
            (``engine.propagation_alpha``): few queries spread labels a short way, many a long way.
        propagate_neighbors: neighbours per item in that graph.
        propagate_min_queries: propagate only with at least this many queries (and two per
            category): on a handful of items the graph is nearly complete and shared words
            ("organic") drag items into the wrong category.
        propagate_prior: weight of a query's own prototype probabilities as its seed.
        sharpen: power applied to the propagated probabilities (renormalised) so confidences
            match accuracy. With alpha set by the queries per category, 1.5 gave an expected
            calibration error of 0.04-0.05 all-way and 0.09-0.11 in 5-way tasks of 15 queries per
            category on held-out Instacart departments, against 0.15-0.22 unsharpened; tasks
            with hundreds of queries per category would take 2.0 (0.07-0.08, against 0.10).
        open_set_quantile: quantile of the leave-one-out in-category similarities used as the
            open-set threshold (lower = accept more).
        open_set_rule: "separate" (the cut between leave-one-out in-category similarities and
            similarities to the other categories, floored by the quantile) or "quantile".
        open_set_query_weight: with at least ``engine.MIXTURE_MIN_QUERIES`` queries, the
            threshold from the support is averaged at this weight with the queries' own
            (``engine.mixture_threshold`` of each query's best similarity: where the upper of
            two Gaussian components takes over); 0 = the support's alone. Only with two or more
            categories. On held-out Instacart departments (untrained, 3 folds, 6 tasks each:
            half the aisles new and the rest foreign, 3 new aisles among all the others, or 5
            new aisles of 15 queries with 75 foreign products; 1 and 5 shots) 0.5 raised the
            mean F1 of the new categories from 0.442 to 0.458 and the share of foreign products
            rejected in most tasks (hard fold, 1 shot, 3 new aisles: 0.30 -> 0.61), the worst
            task setting losing 0.024; 0.3 gained less (0.453), 0.7 lost up to 0.044. With one
            category and enough examples to leave out, the queries' threshold lost 0.05 of F1
            among every other product (12 aisles per fold, 3-5 shots), so it stays off there.
        tune_steps: support tuning (SetFit-style): gradient steps on a copy of MiniLM's top
            layers with the task's own examples and category names (0 = off, the default;
            ``SUPPORT_TUNING_STEPS`` is the setting measured). It applies only
            when categories have ``tune_max_shots`` examples or fewer on average and there are at
            most ``tune_max_queries`` queries and ``tune_max_categories`` categories, only with
            the MiniLM encoder, and only when the category names describe the support
            (``categories.tuning.tuner_for``). On held-out Instacart departments (3 folds) it
            raised 5-way 1-shot accuracy from 0.732 to 0.738; at 2-3 shots it had added under
            0.01 and at 5 nothing (harder tuning hurt), so it stays off where it only costs time.
            Since the propagation alpha follows the queries per category it no longer helps:
            5-way 1-shot +0.001 (0.736 -> 0.737; -0.004 to +0.008 per fold), and on the same
            folds -0.001 with 5 queries per category, -0.003 with every other product of the
            categories as queries and -0.001 at 10-way, each within its noise. It re-embeds
            every query (seconds per task), so it is off by default since 2026-12-02.
        tune_lr: learning rate of support tuning.
        tune_layers: top transformer layers tuned (the rest stay frozen).
        tune_max_shots: average examples per category at or below which support tuning runs.
        tune_max_queries: most queries for which support tuning runs (every query is embedded
            again, bypassing the embedding cache).
        tune_max_categories: most categories for which support tuning runs. On held-out Instacart
            departments (3 folds, 1 shot) it added 0.006 to 5-way accuracy (0.732 -> 0.738) and
            cost 0.029 all-way (15-30 categories: 0.515 -> 0.486), once the untuned path used
            the category names at 1 shot too. At 10 categories it still added 0.006 (10-way
            1-shot, 100 episodes per fold: 0.616 -> 0.622).
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
    name_weight_by_shots: bool = True
    name_nodes: bool = True
    refine_steps: int = 0
    hub_correction: float = 0.25
    hub_neighbors: int = 30
    reestimate_weight: float = 0.5
    reestimate_max_per_category: float = 60.0
    propagate_alpha: float = 0.9
    propagate_alpha_by_queries: bool = True
    propagate_neighbors: int = 10
    propagate_min_queries: int = 20
    propagate_prior: float = 0.3
    sharpen: float = 1.5
    open_set_quantile: float = 0.1
    open_set_rule: str = "separate"
    open_set_query_weight: float = 0.5
    tune_steps: int = 0
    tune_lr: float = 5e-5
    tune_layers: int = 2
    tune_max_shots: float = 2.0
    tune_max_queries: int = 20000
    tune_max_categories: int = 10
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
            (self.hub_correction >= 0, "hub_correction must be >= 0"),
            (self.hub_neighbors >= 1, "hub_neighbors must be >= 1"),
            (self.reestimate_weight >= 0, "reestimate_weight must be >= 0"),
            (self.reestimate_max_per_category >= 0, "reestimate_max_per_category must be >= 0"),
            (0.0 <= self.propagate_alpha < 1.0, "propagate_alpha must be in [0, 1)"),
            (self.propagate_neighbors >= 1, "propagate_neighbors must be >= 1"),
            (self.propagate_prior >= 0, "propagate_prior must be >= 0"),
            (self.propagate_min_queries >= 2, "propagate_min_queries must be >= 2"),
            (self.sharpen > 0, "sharpen must be > 0"),
            (0.0 <= self.open_set_quantile < 1.0, "open_set_quantile must be in [0, 1)"),
            (self.open_set_rule in ("separate", "quantile"), "open_set_rule: separate|quantile"),
            (0.0 <= self.open_set_query_weight <= 1.0, "open_set_query_weight must be in [0, 1]"),
            (self.tune_steps >= 0, "tune_steps must be >= 0"),
            (self.tune_lr > 0, "tune_lr must be > 0"),
            (self.tune_layers >= 1, "tune_layers must be >= 1"),
            (self.tune_max_shots >= 0, "tune_max_shots must be >= 0"),
            (self.tune_max_queries >= 0, "tune_max_queries must be >= 0"),
            (self.tune_max_categories >= 0, "tune_max_categories must be >= 0"),
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
