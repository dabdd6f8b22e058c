"""Meta-training: fit baselines on the warm users, then train the scorer on episodes.

Entry point: ``train_model(interactions, items, config, progress, encoder) -> ColdStartModel``.
Stages reported to ``progress``: "embed", "baselines", "meta-train" (metrics: loss), "pretrain"
(the conventionally trained twin used by the ``finetune`` method), "validate".
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from metarec_core.coldstart import baselines as bl
from metarec_core.coldstart.config import ColdStartConfig
from metarec_core.coldstart.data import Catalogue, interaction_matrix, pad, user_sequences
from metarec_core.coldstart.episodes import EaseLOO, UserBatch, support_tensors
from metarec_core.coldstart.net import ColdStartNet
from metarec_core.coldstart.scoring import batch_scores, support_penalty
from metarec_core.device import resolve_device
from metarec_core.embed.encoder import MINILM_ID
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)
LR_RATE_BOOST = 10.0  # outer learning rate of the Meta-SGD log inner rates, relative to cfg.lr
PATIENCE_STEPS = 60  # stop when validation has not improved for this many steps (>= 1 epoch)
VAL_MAX_USERS = 1000  # validation users on large logs (5% of the eligible ones up to this)
VAL_MIN_USERS = 150  # validation users on small logs (at most a fifth of the eligible ones)
ADAPTATION_SCALES = (1.0, 0.5, 0.25, 0.0)  # inner-rate factors tried on validation after training
# support sizes that share one inner-rate factor: (smallest, largest, size checked on validation)
SIZE_GROUPS = ((1, 1, 1), (2, 3, 3), (4, 6, 5), (7, 10_000, 10))
MIN_CHECK_USERS = 20  # fewer validation users long enough for a group: its learned rates stay


@dataclass
class Episode:
    """One training/validation task: support rows, query rows, the user's whole history."""

    support: np.ndarray
    query: np.ndarray
    history: np.ndarray


def item_text_embeddings(
    catalogue: Catalogue, encoder=None, progress: Progress = no_progress
) -> np.ndarray:
    """(N, T) float32 text embeddings of the catalogue through the persistent embedding cache
    (``encoder`` None: MiniLM, loaded only if a text is not cached yet)."""
    from metarec_core.embed.service import lazy_encoder, shared_cache

    enc = encoder if encoder is not None else lazy_encoder("minilm")
    return shared_cache(enc).embed(list(catalogue.texts), progress=progress).astype(np.float32)


def sample_episode(seq: np.ndarray, k: int, start: int, max_query: int) -> Episode | None:
    """Support = seq[start:start+k]; query = later distinct items not in the support (capped)."""
    support = seq[start : start + k]
    later = pd.unique(seq[start + k :])
    query = later[~np.isin(later, support)][:max_query]
    if len(support) == 0 or len(query) == 0:
        return None
    return Episode(support, np.asarray(query, np.int64), seq)


def sample_epoch(
    seqs: list[np.ndarray], cfg: ColdStartConfig, rng: np.random.Generator
) -> list[Episode]:
    """One episode per user with >= 2 interactions: k from [k_min, k_max], half at a random offset."""
    out = []
    for seq in seqs:
        if len(seq) < 2:
            continue
        k = int(rng.integers(cfg.k_min, min(cfg.k_max, len(seq) - 1) + 1))
        start = int(rng.integers(0, len(seq) - k)) if rng.random() < 0.5 else 0
        ep = sample_episode(seq, k, start, cfg.max_query)
        if ep is not None:
            out.append(ep)
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def epoch_batches(
    episodes: list[Episode], batch_size: int, rng: np.random.Generator
) -> list[list[Episode]]:
    """Meta-batches of episodes with similar support sizes (less padding), in random order."""
    order = sorted(range(len(episodes)), key=lambda i: len(episodes[i].support))  # stable
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [[episodes[i] for i in chunks[j]] for j in rng.permutation(len(chunks))]


def make_batch(
    episodes: list[Episode],
    net: ColdStartNet,
    loo: EaseLOO | None,
    n_items: int,
    device: torch.device,
) -> tuple[UserBatch, torch.Tensor, torch.Tensor]:
    """UserBatch with leave-user-out EASE rows, plus padded queries (B, Q) and their mask."""
    support, mask, rank = support_tensors([e.support for e in episodes], net.pos.shape[0], device)
    if loo is not None:
        rows = loo.rows(support, mask, [e.history for e in episodes])
    else:
        rows = torch.zeros(*support.shape, n_items, device=device)
    query = torch.as_tensor(pad([e.query for e in episodes]), device=device)
    return UserBatch(support, mask, rank, rows), query.clamp(min=0), (query >= 0).float()


