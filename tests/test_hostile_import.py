"""Hostile files and names for the importer and tampered model folders: one clear line each,
the store file byte-for-byte unchanged; property-based fuzzing of the CSV importer."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_INTERACTIONS, TINY_ITEMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarec_core.data.importers import import_files
from metarec_core.data.store import Store
from metarec_core.errors import MetaRecError

HEADER = "user_id,item_id,timestamp\n"


def digest(path: Path) -> str:
    h = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        h.update(wal.read_bytes())
    return h.hexdigest()


@pytest.fixture
def seeded(tmp_path) -> Path:
    """A store file holding one dataset, 'shop'."""
    (tmp_path / "i.csv").write_text(TINY_INTERACTIONS)
    (tmp_path / "items.csv").write_text(TINY_ITEMS)
    path = tmp_path / "store.duckdb"
    with Store(path) as s:
        import_files(s, "shop", tmp_path / "i.csv", tmp_path / "items.csv")
    return path


def _bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _interactions_case(tmp_path: Path, case: str) -> tuple[Path, str]:
    """The interactions file of one hostile case and words its one-line error must contain."""
    rows = HEADER + "".join(f"u{n % 7},i{n % 4 + 1},{1000 + n}\n" for n in range(5000))
    packed = gzip.compress(rows.encode())
    frame = pd.DataFrame({"user_id": ["u1"] * 50, "item_id": ["i1"] * 50, "ts": range(50)})
    frame.to_parquet(tmp_path / "whole.parquet")
    whole = (tmp_path / "whole.parquet").read_bytes()
    cases = {
        "truncated gzip": lambda: (
            _bytes(tmp_path, "t.csv.gz", packed[: len(packed) // 2]),
            "truncated",
        ),
        "garbage gzip": lambda: (_bytes(tmp_path, "g.csv.gz", b"\x1f\x8bnot really"), "gzip"),
        "truncated parquet": lambda: (
            _bytes(tmp_path, "t.parquet", whole[: len(whole) // 2]),
            "Parquet",
        ),
        "garbage parquet": lambda: (
            _bytes(tmp_path, "g.parquet", b"not parquet at all"),
            "Parquet",
        ),
        "NaN timestamp": lambda: (
            _bytes(tmp_path, "nan.csv", (HEADER + "u1,i1,NaN\n").encode()),
            "finite",
        ),
        "1e400 timestamp": lambda: (
            _bytes(tmp_path, "inf.csv", (HEADER + "u1,i1,1e400\nu1,i2,5\n").encode()),
            "finite",
        ),
        "ragged row": lambda: (
            _bytes(tmp_path, "r.csv", (HEADER + "u1,i1,1\nu1,i2\nu2,i3,4\n").encode()),
            "line 3 has 2 field(s)",
        ),
        "extra field": lambda: (
            _bytes(tmp_path, "x.csv", (HEADER + "u1,i1,1\nu1,i2,3,4\n").encode()),
            "line 3 has 4 field(s)",
        ),
        "latin-1 bytes": lambda: (
            _bytes(tmp_path, "l.csv", (HEADER + "u1,i1,1\nu\xe9,i2,2\n").encode("latin-1")),
            "not UTF-8",
        ),
        "20 MB field": lambda: (
            _bytes(tmp_path, "big.csv", (HEADER + f"u1,{'x' * 20_000_000},1\n").encode()),
            "line limit",
        ),
        "empty file": lambda: (_bytes(tmp_path, "e.csv", b""), "empty"),
        "header only": lambda: (_bytes(tmp_path, "h.csv", HEADER.encode()), "no rows"),
        "no user column": lambda: (_bytes(tmp_path, "n.csv", b"a,b\n1,2\n"), "user_id"),
        "unknown items": lambda: (
            _bytes(tmp_path, "u.csv", (HEADER + "u1,zzz,1\n").encode()),
            "not in the items file",
        ),
        "empty ids": lambda: (_bytes(tmp_path, "ei.csv", (HEADER + ",i1,1\n").encode()), "empty"),
        "binary garbage": lambda: (_bytes(tmp_path, "b.csv", bytes(range(256)) * 40), ""),
        "missing file": lambda: (tmp_path / "nope.csv", "not found"),
    }
    return cases[case]()


@pytest.mark.parametrize(
    "case",
    [
        "truncated gzip",
        "garbage gzip",
        "truncated parquet",
        "garbage parquet",
        "NaN timestamp",
        "1e400 timestamp",
        "ragged row",
        "extra field",
        "latin-1 bytes",
        "20 MB field",
        "empty file",
        "header only",
        "no user column",
        "unknown items",
        "empty ids",
        "binary garbage",
        "missing file",
    ],
)
@pytest.mark.parametrize("replace", [False, True], ids=["new", "replace"])
def test_bad_interactions_are_refused_and_change_nothing(tmp_path, seeded, case, replace):
    path, words = _interactions_case(tmp_path, case)
    before = digest(seeded)
    with Store(seeded) as s, pytest.raises(MetaRecError) as info:
        import_files(s, "shop" if replace else "new", path, tmp_path / "items.csv", replace=replace)
    message = str(info.value)
    assert "\n" not in message.strip() and words in message, message
    assert "unexpected" not in message and "Conversion Error" not in message
    assert digest(seeded) == before


@pytest.mark.parametrize(
    "items, words",
    [
        ("item_id,title\ni1,a\ni1,b\n", "duplicate item id"),
        ("item_id,title\n,a\n", "empty item_id"),
        ("title,category\na,b\n", "item_id"),
        (f"item_id,title\ni1,{'y' * 3_000_000}\n", "line limit"),
    ],
)
def test_bad_items_are_refused(tmp_path, seeded, items, words):
    path = _bytes(tmp_path, "bad_items.csv", items.encode())
    before = digest(seeded)
    with Store(seeded) as s, pytest.raises(MetaRecError) as info:
        import_files(s, "new", tmp_path / "i.csv", path)
    assert words in str(info.value) and "\n" not in str(info.value).strip()
    assert digest(seeded) == before


@pytest.mark.parametrize(
    "name",
    ["good\n", "bad name", "../up", "a" * 64, "", "-dash", "main", "x;DROP", "ünï", "a\x00b", 'q"'],
)
def test_odd_dataset_names_are_refused(tmp_path, seeded, name):
    before = digest(seeded)
    with Store(seeded) as s, pytest.raises(MetaRecError, match="dataset name"):
        import_files(s, name, tmp_path / "i.csv", tmp_path / "items.csv")
    assert digest(seeded) == before


# ---- property-based fuzzing of the CSV importer ----------------------------------------------
_LINE = st.lists(
    st.sampled_from(["u1", "i1", "i2", "7", "", "NaN", "1e400", '"', '""', "é", "\t", ";", "x,y"]),
    max_size=5,
).map(",".join)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.lists(_LINE, max_size=6).map(lambda lines: HEADER + "\n".join(lines)),
        st.binary(max_size=300).map(lambda b: HEADER.encode() + b),
        st.binary(max_size=300),
    )
)
@pytest.mark.slow
def test_fuzzed_csv_never_crashes_or_changes_the_store(tmp_path, seeded, body):
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    path = _bytes(tmp_path, "fuzz.csv", data)
    before = digest(seeded)
    with Store(seeded) as s:
        try:
            import_files(s, "shop", path, tmp_path / "items.csv", replace=True)
        except MetaRecError as exc:
            assert "\n" not in str(exc).strip() and "unexpected" not in str(exc)
            changed = False
        else:
            changed = True
    if not changed:
        assert digest(seeded) == before


# ---- tampered model folders ------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from test_coldstart_engine import TINY, tiny_frames

    from metarec_core.coldstart.train import train_model
    from metarec_core.embed.encoder import FakeEncoder

    model = train_model(*tiny_frames(60), TINY, encoder=FakeEncoder())
    return model.save(tmp_path_factory.mktemp("model") / "m")


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _set_config(d: Path, **values) -> None:
    meta = json.loads((d / "config.json").read_text())
    meta["config"].update(values)
    (d / "config.json").write_text(json.dumps(meta))


TAMPER = {
    "config not json": (lambda d: (d / "config.json").write_text("{nope"), "config.json"),
    "config a list": (lambda d: (d / "config.json").write_text("[]"), "config.json"),
    "inner_steps 1e8": (lambda d: _set_config(d, inner_steps=100_000_000), "inner_steps"),
    "dim negative": (lambda d: _set_config(d, dim=-3), "dim"),
    "lr NaN": (lambda d: _set_config(d, lr=float("nan")), "lr"),
    "k above k_max": (lambda d: _set_config(d, k=99, k_max=4), "k"),
    "weights garbage": (
        lambda d: (d / "weights.safetensors").write_bytes(b"\x00" * 64),
        "weights.safetensors",
    ),
    "weights truncated": (
        lambda d: (d / "weights.safetensors").write_bytes(
            (d / "weights.safetensors").read_bytes()[:500]
        ),
        "weights.safetensors",
    ),
    "items garbage": (lambda d: (d / "items.parquet").write_bytes(b"PAR1junk"), "items.parquet"),
    "items reordered": (
        lambda d: pd.read_parquet(d / "items.parquet")
        .iloc[:-1]
        .to_parquet(d / "items.parquet", index=False),
        "items.parquet",
    ),
    "items missing": (lambda d: (d / "items.parquet").unlink(), "items.parquet"),
    "report not json": (lambda d: (d / "training_report.json").write_text("{"), "report"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampered_model_names_the_file(tmp_path, saved_model, case):
    from metarec_core.coldstart.model import ColdStartModel

    d = _copy(saved_model, tmp_path / "m")
    tamper, words = TAMPER[case]
    tamper(d)
    with pytest.raises(MetaRecError) as info:
        ColdStartModel.load(d, device="cpu")
    message = str(info.value)
    assert words in message and "\n" not in message.strip(), message


def test_model_for_another_catalogue_is_refused(saved_model):
    from test_coldstart_engine import tiny_frames

    from metarec_core.coldstart.model import ColdStartModel

    _, items = tiny_frames(60)
    ColdStartModel.load(saved_model, device="cpu", items=items)  # its own catalogue: fine
    with pytest.raises(MetaRecError, match="different catalogue"):
        ColdStartModel.load(saved_model, device="cpu", items=items.iloc[:-1])


@pytest.mark.parametrize(
    "meta, words",
    [
        ({"config": {"episodes": 10**9}, "temperature": 10.0}, "episodes"),
        ({"config": {}, "temperature": float("inf")}, "temperature"),
        ({"config": {"rank": "x"}, "temperature": 10.0}, "rank"),
        ({"temperature": 10.0}, "config"),
    ],
)
def test_tampered_category_model_is_refused(tmp_path, meta, words):
    from metarec_core.categories.model import CONFIG_FILE, CategoryModel

    (tmp_path / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(MetaRecError) as info:
        CategoryModel.load(tmp_path)
    assert words in str(info.value) and CONFIG_FILE in str(info.value)
