"""Evaluation: ranking metrics as pure functions and the cold-start protocol.

evaluate_dataset(interactions, items, ks=(3,), seeds=(0, 1, 2), methods=METHODS, config=None,
                 progress=no_progress, encoder=None) -> EvalReport
"""

from metarec_core.evaluate.metrics import (
    coverage,
    hr_at_k,
    mean_ci95,
    mean_popularity,
    ndcg_at_k,
    recall_at_k,
)

__all__ = [
    "EvalReport",
    "coverage",
    "evaluate_dataset",
    "hr_at_k",
    "mean_ci95",
    "mean_popularity",
    "ndcg_at_k",
    "recall_at_k",
]


def __getattr__(name: str):
    if name == "evaluate_dataset":
        from metarec_core.evaluate.coldstart_eval import evaluate_dataset

        return evaluate_dataset
    if name == "EvalReport":
        from metarec_core.evaluate.protocol import EvalReport

        return EvalReport
    raise AttributeError(name)
