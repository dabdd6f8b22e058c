"""Click-by-click replay: how one shopper's recommendations change after each of their actions."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metarec_core.errors import ValidationError

MAX_STEPS = 10  # the replay's last step: a new user's first ten actions


@dataclass
class ReplayFrame:
    """The list a shopper sees after their first ``step`` actions.

    ``recs``: rank, change (vs the previous step: new, ▲n, ▼n or =), item_id, title, category,
    because (the shopper's actions that explain the item), bought_later (the shopper took it
    after this step), score.
    """

    step: int
    action: str  # the title of the action just taken ("" at step 0)
    recs: pd.DataFrame
    next_in_list: bool | None  # the shopper's next action is in this list (None: unknown)
    hits_so_far: int  # actions 1..step that the list shown just before them contained


@dataclass
class Replay:
    """A shopper's first actions, one recommendation list per step (step 0: bestsellers)."""

    user: str
    method: str
    top: int
    history: pd.DataFrame  # step (1-based), item_id, title, category
    frames: list[ReplayFrame]
    skipped: int  # history items not in the model's catalogue (left out of every step)
    note: str  # why the replay stops before the requested step, when it does
    seconds: float
    model: str = ""  # the model that served it, for people

    def table(self) -> pd.DataFrame:
        """Every frame as one long table: step, action, rank, item_id, title, bought_later."""
        parts = [
            f.recs.assign(step=f.step, action=f.action)[
                ["step", "action", "rank", "change", "item_id", "title", "because", "bought_later"]
            ]
            for f in self.frames
        ]
        return pd.concat(parts, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """One row per step: the action, later purchases in the list, hits so far."""
        return pd.DataFrame(
            {
                "step": [f.step for f in self.frames],
                "action": [f.action or "(no history: bestsellers)" for f in self.frames],
                "bought later, in the list": [
                    int(f.recs["bought_later"].sum()) for f in self.frames
                ],
                "next action in the list": [
                    "" if f.next_in_list is None else ("yes" if f.next_in_list else "no")
                    for f in self.frames
                ],
                "hits so far": [f.hits_so_far for f in self.frames],
            }
        )


def change_label(before_rank: float, rank: int) -> str:
    """'new' when the item was not in the previous list, else ▲n / ▼n / = by rank."""
    if pd.isna(before_rank):
        return "new"
    moved = int(before_rank) - int(rank)
    return "=" if moved == 0 else (f"▲{moved}" if moved > 0 else f"▼{-moved}")


def shop_bestsellers(interactions: pd.DataFrame, leave_out: Iterable[str] = ()) -> pd.Series:
    """The shop's bestsellers from its own log: item_id -> shoppers who took it, most first
    (ties by item id). ``leave_out``: shoppers not counted (the ones a model was tested on).

    Whatever model serves a shop, "bestsellers" in the Lab are these: a model trained on another
    shop has no counts for this shop's products.
    """
    log = interactions[~interactions["user_id"].astype(str).isin({str(u) for u in leave_out})]
    pairs = log.assign(item_id=log["item_id"].astype(str)).drop_duplicates(["user_id", "item_id"])
    counts = pairs.groupby("item_id").size().rename("shoppers").reset_index()
    counts = counts.sort_values(["shoppers", "item_id"], ascending=[False, True], kind="stable")
    return counts.set_index("item_id")["shoppers"]


def bestseller_list(bestsellers: pd.Series, exclude: Iterable[str], top: int) -> pd.DataFrame:
    """The first ``top`` of ``bestsellers`` not in ``exclude`` (the shopper's own actions), as a
    model ranks them: rank, item_id, score (shoppers who took it), explanation (none)."""
    head = bestsellers[~bestsellers.index.isin({str(i) for i in exclude})].head(top)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(head) + 1),
            "item_id": head.index.astype(str),
            "score": head.to_numpy(np.float64),
            "explanation": "",
        }
    )


def _titles(items: pd.DataFrame) -> pd.DataFrame:
    meta = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    return meta.set_index("item_id")[["title", "category"]]


