"""Serving a catalogue the model was not trained on (another shop): items known by their text.

``for_catalogue(model, items)`` returns a model over the new catalogue that shares the trained
weights. Every item gets its text towers; an item the model already knows (same id and same
text) keeps its id embeddings, popularity and neighbours; an unknown item has none, so a new
shop is served through text and the per-user inner loop alone. With no interactions in the new
shop, a user with no known support item is ranked by the model's learned prior (what the
network scores highest for an empty history) instead of by popularity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from metarec_core.coldstart.baselines import NeighbourTable
from metarec_core.coldstart.data import Catalogue
from metarec_core.coldstart.net import ColdStartNet
from metarec_core.embed.encoder import MINILM_ID, get_encoder
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, no_progress

NEEDS_INTERACTIONS = (
    "popularity",
    "item-knn",
    "ease",
)  # methods with nothing to go on in a new shop


def known_rows(model, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """(target rows, source rows) of the items the model knows: same id and same text."""
    index = model.index
    src = np.array([index.get(str(i), -1) for i in catalogue.item_ids], np.int64)
    hit = src >= 0
    same = np.zeros(len(src), bool)
    same[hit] = model.catalogue.texts[src[hit]] == catalogue.texts[hit]
    tgt = np.flatnonzero(same)
    return tgt, src[tgt]


def for_catalogue(
    model,
    items: pd.DataFrame,
    encoder=None,
    progress: Progress = no_progress,
):
    """The model serving ``items`` (canonical: item_id, title, text); ``model`` itself when the
    catalogue is the one it was trained on. Items with empty text are left out and counted in
    ``report["served_catalogue"]``; ValidationError when no item has text."""
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.coldstart.train import item_text_embeddings

    catalogue = Catalogue.from_items(items)
    if catalogue.fingerprint == model.catalogue.fingerprint:
        return model
    has_text = np.array([bool(str(t).strip()) for t in catalogue.texts])
    if not has_text.any():
        raise ValidationError("items: no item has any text to describe it; cannot serve them")
    without_text = int((~has_text).sum())
    catalogue = Catalogue(
        *(a[has_text] for a in (catalogue.item_ids, catalogue.titles, catalogue.texts))
    )
    if encoder is None and model.encoder_id != MINILM_ID:
        encoder = get_encoder(model.encoder_id)
    text = item_text_embeddings(catalogue, encoder, progress)  # (M, T)
    if text.shape[1] != model.text.shape[1]:
        raise ValidationError(
            f"items were embedded to {text.shape[1]} dimensions but the model expects "
            f"{model.text.shape[1]}: use the encoder the model was trained with"
        )
    tgt, src = known_rows(model, catalogue)
    pop = np.zeros(len(catalogue), np.float32)
    pop[tgt] = model.pop[src]
    nets = [_moved_net(net, text, pop, tgt, src) for net in (model.meta, model.pretrained)]
    remap = np.full(len(model.catalogue) + 1, -1, np.int64)  # source row -> target row (-1: none)
    remap[src] = tgt
    knn, ease = (_moved_table(t, remap, tgt, src, len(catalogue)) for t in (model.knn, model.ease))
    served = {
        "n_items": len(catalogue),
        "known_items": len(tgt),
        "items_without_text": without_text,
    }
    report = {**model.report, "served_catalogue": served}
    moved = ColdStartModel(
        model.config, catalogue, text, *nets, pop, knn, ease, report, model.device
    )
    if len(tgt) == 0:  # a new shop: rank empty histories by the network's prior
        moved.pop_t = _prior(moved)
    return moved


def _moved_net(
    net: ColdStartNet, text: np.ndarray, pop: np.ndarray, tgt: np.ndarray, src: np.ndarray
) -> ColdStartNet:
    """A copy of ``net`` over the new item rows (id parameters only for known items)."""
    out = ColdStartNet(
        torch.as_tensor(text),
        torch.as_tensor(pop > 0).float(),
        torch.log1p(torch.as_tensor(pop)),
        net.dim,
        net.pos.shape[0],
        1.0,
    )
    state = {k: v for k, v in net.state_dict().items() if k not in ("text", "seen")}
    for name in ("id_in", "id_out", "id_bias"):
        old = state.pop(name).cpu()
        new = torch.zeros((len(text), *old.shape[1:]), dtype=old.dtype)
        new[torch.as_tensor(tgt)] = old[torch.as_tensor(src)]
        state[name] = new
    missing, unexpected = out.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"text", "seen"}:
        raise RuntimeError(f"network layout mismatch: {missing} {unexpected}")
    return out.to(net.u0.device).eval()


def _moved_table(
    table: NeighbourTable, remap: np.ndarray, tgt: np.ndarray, src: np.ndarray, n: int
) -> NeighbourTable:
    """Neighbour lists of the known items, pointing at their new rows (others dropped)."""
    out = NeighbourTable.empty(n)
    if len(tgt) == 0:
        return out
    idx = remap[table.idx[src]]  # -1 (padding) maps to remap[-1] = -1
    val = np.where(idx >= 0, table.val[src], 0).astype(np.float32)
    full_idx = np.full((n, idx.shape[1]), -1, np.int64)
    full_val = np.zeros((n, idx.shape[1]), np.float32)
    full_idx[tgt], full_val[tgt] = idx, val
    return NeighbourTable(full_idx, full_val)


def _prior(model) -> torch.Tensor:
    """(M,) the meta network's scores for a user with no history (u = u0), as a ranking prior."""
    t = model.tables()["meta"]
    with torch.no_grad():
        return (t.e_out @ model.meta.u0 + t.bias).float()


