"""Optimiser construction. Hashed n-gram tables have millions of rows of which a batch touches
a few thousand; they produce sparse gradients and are updated lazily (only touched rows move),
which makes an epoch on CPU seconds instead of minutes."""

from __future__ import annotations

import math

import torch

from ..models.base import ModerationModel


class LazyAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay) that also accepts sparse gradients.

    Dense gradients get the usual AdamW update. For a sparse gradient only the rows present in
    it are updated, moments included (as in ``torch.optim.SparseAdam``), and weight decay is
    applied to those rows only.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = float(state["step"])
                step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                grad = param.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows, values = grad.indices()[0], grad.values()
                    m = exp_avg[rows].mul_(beta1).add_(values, alpha=1 - beta1)
                    v = exp_avg_sq[rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
                    exp_avg[rows], exp_avg_sq[rows] = m, v
                    update = m / v.sqrt().add_(eps)
                    target = param[rows]
                    if decay:
                        target.mul_(1 - lr * decay)
                    param[rows] = target.sub_(update, alpha=step_size)
                else:
                    if decay:
                        param.mul_(1 - lr * decay)
                    exp_avg.lerp_(grad, 1 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-step_size)
        return loss


def build_optimizer(model: ModerationModel, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    groups = model.parameter_groups(weight_decay)
    if model.has_sparse_gradients:
        return LazyAdamW(groups, lr=learning_rate)
    return torch.optim.AdamW(groups, lr=learning_rate)
