"""Support tuning: a few gradient steps on MiniLM's top layers with one task's labelled examples.

SetFit-style, for new categories with very few examples. The lower layers stay frozen, so every
text of the task (support, category names, queries) runs through them once; a copy of the top
layers is then tuned so that each support example (and each category name, as an extra example)
is closest to its own category's prototype, leave-one-out; finally every text is embedded with
the tuned copy. The shared encoder itself is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from metarec_core.types import Progress, ProgressEvent, no_progress

LOWER_BATCH = 256
TUNE_CHUNK = 32  # tuning rows per forward pass, grouped by length so little is padding
LOGIT_SCALE = 10.0  # cosine-logit scale of the tuning loss (the engine's untrained temperature)


@dataclass(frozen=True)
class TuningSettings:
    """steps: gradient steps; lr: AdamW learning rate; layers: top layers tuned; seed: dropout."""

    steps: int = 30
    lr: float = 5e-5
    layers: int = 2
    seed: int = 0


def _attention_bias(mask: torch.Tensor) -> torch.Tensor:
    """Additive attention mask (B, 1, 1, T): 0 on tokens, a large negative number on padding."""
    return (1.0 - mask[:, None, None, :].float()) * -1e4


def _run_layers(layers: Sequence[nn.Module], hidden: torch.Tensor, mask: torch.Tensor):
    bias = _attention_bias(mask)
    for layer in layers:
        hidden = layer(hidden, attention_mask=bias)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return hidden


def _pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, dim=-1)


class _LowerStates:
    """Hidden states after the frozen layers, one (T, D) tensor per text (no padding kept)."""

    def __init__(self, encoder, texts: Sequence[str], n_lower: int, progress: Progress) -> None:
        model, tok = encoder.model, encoder.tokenizer
        self.states: list[torch.Tensor] = [None] * len(texts)  # type: ignore[list-item]
        order = np.argsort([len(t) for t in texts], kind="stable")
        # plain tensors (not inference ones): the tuning reads them; the encoder's lock because
        # its tokenizer and model are shared with every other caller in the process
        with encoder.lock, torch.no_grad():
            for start in range(0, len(texts), LOWER_BATCH):
                idx = order[start : start + LOWER_BATCH]
                batch = tok(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=encoder.max_length,
                    return_tensors="pt",
                ).to(encoder.device)
                hidden = model.embeddings(
                    input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids")
                )
                mask = batch["attention_mask"]
                hidden = _run_layers(model.encoder.layer[:n_lower], hidden, mask)
                lengths = mask.sum(1).tolist()
                for j, i in enumerate(idx):
                    self.states[i] = hidden[j, : int(lengths[j])].clone()
                progress(ProgressEvent("embed", min(start + LOWER_BATCH, len(texts)), len(texts)))

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded (B, T, D) states and (B, T) mask for ``rows``."""
        parts = [self.states[i] for i in rows]
        width = max(p.shape[0] for p in parts)
        hidden = parts[0].new_zeros((len(parts), width, parts[0].shape[1]))
        mask = torch.zeros((len(parts), width), dtype=torch.long, device=parts[0].device)
        for j, p in enumerate(parts):
            hidden[j, : p.shape[0]] = p
            mask[j, : p.shape[0]] = 1
        return hidden, mask


def _by_length(lower: _LowerStates, rows: Sequence[int], size: int) -> list[np.ndarray]:
    """Positions into ``rows``, sorted by token count and cut into batches of ``size``, so a
    batch pads little."""
    order = np.argsort([lower.states[i].shape[0] for i in rows], kind="stable")
    return [order[a : a + size] for a in range(0, len(rows), size)]


def _embed(top: nn.ModuleList, lower: _LowerStates, rows: Sequence[int]) -> np.ndarray:
    out = np.zeros((len(rows), lower.states[0].shape[1]), dtype=np.float32)
    with torch.inference_mode():
        for idx in _by_length(lower, rows, LOWER_BATCH):
            hidden, mask = lower.batch([rows[i] for i in idx])
            out[idx] = _pool(_run_layers(top, hidden, mask), mask).float().cpu().numpy()
    return out


def _loo_loss(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Cross-entropy of each example against the prototypes, its own class rebuilt without it."""
    z = nn.functional.normalize(z - z.mean(0, keepdim=True), dim=-1)
    onehot = nn.functional.one_hot(labels, n_classes).to(z.dtype)  # (N, C)
    sums = onehot.T @ z  # (C, D)
    protos = sums.unsqueeze(0).repeat(len(z), 1, 1)  # (N, C, D)
    protos[torch.arange(len(z)), labels] = sums[labels] - z
    protos = nn.functional.normalize(protos, dim=-1)
    logits = LOGIT_SCALE * torch.einsum("nd,ncd->nc", z, protos)
    return nn.functional.cross_entropy(logits, labels)


Embeddings = tuple[np.ndarray, np.ndarray, np.ndarray]  # (support, queries, names), unit rows


def tune_and_embed(
    encoder,
    support: Sequence[str],
    labels: np.ndarray,
    names: Sequence[str],
    queries: Sequence[str],
    settings: TuningSettings = TuningSettings(),
    progress: Progress = no_progress,
) -> tuple[Embeddings, Embeddings]:
    """Tune a copy of ``encoder``'s top layers on the support, then embed every text with it.

    Args:
        encoder: a loaded ``MiniLMEncoder`` (its model and tokenizer are used, never changed).
        support: S labelled texts; labels: (S,) category indices in [0, len(names)).
        names: the C category names, each an extra example of its category.
        queries: Q texts to classify.
    Returns (before, after): each (support (S, D), queries (Q, D), names (C, D)) unit float32
    embeddings, ``before`` with the encoder as it is (what it would embed), ``after`` tuned.
    The lower layers run once for both.
    """
    model = encoder.model
    n_layers = len(model.encoder.layer)
    n_top = max(1, min(settings.layers, n_layers))
    texts = list(support) + list(names) + list(queries)
    lower = _LowerStates(encoder, texts, n_layers - n_top, progress)
    original = model.encoder.layer[n_layers - n_top :]
    top = copy.deepcopy(original)
    labels_all = torch.as_tensor(
        np.concatenate([np.asarray(labels, np.int64), np.arange(len(names))]),
        device=encoder.device,
    )
    chunks = _by_length(lower, range(len(support) + len(names)), TUNE_CHUNK)
    batches = [lower.batch(chunk.tolist()) for chunk in chunks]
    order = torch.as_tensor(np.argsort(np.concatenate(chunks)), device=encoder.device)
    on_cuda = str(encoder.device).startswith("cuda")
    with torch.random.fork_rng(devices=[encoder.device] if on_cuda else []):
        torch.manual_seed(settings.seed)
        top.train()
        opt = torch.optim.AdamW(top.parameters(), lr=settings.lr, weight_decay=0.0, foreach=True)
        for step in range(settings.steps):
            with torch.enable_grad():
                z = torch.cat([_pool(_run_layers(top, h, m), m) for h, m in batches])[order]
                loss = _loo_loss(z, labels_all, len(names))
                opt.zero_grad()
                loss.backward()
                opt.step()
            progress(ProgressEvent("tune", step + 1, settings.steps, "tuning on the support"))
    top.eval()
    rows = list(range(len(texts)))
    s, c = len(support), len(names)

    def split(x: np.ndarray) -> Embeddings:
        return x[:s], x[s + c :], x[s : s + c]

    return split(_embed(original, lower, rows)), split(_embed(top, lower, rows))
