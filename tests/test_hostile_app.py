"""The app refuses a cold-start model whose catalogue no longer matches its dataset (after
``import --replace`` brought other items), with one clear line instead of wrong rankings."""

from __future__ import annotations

import pytest
from app_support import DATASET, app_data, app_data_master, app_test, fixture_frames  # noqa: F401

pytestmark = pytest.mark.usefixtures("app_data")


def _replace_catalogue(data_dir) -> None:
    from metarec_core.config import Paths
    from metarec_core.data.importers import import_files
    from metarec_core.data.store import Store

    inter, items = fixture_frames()
    items = items.iloc[:-3]  # another catalogue: three products gone
    inter = inter[inter["item_id"].isin(items["item_id"])]
    with Store(Paths(data_dir).db_path) as store:
        import_files(store, DATASET, inter, items, replace=True)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["pages/coldstart_lab.py", "pages/embedding_map.py"])
def test_model_for_a_replaced_catalogue_is_refused(app_data, page):  # noqa: F811
    _replace_catalogue(app_data)
    at = app_test()
    at.switch_page(page).run()
    if page.endswith("embedding_map.py"):  # the map adapts only once a held-out user is picked
        picker = at.selectbox(key="map_user")
        if len(picker.options) < 3:
            pytest.skip("no held-out user to pick on this dataset")
        picker.set_value(picker.options[2].removeprefix("held-out user ")).run()
    errors = [e.value for e in at.error]
    assert any("cannot serve dataset" in e and "different catalogue" in e for e in errors), errors
    assert not at.exception, [e.value for e in at.exception]
