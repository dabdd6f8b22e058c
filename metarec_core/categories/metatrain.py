"""Episodic meta-training of the residual projection on the categories a catalogue already has.

Each step samples an N-way k-shot episode from the known categories, embeds it through the
projection (after centring on the episode pool, as classification does), builds prototypes from
the support (plus the category-name embedding when enabled) and minimises the cross-entropy of
the queries' cosine logits. A few held-back training categories track transfer while training.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from metarec_core.categories.config import CategoryConfig
from metarec_core.categories.episodes import EpisodeSampler
from metarec_core.categories.protonet import ResidualProjection
from metarec_core.device import resolve_device
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)


def episode_logits(
    proj: ResidualProjection,
    x_s: torch.Tensor,  # (S, D) raw unit embeddings of the support
    y_s: torch.Tensor,  # (S,) labels 0..W-1
    x_q: torch.Tensor,  # (Q, D)
    names: torch.Tensor | None,  # (W, D) raw category-name embeddings, or None
    name_weight: float,
    center: bool,
) -> torch.Tensor:
    """Cosine logits (Q, W) of one episode under the projection, scaled by its temperature."""
    mu = torch.cat([x_s, x_q]).mean(0, keepdim=True) if center else 0.0
    z_s, z_q = proj(x_s - mu), proj(x_q - mu)
    w = int(y_s.max()) + 1
    protos = torch.zeros(w, z_s.shape[1], device=z_s.device).index_add(0, y_s, z_s)
    protos = nn.functional.normalize(protos, dim=-1)
    if names is not None and name_weight > 0:
        protos = nn.functional.normalize(protos + name_weight * proj(names - mu), dim=-1)
    scale = proj.log_temperature.exp()
    return scale * z_q @ protos.T


def meta_train(
    x: np.ndarray,
    labels: np.ndarray,
    names: np.ndarray | None,
    config: CategoryConfig,
    progress: Progress = no_progress,
) -> tuple[ResidualProjection, dict]:
    """Meta-train a projection on embeddings ``x`` (N, D) with integer ``labels`` (N,).

    ``names`` (C, D) are embeddings of the category names (row c for label c) or None.
    Returns the projection (on the CPU) and a small history dict for the training report.
    """
    device = resolve_device(config.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":  # tiny matrices: one thread is 4x faster than two on a busy CPU
        torch.set_num_threads(1)
    try:
        return _meta_train(x, labels, names, config, progress, device)
    finally:
        torch.set_num_threads(threads)


def _meta_train(
    x: np.ndarray,
    labels: np.ndarray,
    names: np.ndarray | None,
    config: CategoryConfig,
    progress: Progress,
    device: torch.device,
) -> tuple[ResidualProjection, dict]:
    torch.manual_seed(config.seed)
    proj = ResidualProjection(x.shape[1], config.rank)
    with torch.no_grad():
        proj.log_temperature.fill_(float(np.log(config.temperature)))
    proj.to(device)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    nt = torch.as_tensor(names, dtype=torch.float32, device=device) if names is not None else None
    sampler = EpisodeSampler(labels, min_items=2, seed=config.seed)
    rng = np.random.default_rng(config.seed + 1)
    params = [p for p in proj.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(config.episodes, 1))
    losses: list[float] = []
    eng = config.engine
    use_names = nt is not None and eng.name_weight > 0
    for step in range(config.episodes):
        k = int(rng.integers(1, config.k_shot_max + 1))
        ep = sampler.sample(config.n_way, k, config.n_query)
        ys = torch.as_tensor(ep.support_labels, device=device)
        yq = torch.as_tensor(ep.query_labels, device=device)
        ep_names = nt[torch.as_tensor(ep.classes, device=device)] if use_names else None
        # Half of the episodes without names, so the projection also works when names are off.
        if use_names and step % 2 == 1:
            ep_names = None
        logits = episode_logits(
            proj, xt[ep.support], ys, xt[ep.query], ep_names, eng.name_weight, eng.center
        )
        loss = nn.functional.cross_entropy(logits, yq)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 25 == 0 or step == config.episodes - 1:
            recent = float(np.mean(losses[-50:]))
            progress(
                ProgressEvent("meta-train", step + 1, config.episodes, metrics={"loss": recent})
            )
    proj = proj.cpu().eval()
    history = {
        "episodes": config.episodes,
        "final_loss": float(np.mean(losses[-100:])) if losses else None,
        "first_loss": float(np.mean(losses[:100])) if losses else None,
        "temperature": proj.log_temperature.exp().item(),
    }
    return proj, history
