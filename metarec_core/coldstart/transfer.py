"""Serving a catalogue the model was not trained on (another shop): items known by their text.

``for_catalogue(model, items)`` returns a model over the new catalogue that shares the trained
weights. Every item gets its text towers; an item the model already knows (same id and same
text) keeps its id embeddings, popularity and neighbours; an unknown item has none. With no
interactions in the new shop, a user with no known support item is ranked by the model's
learned prior (what the network scores highest for an empty history) instead of by popularity.

``serve_new_shop(model, items, support)`` is what ``recommend --items`` uses for a shop the model
knows nothing of. Such a shop has no log but the shoppers' own first actions, so the supports of
the request are its log: their popularity and co-occurrence (EASE) feed the network's item-item
term, exactly as a shop's warm log does in training. Because the text towers were learned on
another shop's words, the network's score is then combined with word overlap (TF-IDF cosine to
the support) and the encoder's own cosine to the support, each standardised per user like the
network's score (``recommend.chunk_scores``), and with the supports' item counts where hiding
each user's last support items in turn shows they help (coldstart/shop_popularity). No
shopper's later actions are used. Measured on held-out shops in benchmarks/README.md ("Another
shop").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from metarec_core.coldstart.baselines import NeighbourTable
from metarec_core.coldstart.brands import brand_codes
from metarec_core.coldstart.data import Catalogue
from metarec_core.coldstart.net import ColdStartNet
from metarec_core.embed.service import lazy_encoder
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, no_progress

# methods with nothing to go on in a new shop
NEEDS_INTERACTIONS = ("popularity", "item-knn", "ease")


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
    if encoder is None:
        encoder = lazy_encoder(model.encoder_id)
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


class WordMatch:
    """TF-IDF (word 1-2 grams) cosine between support items and the catalogue: (B, M) scores."""

    def __init__(self, texts) -> None:
        from metarec_core.categories.words import tfidf_matrix

        self.x = tfidf_matrix(list(texts))

    def scores(self, support: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, M) summed cosine of every item to each user's valid support items."""
        import scipy.sparse as sp

        b, k = support.shape
        s, m = support.cpu().numpy(), mask.cpu().numpy() > 0
        rows = np.repeat(np.arange(b), k)[m.ravel()]
        pick = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, s.ravel()[m.ravel()])),
            shape=(b, self.x.shape[0]),
        )
        dense = np.asarray((pick @ self.x @ self.x.T).todense(), np.float32)  # (B, M)
        return torch.as_tensor(dense, device=support.device)


def serve_new_shop(
    model, items: pd.DataFrame, support: pd.DataFrame | None, encoder=None,
    progress: Progress = no_progress,
):  # fmt: skip
    """``for_catalogue``; when the model knows none of the items (a new shop), the supports'
    rows (user_id, item_id[, position]) become the shop's log, and word overlap and brand
    matches (coldstart/brands.py) join the score."""
    served = for_catalogue(model, items, encoder=encoder, progress=progress)
    if served is model or served.report["served_catalogue"]["known_items"] > 0:
        return served
    served.words = WordMatch(served.catalogue.texts)
    codes = brand_codes(items, served.catalogue.item_ids)
    served.brands = None if codes is None else torch.as_tensor(codes, device=served.device)
    if support is None or len(support) == 0:
        return served
    from metarec_core.coldstart.model import parse_support
    from metarec_core.coldstart.shop_popularity import choose_share, use_counts

    users, rows, _ = parse_support(support, served.index)
    log = pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(users, dtype=object), [len(r) for r in rows]),
            "item_id": served.catalogue.item_ids[np.concatenate(rows)] if rows else [],
            "position": np.concatenate([np.arange(len(r)) for r in rows]) if rows else [],
        }
    )
    if log.empty:
        return served
    shop = with_log(served, log, progress, includes_support=True)
    shop.pop_t = served.pop_t  # empty histories: the learned prior, not the supports' counts
    share, gains = choose_share(shop, rows, shop.pop, rows_in_counts=True)  # pop: users per item
    use_counts(shop, shop.pop, share)
    shop.report["served_catalogue"].update(popularity_share=share, popularity_share_gains=gains)
    return shop


def with_log(
    model, interactions: pd.DataFrame, progress: Progress = no_progress,
    includes_support: bool = False,
):  # fmt: skip
    """``model`` (serving its catalogue) with popularity, item-kNN and EASE fit on
    ``interactions`` of that catalogue (e.g. a new shop's first users); weights unchanged.

    ``includes_support``: the log holds the served users' own support rows, so the network's
    item-item rows leave each user out (as in training), or the inner loop would learn from
    the user's own co-occurrences."""
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
    if includes_support and len(stats["subset"]):
        from metarec_core.coldstart.episodes import EaseLOO

        n = len(model.catalogue)
        out.loo = EaseLOO(stats["p"], stats["subset"], n, stats["ease"].idx, dev)
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
    the one with the better validation NDCG@10 on the same held-back users of that log (the one
    from the source when the log has too few users to hold any back).

    The returned model's report has ``init_from``: which was kept and both validation scores.
    """
    import dataclasses

    from metarec_core.coldstart.config import ColdStartConfig
    from metarec_core.coldstart.train import fit, prepare

    base = config or ColdStartConfig()
    cfg = dataclasses.replace(
        base, dim=source.config.dim, k_max=source.config.k_max, k=min(base.k, source.config.k_max)
    )

    def labelled(label: str) -> Progress:
        return lambda e: progress(dataclasses.replace(e, stage=f"{label}: {e.stage}"))

    if encoder is None:
        encoder = lazy_encoder(source.encoder_id)
    prep = prepare(interactions, items, cfg, progress, encoder)
    moved = fit(prep, cfg, labelled("from source"), init=source_weights(source))
    fresh = fit(prep, cfg, labelled("from scratch"))
    scores = {"transfer": best_validation(moved), "fresh": best_validation(fresh)}
    validated = bool(prep.val)  # both trainings hold back these users, or none at all
    kept = "fresh" if validated and scores["fresh"] > scores["transfer"] else "transfer"
    model = moved if kept == "transfer" else fresh
    model.report["init_from"] = {
        "kept": kept,
        "validated": validated,
        "val_ndcg10_transfer": scores["transfer"] if validated else None,
        "val_ndcg10_fresh": scores["fresh"] if validated else None,
        "source_items": len(source.catalogue),
    }
    return model
