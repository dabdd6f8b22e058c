"""The cold-start scorer: item towers (text projection + id embeddings) and a per-user head.

A user is a set of "fast weights" phi = {"a": (K,) support-item weight logits, "d": (D,) vector
offset, "c": (2,) the user's own popularity and item-item propensities}, all starting at zero and
adapted on the support by the inner loop (see maml.py). For one
user with support rows s (K,), their positions from the end r (K,) and validity mask m (K,):

    w      = n * softmax(pos[r] + a) over valid slots     # (K,) weight of each support item
    u      = u0 + sum_j w_j * E_in[s_j] / sqrt(sum w) + d  # (D,) user vector
    score  = E_out @ u + (1 + c0) * bias + (beta + c1) * log(eps + w @ R)  # (N,)
                                                         # R = item-item rows of s (K, N)

E_in / E_out = text @ W_in / W_out + id embeddings (ids only for items seen in training, so new
items are scored through their text); bias = learned item bias + text bias; R holds EASE weights
(fit on warm users) of the support items, so the model starts from a strong item-item signal and
learns how to weigh it against the latent match per position and per user.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ItemTables:
    """Per-batch item tensors computed once from the module (E_in, E_out: (N, D), bias: (N,))."""

    def __init__(self, e_in: torch.Tensor, e_out: torch.Tensor, bias: torch.Tensor) -> None:
        self.e_in, self.e_out, self.bias = e_in, e_out, bias


class ColdStartNet(nn.Module):
    """Global (meta-learned) parameters of the scorer; see the module docstring for the maths."""

    def __init__(
        self,
        text: torch.Tensor,  # (N, T) frozen text embeddings
        seen: torch.Tensor,  # (N,) 1.0 for items seen in training
        log_pop: torch.Tensor,  # (N,) log(1 + count) from warm users
        dim: int,
        max_pos: int,
        inner_lr: float,
    ) -> None:
        super().__init__()
        n, t = text.shape
        self.register_buffer("text", text.float())
        self.register_buffer("seen", seen.float())
        self.w_in = nn.Linear(t, dim, bias=False)
        self.w_out = nn.Linear(t, dim, bias=False)
        self.id_in = nn.Parameter(torch.zeros(n, dim))
        self.id_out = nn.Parameter(torch.zeros(n, dim))
        self.id_bias = nn.Parameter(log_pop.float().clone() * 0.1)
        self.text_bias = nn.Linear(t, 1)
        self.u0 = nn.Parameter(torch.zeros(dim))
        self.pos = nn.Parameter(torch.zeros(max_pos))
        self.beta = nn.Parameter(torch.tensor(1.0))
        # Floor of the log item-item term, about a quarter of a typical item's strongest weight.
        self.register_buffer("ii_eps", torch.tensor(1e-3))
        # Meta-SGD: log inner learning rates, one per adapted parameter entry.
        self.log_lr_a = nn.Parameter(torch.full((1,), math.log(max(inner_lr, 1e-8))))
        self.log_lr_d = nn.Parameter(torch.full((dim,), math.log(max(inner_lr, 1e-8))))
        self.log_lr_c = nn.Parameter(torch.full((2,), math.log(max(inner_lr, 1e-8) * 0.2)))
        # ... times a learned factor per support size (1..max_pos): how far to move on n items.
        self.log_lr_n = nn.Parameter(torch.zeros(max_pos))
        # Tied text projections: at init E_in . E_out ~ 1.5 x text cosine (random projection).
        nn.init.normal_(self.w_in.weight, std=math.sqrt(1.5 / dim))
        self.w_out.weight.data.copy_(self.w_in.weight.data)
        nn.init.normal_(self.id_in, std=0.01)
        nn.init.normal_(self.id_out, std=0.01)

    @property
    def dim(self) -> int:
        return self.u0.shape[0]

    def tables(self) -> ItemTables:
        """Item tensors for the whole catalogue (recomputed per batch: they depend on the weights)."""
        seen = self.seen[:, None]
        e_in = self.w_in(self.text) + self.id_in * seen  # (N, D)
        e_out = self.w_out(self.text) + self.id_out * seen  # (N, D)
        bias = self.id_bias * self.seen + self.text_bias(self.text).squeeze(-1)  # (N,)
        return ItemTables(e_in, e_out, bias)

    def mix(self) -> torch.Tensor:
        """(beta, eps) of the item-item term beta * log(eps + w @ R)."""
        return torch.stack([self.beta, self.ii_eps])

    def inner_lrs(self, zero: bool = False) -> dict[str, torch.Tensor]:
        """Per-parameter inner learning rates for phi (zeros when ``zero``)."""
        lr = {"a": self.log_lr_a.exp(), "d": self.log_lr_d.exp(), "c": self.log_lr_c.exp()}
        return {k: v * 0 for k, v in lr.items()} if zero else lr

    def size_scale(self, mask: torch.Tensor) -> torch.Tensor:
        """(B,) inner learning-rate factor for each user's number of valid support items."""
        n = mask.sum(-1).long().clamp(1, self.log_lr_n.shape[0]) - 1
        return self.log_lr_n[n].exp()

    def init_phi(self, batch: int, k: int) -> dict[str, torch.Tensor]:
        """Starting fast weights for ``batch`` users with ``k`` support slots (all zeros)."""
        z = self.u0.new_zeros
        return {"a": z(batch, k), "d": z(batch, self.dim), "c": z(batch, 2)}


def support_weights(
    phi: dict[str, torch.Tensor], pos_logit: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """w = n * softmax(pos + a) over the n valid slots (..., K): mean weight 1, bounded."""
    logits = torch.where(mask > 0, pos_logit + phi["a"], torch.full_like(pos_logit, -1e4))
    return torch.softmax(logits, dim=-1) * mask * mask.sum(-1, keepdim=True)


def user_scores(
    phi: dict[str, torch.Tensor],
    support: torch.Tensor,  # (K,) item rows (padding rows point at 0 and are masked)
    pos_logit: torch.Tensor,  # (K,) pos[r]
    mask: torch.Tensor,  # (K,) float
    rows: torch.Tensor,  # (K, N) item-item weights of the support items
    tables: ItemTables,
    u0: torch.Tensor,
    mix: torch.Tensor,  # (2,) beta, eps of the item-item term
) -> torch.Tensor:
    """Scores of every catalogue item for one user (N,); vmapped over users by the callers."""
    w = support_weights(phi, pos_logit, mask)  # (K,)
    norm = torch.sqrt(w.sum() + 1e-6)
    u = u0 + (w[:, None] * tables.e_in[support]).sum(0) / norm + phi["d"]  # (D,)
    item_item = (mix[0] + phi["c"][1]) * torch.log(mix[1] + w @ rows)  # (N,)
    return tables.e_out @ u + (1 + phi["c"][0]) * tables.bias + item_item  # (N,)
