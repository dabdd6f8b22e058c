"""The New Shop service's summary, chart and command, and evaluate_transfer's progress events."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest

from metarec_core.services.new_shop import (
    init_from_command,
    new_shop_figure,
    new_shop_summary,
)


def curve(rows: list[tuple[str, int, float]], half: float = 0.01) -> pd.DataFrame:
    """A New Shop curve from (method, target users, NDCG@10) rows."""
    out = pd.DataFrame(rows, columns=["method", "target_users", "ndcg@10"])
    out = out.assign(group="", lo=out["ndcg@10"] - half, hi=out["ndcg@10"] + half)
    out.attrs["popularity_share"] = 0.0
    return out


NO_LOG = [("adapted", 0, 0.060), ("no-adapt", 0, 0.062), ("text-similarity", 0, 0.065),
          ("text-tfidf", 0, 0.048)]  # fmt: skip
GROCERY = [*NO_LOG, ("popularity", 100, 0.320), ("item-knn", 100, 0.123), ("ease", 100, 0.262),
           ("transfer+log", 100, 0.137)]  # fmt: skip


def test_the_summary_names_the_best_method_at_each_log_size_not_only_against_tfidf():
    lines = new_shop_summary(curve(GROCERY), "beauty-shop", 3)
    assert lines[0] == (
        "No log yet (first 3 actions of each new shopper): text-similarity ranks best, NDCG@10 "
        "0.065; the model from beauty-shop (adapted) reaches 0.060."
    )
    assert lines[1] == (
        "With 100 shoppers' log: popularity ranks best, 0.320, above the model from beauty-shop "
        "at its best (transfer+log, 0.137)."
    )
    assert lines[2] == (
        "Adapting to each shopper's first actions lowered NDCG@10 from 0.062 to 0.060, within "
        "the 95% interval (may be chance)."
    )


def test_the_summary_says_when_adaptation_changed_nothing_or_the_model_leads():
    rows = [("adapted", 0, 0.0226), ("no-adapt", 0, 0.0226), ("text-tfidf", 0, 0.0241),
            ("ease", 100, 0.0083), ("transfer+log", 100, 0.0325)]  # fmt: skip
    lines = new_shop_summary(curve(rows), "grocery-shop", 3)
    assert lines[1] == "With 100 shoppers' log: transfer+log ranks best, 0.033."
    assert "changed nothing here" in lines[2]
    lines = new_shop_summary(curve([("adapted", 0, 0.3), ("no-adapt", 0, 0.1)]), "s", 1)
    assert lines[0].endswith("adapted ranks best, NDCG@10 0.300.")
    assert lines[1].startswith("Adapting to each shopper's first actions raised NDCG@10")
    assert "chance" not in lines[1]


def test_the_no_log_lines_are_told_apart_by_dash_marker_and_hover():
    data = new_shop_figure(curve(GROCERY)).data
    no_log = [t for t in data if t.name.endswith("(no log needed)")]
    assert len(no_log) == 4
    assert len({t.line.dash for t in no_log}) == 4 and len({t.marker.symbol for t in no_log}) == 4
    assert all(t.hovertemplate.startswith("%{fullData.name}") for t in data)


@pytest.mark.parametrize("path", ["/data/models/beauty-shop/demo-coldstart", "/a b/it's $HOME"])
def test_the_init_from_command_gives_the_shell_the_path_unchanged(path):
    words = shlex.split(init_from_command(Path(path), "my shop"))
    assert words[:4] == ["python", "-m", "metarec_core", "train"]
    assert words[words.index("--init-from") + 1] == path
    assert words[words.index("--dataset") + 1] == "my shop"


def test_evaluate_transfer_reports_a_known_total_and_names_the_step_that_runs():
    from metarec_core.coldstart.train import train_model
    from metarec_core.embed.encoder import FakeEncoder
    from metarec_core.evaluate.transfer_eval import evaluate_transfer
    from tests.test_coldstart_engine import TINY
    from tests.test_coldstart_transfer import shop

    events = []
    source = train_model(*shop("s", "shirt", n_items=48, n_users=160, seed=0), TINY,
                         encoder=FakeEncoder())  # fmt: skip
    inter, items = shop("t", "mug", n_users=150)
    report = evaluate_transfer(
        source, inter, items, k=3, target_users=(0, 40, 1000, -1), train_at=(40,), config=TINY,
        encoder=FakeEncoder(), progress=events.append,
    )  # fmt: skip
    rows = report.rows
    assert len(rows) == 4 + 4 + 1 + 4  # no log; 40 users and a training there; all (= 1,000)
    assert {e.total for e in events} == {len(rows)} and events[-1].current == len(rows)
    assert [e.current for e in events] == sorted(e.current for e in events)
    for i, row in rows.iterrows():  # the last event before row i was scored names row i
        before = [e for e in events if e.current == i][-1]
        assert before.message.startswith(row["method"]), (i, before.message)
        where = "no log" if row["target_users"] == 0 else f"{row['target_users']:,} shoppers"
        assert where in before.message