def with_log(model, interactions: pd.DataFrame, progress: Progress = no_progress):
    """``model`` (serving its catalogue) with popularity, item-kNN and EASE fit on
    ``interactions`` of that catalogue (e.g. a new shop's first users); weights unchanged."""
    import copy

    from metarec_core.coldstart.data import user_sequences
    from metarec_core.coldstart.train import fit_statistics, item_item_floor

    _, seqs, _ = user_sequences(interactions, model.index)
    stats = fit_statistics(seqs, len(model.catalogue), model.config, progress)
    out = copy.copy(model)
    out.pop, out.knn, out.ease = stats["pop"], stats["knn"], stats["ease"]
    dev = model.device
    out.pop_t = torch.as_tensor(out.pop, device=dev)
    out.knn_t = tuple(torch.as_tensor(a, device=dev) for a in (out.knn.idx, out.knn.val))
    out.ease_t = tuple(torch.as_tensor(a, device=dev) for a in (out.ease.idx, out.ease.val))
    if out.ease.val.size and out.ease.val.max() > 0:
        floor = item_item_floor(out.ease)
        out.meta, out.pretrained = (copy.deepcopy(n) for n in (model.meta, model.pretrained))
        for net in (out.meta, out.pretrained):
            net.ii_eps.fill_(floor)
        out._tables = None
    return out


CATALOGUE_PARAMS = ("text", "seen", "id_in", "id_out", "id_bias", "ii_eps")  # not carried over


def source_weights(model) -> dict[str, dict[str, torch.Tensor]]:
    """The catalogue-independent weights of each network (text towers, user prior, position
    weights, inner learning rates): what a new shop's training can start from."""
    return {
        name: {
            k: v.detach().cpu().clone()
            for k, v in net.state_dict().items()
            if k not in CATALOGUE_PARAMS
        }
        for name, net in (("meta", model.meta), ("pretrained", model.pretrained))
    }


def best_validation(model) -> float:
    """The best validation NDCG@10 that meta-training reached (held-back users of the log)."""
    return float(max(model.report["meta"]["val_ndcg10"] or [float("nan")]))


def train_from(
    source,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    config=None,
    progress: Progress = no_progress,
    encoder=None,
):
    """Train on a new shop's log twice, from ``source``'s weights and from scratch, and keep
    the one with the better validation NDCG@10 on the same held-back users of that log.

    The returned model's report has ``init_from``: which was kept and both validation scores.
    """
    import dataclasses

    from metarec_core.coldstart.config import ColdStartConfig
    from metarec_core.coldstart.train import train_model

    base = config or ColdStartConfig()
    cfg = dataclasses.replace(
        base, dim=source.config.dim, k_max=source.config.k_max, k=min(base.k, source.config.k_max)
    )

    def labelled(label: str) -> Progress:
        return lambda e: progress(dataclasses.replace(e, stage=f"{label}: {e.stage}"))

    if encoder is None and source.encoder_id != MINILM_ID:
        encoder = get_encoder(source.encoder_id)
    init = source_weights(source)
    moved = train_model(interactions, items, cfg, labelled("from source"), encoder, init=init)
    fresh = train_model(interactions, items, cfg, labelled("from scratch"), encoder)
    scores = {"transfer": best_validation(moved), "fresh": best_validation(fresh)}
    kept = "transfer" if not scores["fresh"] > scores["transfer"] else "fresh"
    model = moved if kept == "transfer" else fresh
    model.report["init_from"] = {
        "kept": kept,
        "val_ndcg10_transfer": scores["transfer"],
        "val_ndcg10_fresh": scores["fresh"],
        "source_items": len(source.catalogue),
    }
    return model