def replay(
    model,
    items: pd.DataFrame,
    history: list[str],
    later: list[str] | None = None,
    steps: int = MAX_STEPS,
    method: str = "adapted",
    top: int = 10,
    user: str = "new user",
    *,
    bestsellers: pd.Series | None = None,
    model_name: str = "",
) -> Replay:
    """Recommendations after each of the shopper's first ``steps`` actions (step 0 = none).

    Args:
        history: the shopper's actions in order; a real user's full history may be longer than
            ``steps`` (the actions after the replay only count as bought later).
        later: actions after ``history`` (for a hand-made user: none).
        bestsellers: the shop's bestsellers (``shop_bestsellers``), shown at step 0 and, for
            ``method="popularity"``, at every step; default: the model's own popularity.
        model_name: names the serving model in the result.
    """
    if not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
        raise ValidationError(f"steps must be between 0 and {MAX_STEPS}, got {steps!r}")
    if not history:
        raise ValidationError("pick at least one item for the shopper's history")
    t0 = time.perf_counter()
    meta = _titles(items)
    history = [str(i) for i in history]
    known = [i for i in history if i in model.index]
    actions = known[:steps]
    note = ""
    if len(actions) < steps:
        what = "known action" if len(actions) == 1 else "known actions"
        note = f"{user} has {len(actions)} {what}: the replay stops at step {len(actions)}."
    ks = list(range(len(actions) + 1))
    given = actions or history  # with no known action, step 0 alone is ranked
    support = pd.DataFrame({"user_id": user, "item_id": given, "position": range(len(given))})
    frame = model.recommend_steps(support, ks, top=top, method=method).frame
    everything = known + [str(i) for i in (later or [])]
    frames: list[ReplayFrame] = []
    previous: dict[str, int] = {}
    hits = 0
    for k in ks:
        recs = frame[frame["step"] == k].drop(columns=["user_id", "step", "fallback"])
        if bestsellers is not None and (k == 0 or method == "popularity"):
            recs = bestseller_list(bestsellers, actions[:k], top)
        recs = recs.reset_index(drop=True)
        recs["item_id"] = recs["item_id"].astype(str)
        recs = recs.join(meta, on="item_id")
        recs["change"] = [
            change_label(previous.get(i, np.nan), r)
            for i, r in zip(recs["item_id"], recs["rank"], strict=True)
        ]
        recs["because"] = recs["explanation"].map(
            lambda e: "; ".join(str(meta["title"].get(i, i)) for i in str(e).split("|") if i)
        )
        bought = set(everything[k:])
        recs["bought_later"] = recs["item_id"].isin(bought)
        in_list = set(recs["item_id"])
        if k > 0 and frames and frames[-1].next_in_list:
            hits += 1
        nxt = everything[k] if k < len(everything) else None
        frames.append(
            ReplayFrame(
                step=k,
                action=str(meta["title"].get(actions[k - 1], actions[k - 1])) if k else "",
                recs=recs[
                    [
                        "rank",
                        "change",
                        "item_id",
                        "title",
                        "category",
                        "because",
                        "bought_later",
                        "score",
                    ]
                ],
                next_in_list=None if nxt is None else nxt in in_list,
                hits_so_far=hits,
            )
        )
        previous = dict(zip(recs["item_id"], recs["rank"], strict=True))
    hist = pd.DataFrame({"step": np.arange(1, len(actions) + 1), "item_id": actions})
    return Replay(
        user=user,
        method=method,
        top=top,
        history=hist.join(meta, on="item_id"),
        frames=frames,
        skipped=len(history) - len(known),
        note=note,
        seconds=time.perf_counter() - t0,
        model=model_name,
    )


def replay_held_out(
    model,
    items: pd.DataFrame,
    history: pd.DataFrame,
    steps: int = MAX_STEPS,
    method: str = "adapted",
    top: int = 10,
    *,
    bestsellers: pd.Series | None = None,
    model_name: str = "",
) -> Replay:
    """Replay a real user's first actions; everything they did afterwards counts as bought later
    (``bestsellers``, ``model_name``: as in ``replay``)."""
    if history.empty:
        raise ValidationError("this user has no interactions")
    ordered = history.sort_values("position", kind="stable") if "position" in history else history
    ids = ordered["item_id"].astype(str).tolist()
    user = str(history["user_id"].iloc[0])
    return replay(
        model,
        items,
        ids,
        None,
        steps,
        method,
        top,
        user,
        bestsellers=bestsellers,
        model_name=model_name,
    )
