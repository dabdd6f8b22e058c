"""Batched scoring of every method for many users at once, with per-item explanations.

``rank_users`` is the engine used by both ``ColdStartModel.recommend`` (strings in and out) and the
evaluation protocol (item rows in and out). Users are processed in chunks of tensors, never one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from metarec_core.coldstart.brands import BRAND_SHARE, brand_matches
from metarec_core.coldstart.episodes import UserBatch, support_tensors, table_rows
from metarec_core.coldstart.net import support_weights
from metarec_core.coldstart.scoring import batch_scores, support_penalty, top_items

NETWORK = ("adapted", "no-adapt", "finetune")  # methods that score with a trained network
NEURAL = (*NETWORK, "prototype")


@dataclass
class Recommendations:
    """What ``ColdStartModel.recommend`` returns (all CPU-side).

    Attributes:
        frame: one row per (user, rank): user_id, rank (1..top), item_id, score, explanation
            (support item ids that contributed most, "|"-joined), fallback (popularity used).
        method: the method that ranked.
        fallback_users: users with no known support item (served by popularity).
        users_without_items: users with nothing left to recommend (their support holds every
            item of the catalogue).
        skipped_items: support rows skipped because their item is not in the catalogue.
        skipped_by_user: user_id -> skipped rows (users with at least one).
        loss_curves: user_id -> inner-loop support loss before each step and after the last one
            (adapted/finetune methods only).
        elapsed_s: wall time of the call.
        popularity_share: share of the shop's item counts mixed into the score (a model of a
            new shop only; coldstart/shop_popularity).
    """

    frame: pd.DataFrame
    method: str
    fallback_users: list[str] = field(default_factory=list)
    users_without_items: list[str] = field(default_factory=list)
    skipped_items: int = 0
    skipped_by_user: dict[str, int] = field(default_factory=dict)
    loss_curves: dict[str, list[float]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    popularity_share: float = 0.0


@dataclass
class Ranked:
    """Row-level output of ``rank_users``: top item rows and scores, explanations, loss curves."""

    items: np.ndarray  # (U, top) int64 item rows
    scores: np.ndarray  # (U, top) float32
    explain: np.ndarray  # (U, top, E) int64 support rows that contributed most (-1 none)
    curves: np.ndarray | None  # (U, steps + 1) or None


def chunk_size(k: int, n_items: int, budget: int = 24_000_000) -> int:
    """Users per chunk so that the (B, K, N) item-item rows stay around ``budget`` floats."""
    return int(max(1, min(1024, budget // max(1, k * n_items))))


def _contributions(
    model, method: str, batch: UserBatch, phi, top: torch.Tensor, tables
) -> torch.Tensor:
    """(B, K, top) contribution of each support item to each recommended item's score."""
    s, m = batch.support, batch.mask
    if method in NETWORK:
        net = model.pretrained if method == "finetune" else model.meta
        w = support_weights(phi, net.pos[batch.rank], m)  # (B, K)
        norm = torch.sqrt(w.sum(1, keepdim=True) + 1e-6)[..., None]
        latent = torch.einsum("bkd,btd->bkt", tables.e_in[s], tables.e_out[top]) / norm
        nb = batch.rows.gather(2, top[:, None, :].expand(-1, s.shape[1], -1))
        beta, eps = net.mix()
        beta = beta + phi["c"][:, 1, None, None]  # the user's adapted item-item weight
        share = nb / (eps + (w[..., None] * nb).sum(1, keepdim=True))  # d log(eps + w@R) / dw
        return w[..., None] * (latent + beta * share)
    if method == "prototype":
        return torch.einsum("bkd,btd->bkt", tables.e_out[s], tables.e_out[top]) * m[..., None]
    if method in ("item-knn", "ease"):
        return batch.rows.gather(2, top[:, None, :].expand(-1, s.shape[1], -1))
    if method == "text-similarity":
        return torch.einsum("bkd,btd->bkt", model.text[s], model.text[top]) * m[..., None]
    return torch.zeros(*s.shape, top.shape[1], device=s.device)


def _method_scores(model, method: str, batch: UserBatch, tables):
    """(scores (B, N), loss curve or None, fast weights or None) of one chunk."""
    cfg = model.config
    if method == "adapted":
        return batch_scores(model.meta, batch, cfg.inner_steps, True, tables=tables["meta"])
    if method == "no-adapt":
        return batch_scores(model.meta, batch, 0, True, tables=tables["meta"])
    if method == "finetune":
        return batch_scores(
            model.pretrained,
            batch,
            cfg.finetune_steps,
            True,
            lr_override=cfg.finetune_lr,
            tables=tables["pretrained"],
        )
    s, m = batch.support, batch.mask
    if method == "prototype":
        e = torch.nn.functional.normalize(tables["meta"].e_out, dim=-1)
        proto = (e[s] * m[..., None]).sum(1)  # (B, D)
        return proto @ e.T, None, None
    if method == "popularity":
        return model.pop_t[None, :].expand(s.shape[0], -1).clone(), None, None
    if method in ("item-knn", "ease"):
        return batch.rows.sum(1), None, None
    if method == "text-similarity":
        return encoder_cosine(model.text, s, m), None, None
    raise ValueError(method)


