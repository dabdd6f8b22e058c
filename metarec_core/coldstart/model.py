"""ColdStartModel: the trained engine, its self-contained directory format, and ``recommend``.

A model directory holds:
    config.json            ColdStartConfig, format version, catalogue fingerprint, text encoder id
    weights.safetensors    meta.* and pretrained.* network weights, item text embeddings,
                           popularity counts, item-knn and EASE neighbour tables
    items.parquet          the catalogue (item_id, title, text) in row order
    training_report.json   sizes, timings, loss and validation curves
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from metarec_core.coldstart import METHODS
from metarec_core.coldstart.baselines import NeighbourTable
from metarec_core.coldstart.config import ColdStartConfig
from metarec_core.coldstart.data import Catalogue
from metarec_core.coldstart.net import ColdStartNet, ItemTables
from metarec_core.coldstart.recommend import NETWORK, Recommendations, rank_users
from metarec_core.coldstart.scoring import NEG
from metarec_core.device import resolve_device
from metarec_core.embed.encoder import MINILM_ID
from metarec_core.errors import ConflictError, NotFoundError, ValidationError

FORMAT = "metarec-coldstart/3"  # 2: log item-item term (ii_eps); 3: per-user propensities "c"
_FILES = ("config.json", "weights.safetensors", "items.parquet")


class ColdStartModel:
    """A trained cold-start recommender: networks, baselines and the catalogue they serve."""

    def __init__(
        self,
        config: ColdStartConfig,
        catalogue: Catalogue,
        text: np.ndarray,
        meta: ColdStartNet,
        pretrained: ColdStartNet,
        pop: np.ndarray,
        knn: NeighbourTable,
        ease: NeighbourTable,
        report: dict,
        device: torch.device,
    ) -> None:
        self.config, self.catalogue, self.report = config, catalogue, report
        self.device = device
        self.meta = meta.to(device).eval()
        self.pretrained = pretrained.to(device).eval()
        self.text = self.meta.text  # (N, T) unit rows
        self.pop = np.asarray(pop, np.float32)
        self.pop_t = torch.as_tensor(self.pop, device=device)
        self.knn, self.ease = knn, ease
        self.knn_t = (
            torch.as_tensor(knn.idx, device=device),
            torch.as_tensor(knn.val, device=device),
        )
        self.ease_t = (
            torch.as_tensor(ease.idx, device=device),
            torch.as_tensor(ease.val, device=device),
        )
        self._tables: dict[str, ItemTables] | None = None
        self._index: dict[str, int] | None = None
        self.encoder_id = report.get("encoder", MINILM_ID)  # the encoder of the item texts
        self.words = None  # word-overlap scorer joined to the network's score (a new shop only)
        self.brands = None  # (N,) brand codes whose matches join it too (coldstart/brands)
        self.loo = None  # leave-the-user-out EASE rows when the log holds the users' supports
        self.shop_popularity = None  # (N,) a new shop's log item counts (coldstart/shop_popularity)
        self.popularity_share = 0.0  # their share of a network method's score

    # ------------------------------------------------------------------ serving
    def tables(self) -> dict[str, ItemTables]:
        """Item tensors of both networks, computed once (inference only)."""
        if self._tables is None:
            with torch.no_grad():
                self._tables = {"meta": self.meta.tables(), "pretrained": self.pretrained.tables()}
        return self._tables

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = self.catalogue.index()
        return self._index

    def recommend(
        self,
        support: pd.DataFrame,
        top: int = 20,
        method: str = "adapted",
        exclude_support: bool = True,
    ) -> Recommendations:
        """Rank the catalogue for each user of ``support`` (user_id, item_id[, position]).

        Support items outside the catalogue are skipped and counted; a user left with none gets
        popularity and is flagged in ``fallback``. Raises ValidationError on bad input.
        """
        t0 = time.perf_counter()
        if method not in METHODS:
            raise ValidationError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
        if not isinstance(top, int) or top < 1:
            raise ValidationError(f"top must be a positive integer, got {top!r}")
        users, supports, skipped = parse_support(support, self.index)
        served, share = self.for_request(supports, method)
        ranked = rank_users(served, supports, method, top, exclude_support)
        empty = [len(s) == 0 for s in supports]
        frame = self._frame(users, ranked, empty)
        fallback = [u for u, e in zip(users, empty, strict=True) if e]
        listed = set(frame["user_id"])
        curves = {}
        if ranked.curves is not None:
            curves = {u: [float(v) for v in c] for u, c in zip(users, ranked.curves, strict=True)}
        return Recommendations(
            frame=frame,
            method=method,
            fallback_users=fallback,
            users_without_items=[u for u in users if u not in listed],
            skipped_items=int(sum(skipped.values())),
            skipped_by_user=skipped,
            loss_curves=curves,
            elapsed_s=time.perf_counter() - t0,
            popularity_share=share,
        )

    def for_request(self, supports: list[np.ndarray], method: str):
        """(model to rank with, share of its log counts in the score): a new shop served with its
        supports' counts keeps its share; a model trained on a new shop's first users
        (``train --init-from``) mixes in its log's item counts when the request's own hidden
        support items say they help (coldstart/shop_popularity)."""
        if method not in NETWORK:
            return self, 0.0
        if self.shop_popularity is not None:
            return self, self.popularity_share
        if "init_from" not in self.report or "served_catalogue" in self.report:
            return self, 0.0  # its counts are its training log's only on its own catalogue
        from metarec_core.coldstart.shop_popularity import choose_share, use_counts

        share, _ = choose_share(self, supports, self.pop, rows_in_counts=False)
        if share == 0:
            return self, 0.0
        served = copy.copy(self)
        use_counts(served, self.pop, share)
        return served, share

    def recommend_steps(
        self, support: pd.DataFrame, steps: list[int], top: int = 20, method: str = "adapted"
    ) -> Recommendations:
        """Rank after each prefix of each user's support (user_id, item_id[, position]): step k
        adapts to the first k known items (k = 0: no history, so bestsellers). A user with fewer
        known items than a step stops at their last one; unknown items are skipped and counted.

        ``frame`` gains a ``step`` column after ``user_id``; ``fallback_users`` lists users with
        no known item (they get step 0 only).
        """
        t0 = time.perf_counter()
        if method not in METHODS:
            raise ValidationError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
        if not isinstance(top, int) or top < 1:
            raise ValidationError(f"top must be a positive integer, got {top!r}")
        users, supports, skipped = parse_support(support, self.index)
        keys = [(u, k) for u, s in zip(users, supports, strict=True) for k in steps if k <= len(s)]
        rows = dict(zip(users, supports, strict=True))
        prefixes = [rows[u][:k] for u, k in keys]
        ranked = rank_users(self, prefixes, method, top)
        steps_of = np.asarray([k for _, k in keys], np.int64)
        frame = self._frame([u for u, _ in keys], ranked, [len(p) == 0 for p in prefixes], steps_of)
        return Recommendations(
            frame=frame,
            method=method,
            fallback_users=[u for u, s in zip(users, supports, strict=True) if len(s) == 0],
            skipped_items=int(sum(skipped.values())),
            skipped_by_user=skipped,
            elapsed_s=time.perf_counter() - t0,
        )

    def _frame(
        self, users: list[str], ranked, fallback: list[bool], steps: np.ndarray | None = None
    ) -> pd.DataFrame:
        """One row per user and rank; ``steps`` (one per user) adds a ``step`` column. Ranks
        filled by excluded support items (a catalogue with fewer other items than ``top``)
        are left out."""
        u, top = ranked.items.shape
        ids = self.catalogue.item_ids
        explain = [  # an item bought twice in the support is named once
            "|".join(dict.fromkeys(str(ids[j]) for j in row if j >= 0))
            for row in ranked.explain.reshape(u * top, -1)
        ]
        columns = {"user_id": np.repeat(np.asarray(users, dtype=object), top)}
        if steps is not None:
            columns["step"] = np.repeat(steps, top)
        frame = pd.DataFrame(
            columns
            | {
                "rank": np.tile(np.arange(1, top + 1), u),
                "item_id": ids[ranked.items.reshape(-1)] if u else np.array([], dtype=object),
                "score": ranked.scores.reshape(-1).astype(np.float64),
                "explanation": explain,
                "fallback": np.repeat(np.asarray(fallback, dtype=bool), top),
            }
        )
        return frame[frame["score"] > NEG / 2].reset_index(drop=True)

    def check_catalogue(self, items: pd.DataFrame) -> None:
        """Refuse (ConflictError) to serve a catalogue other than the one the model was built for."""
        other = Catalogue.from_items(items).fingerprint
        if other != self.catalogue.fingerprint:
            raise ConflictError(
                f"this model was built for a different catalogue ({len(self.catalogue)} items, "
                f"fingerprint {self.catalogue.fingerprint[:12]}; got {len(items)} items, "
                f"fingerprint {other[:12]}): retrain it on this catalogue"
            )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the self-contained model directory (created if needed); returns its path."""
        from safetensors.torch import save_file

        from metarec_core.registry import refuse_other_kind, write_json

        d = Path(directory)
        refuse_other_kind(d, FORMAT)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {
            "item_text": self.text.detach().cpu().contiguous(),
            "popularity": torch.as_tensor(self.pop),
        }
        for name, net in (("meta", self.meta), ("pretrained", self.pretrained)):
            for key, value in net.state_dict().items():
                if key != "text":
                    tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
        for name, table in (("knn", self.knn), ("ease", self.ease)):
            tensors[f"{name}.idx"] = torch.as_tensor(table.idx.astype(np.int32))
            tensors[f"{name}.val"] = torch.as_tensor(table.val.astype(np.float32))
        save_file(tensors, str(d / "weights.safetensors"))
        pd.DataFrame(
            {
                "item_id": self.catalogue.item_ids,
                "title": self.catalogue.titles,
                "text": self.catalogue.texts,
            }
        ).to_parquet(d / "items.parquet", index=False)
        meta = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "catalogue_fingerprint": self.catalogue.fingerprint,
            "n_items": len(self.catalogue),
            "text_dim": int(self.text.shape[1]),
            "encoder": self.encoder_id,
        }
        write_json(d / "training_report.json", self.report)
        write_json(d / "config.json", meta)
        return d

    @classmethod
    def load(
        cls, directory: str | Path, device: str = "auto", items: pd.DataFrame | None = None
    ) -> ColdStartModel:
        """Load a model directory; with ``items``, also check that it serves that catalogue."""
        d = Path(directory)
        if not d.is_dir():
            raise NotFoundError(f"model directory not found: {directory}")
        missing = [f for f in _FILES if not (d / f).exists()]
        if missing:
            raise ValidationError(
                f"{directory} is not a cold-start model directory (missing {', '.join(missing)})"
            )
        model = cls._read(d, resolve_device(device))
        if items is not None:
            model.check_catalogue(items)
        return model

    @classmethod
    def _read(cls, d: Path, device: torch.device) -> ColdStartModel:
        """Read the three files; any failure is a ValidationError naming the file at fault."""
        from safetensors.torch import load_file

        with _reading(d / "config.json"):
            meta = json.loads((d / "config.json").read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise ValueError(f"unsupported model format {found!r} (expected {FORMAT})")
            if not isinstance(meta.get("config"), dict):
                raise ValueError("no 'config' object")
            cfg = ColdStartConfig.from_dict(meta["config"])
            fingerprint = str(meta["catalogue_fingerprint"])
        with _reading(d / "items.parquet"):
            catalogue = Catalogue.from_items(pd.read_parquet(d / "items.parquet"))
            if catalogue.fingerprint != fingerprint:
                raise ValueError("does not match the catalogue the model was trained on")
        with _reading(d / "weights.safetensors"):
            t = load_file(str(d / "weights.safetensors"))
            text, pop = t["item_text"], t["popularity"]
            if text.ndim != 2 or text.shape[0] != len(catalogue) or pop.shape != (len(catalogue),):
                raise ValueError(f"item tables do not have {len(catalogue)} rows")
            nets = []
            for name in ("meta", "pretrained"):
                net = ColdStartNet(
                    text, (pop > 0).float(), torch.log1p(pop), cfg.dim, cfg.k_max + 1, cfg.inner_lr
                )
                state = {k[len(name) + 1 :]: v for k, v in t.items() if k.startswith(name + ".")}
                state["text"] = text
                net.load_state_dict(state)
                nets.append(net)
            tables = []
            for n in ("knn", "ease"):
                idx, val = t[f"{n}.idx"].numpy().astype(np.int64), t[f"{n}.val"].numpy()
                if idx.shape != val.shape or (
                    idx.size and not (-1 <= idx.min() <= idx.max() < len(catalogue))
                ):
                    raise ValueError(f"{n} neighbour table does not fit the catalogue")
                tables.append(NeighbourTable(idx, val))
        report_path = d / "training_report.json"
        report = {}
        if report_path.exists():
            with _reading(report_path):
                report = json.loads(report_path.read_text())
        if not isinstance(report, dict):
            report = {}
        report["encoder"] = str(meta.get("encoder", MINILM_ID))
        return cls(
            cfg, catalogue, text.numpy(), nets[0], nets[1], pop.numpy(), *tables, report, device
        )


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn any failure while reading ``path`` into one ValidationError line naming the file."""
    try:
        yield
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc}") from exc
    except Exception as exc:
        text = str(exc).strip().splitlines()
        detail = text[0][:300] if text else type(exc).__name__
        if isinstance(exc, KeyError):
            detail = f"missing entry {exc}"
        raise ValidationError(f"model file {path} is damaged or tampered with: {detail}") from exc


def parse_support(
    support: pd.DataFrame, index: dict[str, int]
) -> tuple[list[str], list[np.ndarray], dict[str, int]]:
    """Users (in first-seen order), their known support rows in order, skipped rows per user.
    An item bought again stays a second action, as in training's sequences. Ids compare as
    ``canonical_items`` writes them (1.0 and 1 are one user); an order column (position,
    timestamp, ...) holds numbers or dates."""
    from metarec_core.data.canonical import ITEM_ALIASES, USER_ALIASES, find_column, order_values

    if support is None or len(support) == 0:
        raise ValidationError("support: no rows (need user_id, item_id[, position])")
    u, i = find_column(support, USER_ALIASES), find_column(support, ITEM_ALIASES)
    if u is None or i is None:
        raise ValidationError(
            f"support: need columns user_id and item_id; found {', '.join(map(str, support.columns))}"
        )
    df = pd.DataFrame({"user_id": support[u], "item_id": support[i]})
    if df.isna().any().any():
        raise ValidationError(
            f"support: {int(df.isna().any(axis=1).sum())} row(s) have an empty user_id or item_id"
        )
    for c in ("user_id", "item_id"):
        s = df[c]
        if pd.api.types.is_float_dtype(s) and np.all(np.mod(s.to_numpy(), 1) == 0):
            s = s.astype(np.int64)
        df[c] = s.astype(str).str.strip()
    users = [str(x) for x in pd.unique(df["user_id"])]
    pos = find_column(support, ("position", "timestamp", "ts", "time", "order"))
    df["_o"] = order_values(support[pos], pos, "support").to_numpy() if pos is not None else 0.0
    df["_r"] = np.arange(len(df))
    df = df.sort_values(["_o", "_r"], kind="stable", na_position="last")
    df["row"] = df["item_id"].map(index)
    known = df.dropna(subset=["row"])
    groups = {k: g["row"].to_numpy(np.int64) for k, g in known.groupby("user_id", sort=False)}
    bad = df[df["row"].isna()].groupby("user_id").size()
    skipped = {str(k): int(v) for k, v in bad.items()}
    return users, [groups.get(x, np.zeros(0, np.int64)) for x in users], skipped
