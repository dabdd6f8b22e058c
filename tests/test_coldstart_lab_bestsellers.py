"""The Lab's bestsellers: counted from the shop's own log, whichever model serves the shop."""

from __future__ import annotations

import pandas as pd

from metarec_core.services.replay import bestseller_list, shop_bestsellers

LOG = pd.DataFrame(
    {
        "user_id": ["a", "a", "a", "b", "b", "c", "c", "held"],
        "item_id": ["x", "x", "y", "y", "z", "y", "z", "w"],
    }
)


def test_bestsellers_count_shoppers_not_actions_and_leave_out_held_out_shoppers():
    best = shop_bestsellers(LOG, leave_out=["held"])
    assert best.to_dict() == {"y": 3, "z": 2, "x": 1}  # a took x twice: one shopper
    assert list(best.index) == ["y", "z", "x"]
    assert "w" in shop_bestsellers(LOG).index


def test_bestseller_list_skips_the_shoppers_own_actions_and_ranks_from_one():
    best = shop_bestsellers(LOG, leave_out=["held"])
    rows = bestseller_list(best, ["y"], 5)
    assert rows["item_id"].tolist() == ["z", "x"] and rows["rank"].tolist() == [1, 2]
    assert rows["score"].tolist() == [2.0, 1.0] and (rows["explanation"] == "").all()
