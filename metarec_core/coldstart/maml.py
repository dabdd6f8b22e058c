"""The inner loop: adapt each user's fast weights on their support with torch.func (vmap x grad).

The support loss of one user is the mean softmax cross-entropy (over the whole catalogue) of their
support items. ``adapt`` takes ``steps`` gradient steps with per-parameter learning rates (Meta-SGD)
for a whole batch of users at once; with ``first_order`` the inner gradients are detached, otherwise
the outer loss back-propagates through them (second-order MAML).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad_and_value, vmap

from metarec_core.coldstart.net import ItemTables, user_scores

Phi = dict[str, torch.Tensor]


def support_loss_fn(tables: ItemTables, u0: torch.Tensor, mix: torch.Tensor) -> Callable:
    """The per-user support loss phi -> scalar, closed over the batch-wide item tensors."""

    def loss(phi: Phi, support, pos_logit, mask, rows) -> torch.Tensor:
        scores = user_scores(phi, support, pos_logit, mask, rows, tables, u0, mix)  # (N,)
        logp = torch.log_softmax(scores, dim=-1)
        return -(logp[support] * mask).sum() / mask.sum().clamp(min=1.0)

    return loss


def adapt(
    phi: Phi,
    batch: tuple[torch.Tensor, ...],
    tables: ItemTables,
    u0: torch.Tensor,
    mix: torch.Tensor,
    lrs: dict[str, torch.Tensor],
    steps: int,
    first_order: bool = False,
) -> tuple[Phi, torch.Tensor]:
    """Run ``steps`` inner steps for every user of the batch.

    Args:
        phi: fast weights, each (B, ...).
        batch: (support (B, K), pos_logit (B, K), mask (B, K), rows (B, K, N)).
        lrs: learning rate per fast weight, broadcastable to its (B, ...) tensor.
    Returns:
        adapted phi and the support loss before each step and after the last one, (B, steps + 1).
    """
    loss = support_loss_fn(tables, u0, mix)
    step = vmap(grad_and_value(loss), in_dims=(0, 0, 0, 0, 0))
    curve = []
    for _ in range(steps):
        g, value = step(phi, *batch)
        curve.append(value.detach())
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        phi = {k: phi[k] - lrs[k] * g[k] for k in phi}
    final = vmap(loss, in_dims=(0, 0, 0, 0, 0))(phi, *batch)
    curve.append(final.detach())
    return phi, torch.stack(curve, dim=1)
