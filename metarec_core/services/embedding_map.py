"""The Embedding Map: item projections and the overlay of a user, prototypes and picks."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metarec_core.config import Paths
from metarec_core.types import Progress, no_progress

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@dataclass
class ItemMap:
    """Sampled items placed on a 2-D UMAP map of their text embeddings."""

    points: pd.DataFrame  # item_id, title, category, x, y
    vectors: np.ndarray  # (N, D) embeddings of the points, same order
    projection: Any  # viz.projection.Projection
    prototypes: pd.DataFrame  # x, y, label, kind="prototype"
    seconds: float
    cached: bool


def _texts(items: pd.DataFrame) -> list[str]:
    col = "text" if "text" in items.columns else "title"
    return items[col].fillna("").astype(str).tolist()


def item_map(
    items: pd.DataFrame,
    sample: int = 2000,
    seed: int = 0,
    encoder=None,
    cache_dir: Path | None = None,
    progress: Progress = no_progress,
    n_prototypes: int = 20,
) -> ItemMap:
    """Embed (cached) a sample of the catalogue and project it with UMAP (cached).

    Category prototypes (mean embedding of each of the ``n_prototypes`` largest categories) are
    placed where their most similar items lie.
    """
    from metarec_core.embed.service import embed_texts
    from metarec_core.viz.projection import ProjectionParams, project

    cache_dir = Path(cache_dir) if cache_dir is not None else Paths().cache_dir
    t0 = time.perf_counter()
    if len(items) > sample:
        items = items.sample(n=sample, random_state=seed)
    items = items.sort_values("item_id").reset_index(drop=True)
    vectors = embed_texts(_texts(items), encoder=encoder, cache_dir=cache_dir, progress=progress)
    proj = project(
        items["item_id"].astype(str).to_numpy(),
        vectors,
        ProjectionParams(seed=seed),
        cache_dir=cache_dir / "projections",
        progress=progress,
    )
    points = items[["item_id", "title", "category"]].copy()
    points["item_id"] = points["item_id"].astype(str)
    points["x"], points["y"] = proj.coords[:, 0], proj.coords[:, 1]
    protos = []
    top = items["category"].value_counts().head(n_prototypes).index
    for cat in top:
        mask = (items["category"] == cat).to_numpy()
        protos.append((cat, vectors[mask].mean(0)))
    proto_xy = proj.place(np.stack([v for _, v in protos]), vectors) if protos else np.zeros((0, 2))
    prototypes = pd.DataFrame(
        {
            "x": proto_xy[:, 0] if len(protos) else [],
            "y": proto_xy[:, 1] if len(protos) else [],
            "label": [c for c, _ in protos],
            "kind": "prototype",
        }
    )
    return ItemMap(points, vectors, proj, prototypes, time.perf_counter() - t0, proj.cached)


def map_overlay(
    imap: ItemMap,
    items: pd.DataFrame,
    support_ids: list[str] | None = None,
    before: pd.DataFrame | None = None,
    after: pd.DataFrame | None = None,
    encoder=None,
    top: int = 10,
    steps: list[pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Markers for a user on the map: support items, recommended items, and the user itself
    before / after adaptation (placed at the rank-weighted centre of its top recommendations).

    ``steps``: the replay's lists (step 0, 1, …); the user's place after each becomes a point of
    kind "path", in order, so the figure can draw the user's path through the steps.
    """
    from metarec_core.embed.service import embed_texts

    rows: list[dict] = []
    pos = dict(
        zip(
            imap.points["item_id"],
            zip(imap.points["x"], imap.points["y"], strict=True),
            strict=True,
        )
    )
    by_id = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    by_id = by_id.set_index("item_id")

    def _xy(ids: list[str]) -> dict[str, tuple[float, float]]:
        ids = [i for i in map(str, ids) if i in by_id.index]
        out = {i: pos[i] for i in ids if i in pos}
        rest = [i for i in ids if i not in pos]
        if rest:
            vec = embed_texts(_texts(by_id.loc[rest].reset_index()), encoder=encoder)
            for i, (x, y) in zip(rest, imap.projection.place(vec, imap.vectors), strict=True):
                out[i] = (float(x), float(y))
        return out

    def _add(ids, kind):
        xy = _xy(list(ids))
        for i in ids:
            if str(i) in xy:
                x, y = xy[str(i)]
                rows.append(
                    {
                        "x": x,
                        "y": y,
                        "label": str(by_id.loc[str(i), "title"]),
                        "kind": kind,
                        "item_id": str(i),
                    }
                )

    if support_ids:
        _add(support_ids, "support")

    def _centre(recs: pd.DataFrame, label: str, kind: str) -> None:
        ids = recs.sort_values("rank")["item_id"].astype(str).head(top).tolist()
        xy = _xy(ids)
        pts = [(xy[i], 1.0 / (r + 1)) for r, i in enumerate(ids) if i in xy]
        if pts:
            w = np.array([p[1] for p in pts])
            c = np.average(np.array([p[0] for p in pts]), axis=0, weights=w)
            rows.append({"x": float(c[0]), "y": float(c[1]), "label": label, "kind": kind})

    for name, recs in (("before", before), ("after", after)):
        if recs is None or recs.empty:
            continue
        if name == "after":
            _add(recs.sort_values("rank")["item_id"].astype(str).head(top).tolist(), "recommended")
        _centre(recs, f"user {name} adaptation", name)
    for k, recs in enumerate(steps or []):
        _centre(recs, f"step {k}", "path")
    out = pd.DataFrame(rows, columns=["x", "y", "label", "kind", "item_id"])
    return out.fillna({"item_id": ""})