def standardised(scores: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """(B, N) scores shifted and scaled to mean 0, standard deviation ``scale`` per user (a new
    tensor). The deviation is the unbiased one ``Tensor.std`` gives, taken from the centred
    rows' norms, which the CPU computes far faster than ``std`` over rows this wide."""
    centred = scores - scores.mean(1, keepdim=True)
    norm = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
    return centred.mul_(scale / (norm / max(scores.shape[1] - 1, 1) ** 0.5 + 1e-6))


WORDS_SHARE = 0.25  # word overlap's share of a new shop's score (benchmarks/README.md)
ENCODER_SHARE = 0.3  # the encoder cosine's share of the network and words mixed (same README)


def with_words(net: torch.Tensor, words: torch.Tensor, share: float = WORDS_SHARE) -> torch.Tensor:
    """(B, N) the network's and the word overlap's scores, each standardised, mixed with
    ``share`` on the words (``words`` (B, N), or one row (1, N) shared by every user)."""
    return standardised(net, 1.0 - share).add_(standardised(words, share))


def encoder_cosine(text: torch.Tensor, support: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N) summed cosine of every item's text embedding (``text`` (N, T), unit rows) to each
    user's valid support items (``support``, ``mask`` (B, K))."""
    return (text[support] * mask[..., None]).sum(1) @ text.T


def with_popularity(scores: torch.Tensor, popularity: torch.Tensor, share: float) -> torch.Tensor:
    """(B, N) ``scores`` and a shop's (N,) log item counts mixed as ``with_words`` mixes words,
    with ``share`` on the counts (``scores`` unchanged at share 0)."""
    if share <= 0:
        return scores
    return with_words(scores, popularity[None, :], share)  # one row of counts, standardised once


def chunk_scores(model, method: str, chunk: list[np.ndarray], tables, histories=None):
    """(batch, scores (B, N), loss curve or None, fast weights or None) of one chunk of users'
    support rows, with a new shop's word overlap and popularity mixed in and popularity for
    empty supports. ``histories``: the rows each user's item-item statistics leave out when
    the shop's log holds the users' own supports (default: the supports themselves)."""
    dev, n = model.device, len(model.catalogue)
    support, mask, rank = support_tensors(chunk, model.meta.pos.shape[0], dev)
    table = model.knn_t if method == "item-knn" else model.ease_t
    if model.loo is not None and method in NETWORK:
        own = chunk if histories is None else histories
        rows = model.loo.rows(support, mask, [np.asarray(c) for c in own])
    elif method in ("popularity", "text-similarity"):
        rows = torch.zeros(*support.shape, 1, device=dev)
    else:
        rows = table_rows(*table, support, mask, n)
    batch = UserBatch(support, mask, rank, rows)
    scores, curve, phi = _method_scores(model, method, batch, tables)
    if model.words is not None and method in NETWORK:  # a new shop: its text beside the network
        scores = with_words(scores, model.words.scores(support, mask))
        scores = with_words(scores, encoder_cosine(model.text, support, mask), ENCODER_SHARE)
        if model.brands is not None:
            scores = with_words(scores, brand_matches(model.brands, support, mask), BRAND_SHARE)
    if model.shop_popularity is not None and method in NETWORK:
        scores = with_popularity(scores, model.shop_popularity, model.popularity_share)
    empty = mask.sum(1) == 0
    scores = torch.where(empty[:, None], model.pop_t[None, :], scores)
    return batch, scores, curve, phi


@torch.no_grad()
def rank_users(
    model,
    supports: list[np.ndarray],
    method: str,
    top: int,
    exclude_support: bool = True,
    n_explain: int = 2,
) -> Ranked:
    """Top-``top`` item rows for each user's support rows (empty support -> popularity)."""
    n = len(model.catalogue)
    top = min(top, n)
    tables = model.tables()
    out_i, out_s, out_e, curves = [], [], [], []
    k_max = max((len(s) for s in supports), default=1) or 1
    step = chunk_size(k_max, n)
    for start in range(0, len(supports), step):
        chunk = supports[start : start + step]
        batch, scores, curve, phi = chunk_scores(model, method, chunk, tables)
        support, mask = batch.support, batch.mask
        if exclude_support:
            scores = scores + support_penalty(batch, n)
        vals, idx = top_items(scores, top)
        contrib = _contributions(
            model,
            method,
            batch,
            phi,
            idx,
            tables["meta"] if method != "finetune" else tables["pretrained"],
        )
        contrib = contrib.masked_fill(mask[..., None] == 0, -float("inf"))
        ce, ci = contrib.topk(min(n_explain, support.shape[1]), dim=1)  # (B, E, top)
        ex = torch.where(ce > 0, support.gather(1, ci.flatten(1)).view_as(ci), -1)
        out_i.append(idx.cpu().numpy())
        out_s.append(vals.float().cpu().numpy())
        out_e.append(ex.permute(0, 2, 1).cpu().numpy())
        if curve is not None and curve.shape[1] > 1:
            curves.append(curve.cpu().numpy())
    return Ranked(
        np.concatenate(out_i) if out_i else np.zeros((0, top), np.int64),
        np.concatenate(out_s) if out_s else np.zeros((0, top), np.float32),
        np.concatenate(out_e) if out_e else np.zeros((0, top, n_explain), np.int64),
        np.concatenate(curves) if curves else None,
    )