def query_loss(
    scores: torch.Tensor, batch: UserBatch, query: torch.Tensor, qmask: torch.Tensor
) -> torch.Tensor:
    """Mean over users of the mean softmax cross-entropy of their query items (support masked)."""
    masked = scores + support_penalty(batch)
    logp = torch.log_softmax(masked, dim=-1)
    per_user = -(logp.gather(1, query) * qmask).sum(1) / qmask.sum(1).clamp(min=1.0)
    return per_user.mean()


def ndcg10(
    scores: torch.Tensor, batch: UserBatch, query: torch.Tensor, qmask: torch.Tensor
) -> float:
    """Mean NDCG@10 of a batch (support masked) — the validation signal."""
    top = (scores + support_penalty(batch)).topk(10, dim=1).indices  # (B, 10)
    hit = (top[:, :, None] == query[:, None, :]) & (qmask[:, None, :] > 0)  # (B, 10, Q)
    gains = hit.any(2).float() / torch.log2(torch.arange(2, 12, device=top.device).float())
    nq = qmask.sum(1).clamp(max=10).long()
    ideal = torch.cumsum(1.0 / torch.log2(torch.arange(2, 12, device=top.device).float()), 0)
    return float((gains.sum(1) / ideal[(nq - 1).clamp(min=0)]).mean())


