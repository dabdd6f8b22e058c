"""Every cold-start training setting changes what training produces (or is refused when invalid)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_coldstart_engine import tiny_frames

from metarec_core.coldstart import ColdStartConfig
from metarec_core.coldstart.train import train_model
from metarec_core.embed.encoder import FakeEncoder
from metarec_core.errors import ValidationError
from metarec_core.services.models import TRAIN_K_MAX, TRAIN_METHODS, coldstart_overrides

BASE = ColdStartConfig(
    epochs=1, min_steps=0, max_steps=6, batch_size=16, dim=8, k_max=4, neighbours=10, device="cpu"
)


@pytest.fixture(scope="module")
def frames():
    return tiny_frames(n_users=80)


def _train(frames, **overrides):
    return train_model(*frames, dataclasses.replace(BASE, **overrides), encoder=FakeEncoder())


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.meta.state_dict().items()}


@pytest.mark.slow
def test_the_training_pages_inner_loop_choices_train_different_models(frames):
    configs = [coldstart_overrides(m, 3, 1) for m in TRAIN_METHODS]
    assert len({tuple(sorted(c.items())) for c in configs}) == len(TRAIN_METHODS)
    meta_sgd, second, first = (
        _weights(_train(frames, **{k: c[k] for k in ("learn_inner_lr", "first_order")}))
        for c in configs
    )
    start = math.log(BASE.inner_lr)
    # Meta-SGD moves its inner rates; both MAML variants keep every rate at inner_lr
    assert not torch.allclose(meta_sgd["log_lr_d"], torch.full_like(meta_sgd["log_lr_d"], start))
    for fixed in (second, first):
        assert torch.allclose(fixed["log_lr_a"], torch.tensor([start]))
        assert torch.allclose(fixed["log_lr_d"], torch.full_like(fixed["log_lr_d"], start))
    # second-order MAML back-propagates through the inner loop: other weights than first order
    assert not torch.allclose(second["u0"], first["u0"])
    assert not torch.allclose(second["w_in.weight"], first["w_in.weight"])


@pytest.mark.slow
def test_weight_decay_shrinks_the_id_embeddings(frames):
    plain = _weights(_train(frames))
    decayed = _weights(_train(frames, weight_decay=5.0))
    assert decayed["id_in"].norm() < plain["id_in"].norm()
    assert decayed["id_out"].norm() < plain["id_out"].norm()


def test_k_is_bounded_by_k_max():
    with pytest.raises(ValidationError, match="k_max"):
        ColdStartConfig(k=5, k_max=4)
    assert ColdStartConfig(k=4, k_max=4).k == 4
    assert coldstart_overrides(TRAIN_METHODS[0], TRAIN_K_MAX, 2)["k"] == TRAIN_K_MAX
    with pytest.raises(ValidationError, match="k must be between"):
        coldstart_overrides(TRAIN_METHODS[0], TRAIN_K_MAX + 1, 2)
    with pytest.raises(ValidationError, match="unknown training method"):
        coldstart_overrides("Reptile", 3, 2)