def train_net(
    net: ColdStartNet,
    train_seqs: list[np.ndarray],
    val: list[Episode],
    loo: EaseLOO | None,
    cfg: ColdStartConfig,
    inner_steps: int,
    stage: str,
    progress: Progress,
    device: torch.device,
) -> dict:
    """Episodic training (inner_steps > 0: meta-learning; 0: conventional) with best-epoch keeping."""
    rng = np.random.default_rng(cfg.seed + (0 if inner_steps else 7))
    opt = make_optimiser(net, cfg, learn_rates=inner_steps > 0 and cfg.learn_inner_lr)
    n_items = net.text.shape[0]
    per_epoch = max(1, -(-sum(len(s) >= 2 for s in train_seqs) // cfg.batch_size))
    epochs = max(cfg.epochs, -(-cfg.min_steps // per_epoch))
    total = epochs * per_epoch
    if cfg.max_steps:  # big logs: a bounded number of steps (the last epoch may be partial)
        epochs = min(epochs, -(-cfg.max_steps // per_epoch))
        total = min(total, cfg.max_steps)
    patience = max(1, -(-PATIENCE_STEPS // per_epoch))  # epochs without a better validation
    done, losses, val_curve = 0, [], []
    best, best_state = -1.0, None
    for epoch in range(epochs):
        if val and stalled(val_curve, patience):
            log.info("%s: validation has not improved for %d epochs; stopping", stage, patience)
            note = f"stopped after epoch {epoch}: validation stopped improving"
            progress(ProgressEvent(stage, total, total, note))
            break
        chunks = epoch_batches(sample_epoch(train_seqs, cfg, rng), cfg.batch_size, rng)
        for chunk in chunks[: total - done]:
            batch, query, qmask = make_batch(chunk, net, loo, n_items, device)
            scores = batch_scores(net, batch, inner_steps, cfg.first_order)[0]
            loss = query_loss(scores, batch, query, qmask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            losses.append(float(loss.detach()))
            progress(
                ProgressEvent(
                    stage, done, total, f"epoch {epoch + 1}/{epochs}", {"loss": losses[-1]}
                )
            )
        score = validate(net, val, loo, inner_steps, cfg, device) if val else float(epoch)
        val_curve.append(score)
        log.info(
            "%s epoch %d: loss %.4f val ndcg@10 %.4f",
            stage,
            epoch + 1,
            np.mean(losses[-per_epoch:]),
            score,
        )
        if score > best:
            best, best_state = score, copy.deepcopy(net.state_dict())
    if best_state is not None:
        net.load_state_dict(best_state)
    return {"loss": losses, "val_ndcg10": val_curve, "best_epoch": int(np.argmax(val_curve)) + 1}


def make_optimiser(net: ColdStartNet, cfg: ColdStartConfig, learn_rates: bool) -> torch.optim.Adam:
    """Adam over the net's weights: ``weight_decay`` (L2) on the id embeddings only, and the
    inner learning rates (``log_lr_*``) only when ``learn_rates`` (Meta-SGD); otherwise they
    stay at ``inner_lr`` (MAML with one fixed rate)."""
    named = list(net.named_parameters())
    ids = [p for n, p in named if n in ("id_in", "id_out")]
    rest = [p for n, p in named if "log_lr" not in n and n not in ("id_in", "id_out")]
    groups = [{"params": rest}, {"params": ids, "weight_decay": cfg.weight_decay}]
    if learn_rates:  # the inner learning rates move in log space: a larger step lets them adapt
        rates = [p for n, p in named if "log_lr" in n]
        groups.append({"params": rates, "lr": cfg.lr * LR_RATE_BOOST})
    return torch.optim.Adam(groups, lr=cfg.lr)


def stalled(curve: list[float], patience: int) -> bool:
    """True when the best value of ``curve`` is at least ``patience`` entries old."""
    return bool(curve) and len(curve) - 1 - int(np.argmax(curve)) >= patience


def validate(
    net: ColdStartNet,
    val: list[Episode],
    loo: EaseLOO | None,
    inner_steps: int,
    cfg: ColdStartConfig,
    device: torch.device,
) -> float:
    """Mean NDCG@10 on held-out warm users' protocol episodes (first k support)."""
    n_items, total, count = net.text.shape[0], 0.0, 0
    for start in range(0, len(val), cfg.batch_size):
        chunk = val[start : start + cfg.batch_size]
        batch, query, qmask = make_batch(chunk, net, loo, n_items, device)
        with torch.no_grad():  # torch.func.grad still runs the inner loop under no_grad
            scores = batch_scores(net, batch, inner_steps, True)[0]
        total += ndcg10(scores, batch, query, qmask) * len(chunk)
        count += len(chunk)
    return total / max(count, 1)


def check_adaptation(
    net: ColdStartNet,
    val: list[Episode],
    loo: EaseLOO | None,
    cfg: ColdStartConfig,
    device: torch.device,
) -> dict:
    """Choose how far the inner loop moves a new user, per support size, on the validation users.

    For each group of support sizes (``SIZE_GROUPS``) the validation users get an episode of one
    size of that group (their first k items; the model's own k for its group), and the learned
    inner rates are tried at full strength and scaled down (``ADAPTATION_SCALES``, down to 0 =
    no adaptation); the best is kept for the whole group (ties go to the stronger step). On
    small logs the learned rates can overfit, and a smaller step, or none (``adapted`` then
    serves what ``no-adapt`` does), wins for some sizes; the training report says which.
    """
    n_sizes = int(net.log_lr_n.shape[0])
    if not val or cfg.inner_steps == 0:
        return {"kept": True, "scale": 1.0, "scale_by_size": [1.0] * n_sizes, "groups": []}
    learned = net.log_lr_n.detach().clone()
    chosen = torch.ones_like(learned)  # the factor kept for each support size
    groups = []
    for lo, hi, k in SIZE_GROUPS:
        hi = min(hi, n_sizes)
        if lo > hi:
            continue
        k = cfg.k if lo <= cfg.k <= hi else min(k, hi)
        episodes = _episodes_at(val, k)
        if len(episodes) < MIN_CHECK_USERS:
            groups.append({"sizes": [lo, hi], "k": k, "scale": 1.0, "n_users": len(episodes)})
            continue
        scores: dict[float, float] = {}
        for scale in ADAPTATION_SCALES:
            with torch.no_grad():
                net.log_lr_n.copy_(learned + float(np.log(scale)) if scale > 0 else learned)
            steps = cfg.inner_steps if scale > 0 else 0
            scores[scale] = validate(net, episodes, loo, steps, cfg, device)
        best = max(ADAPTATION_SCALES, key=lambda f: (scores[f], f))
        chosen[lo - 1 : hi] = best
        groups.append(
            {
                "sizes": [lo, hi],
                "k": k,
                "scale": best,
                "n_users": len(episodes),
                "val_by_scale": {str(f): v for f, v in scores.items()},
            }
        )
    with torch.no_grad():  # a scale of 0: exp(-30), the inner loop no longer moves the user
        on = chosen > 0
        net.log_lr_n.copy_(torch.where(on, learned + chosen.clamp(min=1e-12).log(), -30.0))
    by_size = [float(v) for v in chosen.cpu()]
    if min(by_size) < 1.0:
        log.info("inner-loop step per support size, chosen on validation: %s", by_size)
    own = next((g for g in groups if g["k"] == cfg.k and "val_by_scale" in g), None)
    return {
        "kept": bool(max(by_size) > 0),
        "scale": by_size[min(cfg.k, n_sizes) - 1],
        "scale_by_size": by_size,
        "val_adapted": own["val_by_scale"]["1.0"] if own else None,
        "val_no_adapt": own["val_by_scale"]["0.0"] if own else None,
        "groups": groups,
    }


def _episodes_at(val: list[Episode], k: int) -> list[Episode]:
    """The validation users' protocol episodes with support size ``k`` (users with nothing after
    their first k items have no episode)."""
    out = [sample_episode(e.history, k, 0, 10_000) for e in val]
    return [e for e in out if e is not None]


def split_validation(
    seqs: list[np.ndarray], cfg: ColdStartConfig
) -> tuple[list[np.ndarray], list[Episode]]:
    """Hold out warm users as protocol episodes for epoch selection and the adaptation check.

    5% of them (at most ``VAL_MAX_USERS``) on large logs; small logs give more, up to
    ``VAL_MIN_USERS`` but never more than a fifth, because a few dozen users make a validation
    score too noisy to choose by.
    """
    rng = np.random.default_rng(cfg.seed + 1)
    eligible = [i for i, s in enumerate(seqs) if len(s) > cfg.k]
    n_val = min(VAL_MAX_USERS, max(len(eligible) // 20, min(VAL_MIN_USERS, len(eligible) // 5)))
    if n_val < 20:
        return seqs, []
    val_idx = set(rng.choice(eligible, n_val, replace=False).tolist())
    val = [sample_episode(seqs[i], cfg.k, 0, 10_000) for i in sorted(val_idx)]
    train = [s for i, s in enumerate(seqs) if i not in val_idx]
    return train, [e for e in val if e is not None]


def fit_statistics(
    seqs: list[np.ndarray], n_items: int, cfg: ColdStartConfig, progress: Progress
) -> dict:
    """Popularity, item-knn and EASE fit on the training users (EASE inverse kept for LOO rows)."""
    progress(ProgressEvent("baselines", 0, 3, "popularity"))
    x = interaction_matrix(seqs, n_items)
    pop = bl.popularity_counts(x)
    progress(ProgressEvent("baselines", 1, 3, "item-knn"))
    knn = bl.itemknn_table(x, cfg.neighbours)
    progress(ProgressEvent("baselines", 2, 3, "ease"))
    subset = bl.ease_subset(pop, cfg.ease_max_items)
    p = bl.ease_inverse(x, subset, cfg.ease_lambda) if len(subset) else np.zeros((0, 0), np.float32)
    ease = bl.ease_table(p, subset, n_items, cfg.neighbours)
    progress(ProgressEvent("baselines", 3, 3, "done"))
    return {"pop": pop, "knn": knn, "ease": ease, "p": p, "subset": subset}


def train_model(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    config: ColdStartConfig | None = None,
    progress: Progress = no_progress,
    encoder=None,
    init: dict[str, dict[str, torch.Tensor]] | None = None,
):
    """Train the cold-start engine on (warm) users' interactions; returns a ColdStartModel.

    Args:
        interactions: canonical interactions (user_id, item_id, position, ...).
        items: canonical items (item_id, title, text, ...): the catalogue served.
        config: hyper-parameters (defaults when None).
        progress: callback for stage progress and the live loss.
        encoder: text encoder; None = the packaged MiniLM through the persistent cache.
        init: starting weights per network ("meta", "pretrained"), e.g. another shop's model's
            catalogue-independent weights (coldstart/transfer.py); id parameters start fresh.
    """
    cfg = config or ColdStartConfig()
    return fit(prepare(interactions, items, cfg, progress, encoder), cfg, progress, init)


@dataclass
class Prepared:
    """What every training on one log shares: catalogue, sequences, text, statistics, split."""

    catalogue: Catalogue
    seqs: list[np.ndarray]
    skipped: int
    text: np.ndarray  # (N, T)
    stats: dict
    train_seqs: list[np.ndarray]
    val: list[Episode]
    loo: EaseLOO | None
    device: torch.device
    encoder_id: str
    seconds: float


def prepare(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    cfg: ColdStartConfig,
    progress: Progress = no_progress,
    encoder=None,
) -> Prepared:
    """Index, embed, fit the baselines and hold out validation users (stages embed, baselines)."""
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    catalogue = Catalogue.from_items(items)
    _, seqs, skipped = user_sequences(interactions, catalogue.index())
    if sum(len(s) >= 2 for s in seqs) < 2:
        raise ValidationError("interactions: need at least 2 users with 2+ known items to train")
    text = item_text_embeddings(catalogue, encoder, progress)
    stats = fit_statistics(seqs, len(catalogue), cfg, progress)
    train_seqs, val = split_validation(seqs, cfg)
    loo = (
        EaseLOO(stats["p"], stats["subset"], len(catalogue), stats["ease"].idx, device)
        if len(stats["subset"])
        else None
    )
    encoder_id = encoder.model_id if encoder is not None else MINILM_ID
    return Prepared(
        catalogue, seqs, skipped, text, stats, train_seqs, val, loo, device, encoder_id,
        time.perf_counter() - t0,
    )  # fmt: skip


def fit(
    prep: Prepared,
    cfg: ColdStartConfig,
    progress: Progress = no_progress,
    init: dict[str, dict[str, torch.Tensor]] | None = None,
):
    """Train both networks on a prepared log; returns a ColdStartModel.

    From scratch, the conventionally trained twin comes first (the ``finetune`` method's
    starting point) and meta-training starts from its weights (``meta_from_pretrained``). From
    ``init`` (another shop's weights), meta-training starts from that model's meta network and
    the twin keeps its weights untrained (it only serves ``finetune``).
    """
    from metarec_core.coldstart.model import ColdStartModel

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    stats, device = prep.stats, prep.device
    nets, reports = {}, {}
    for name, steps, stage in (
        ("pretrained", 0, "pretrain"),
        ("meta", cfg.inner_steps, "meta-train"),
    ):
        torch.manual_seed(cfg.seed)
        net = _new_net(prep.text, stats["pop"], cfg, device)
        if init is not None:
            net.load_state_dict({**net.state_dict(), **init[name]})
        elif name == "meta" and cfg.meta_from_pretrained:
            net.load_state_dict(nets["pretrained"].state_dict())
        net.ii_eps.fill_(item_item_floor(stats["ease"]))
        if init is not None and name == "pretrained":
            reports[name] = {"loss": [], "val_ndcg10": [], "best_epoch": 0, "from": "source"}
        else:
            reports[name] = train_net(
                net, prep.train_seqs, prep.val, prep.loo, cfg, steps, stage, progress, device
            )
        nets[name] = net.eval()
    reports["meta"]["adaptation"] = check_adaptation(nets["meta"], prep.val, prep.loo, cfg, device)
    report = {
        "n_users": len(prep.seqs),
        "n_train_users": len(prep.train_seqs),
        "n_val_users": len(prep.val),
        "n_items": len(prep.catalogue),
        "skipped_interactions": prep.skipped,
        "ease_items": len(stats["subset"]),
        "train_seconds": round(prep.seconds + time.perf_counter() - t0, 2),
        "device": str(device),
        "encoder": prep.encoder_id,
        "meta": reports["meta"],
        "pretrained": reports["pretrained"],
    }
    return ColdStartModel(
        cfg, prep.catalogue, prep.text, nets["meta"], nets["pretrained"], stats["pop"],
        stats["knn"], stats["ease"], report, device,
    )  # fmt: skip


def item_item_floor(table: bl.NeighbourTable, share: float = 0.25) -> float:
    """Floor of the log item-item term: ``share`` of a typical item's strongest EASE weight."""
    top = table.val.max(axis=1) if table.val.size else np.zeros(0)
    top = top[top > 0]
    return float(share * np.median(top)) if len(top) else 1e-3


def _new_net(
    text: np.ndarray, pop: np.ndarray, cfg: ColdStartConfig, device: torch.device
) -> ColdStartNet:
    return ColdStartNet(
        torch.as_tensor(text),
        torch.as_tensor(pop > 0).float(),
        torch.log1p(torch.as_tensor(pop)),
        cfg.dim,
        cfg.k_max + 1,
        cfg.inner_lr,
    ).to(device)
