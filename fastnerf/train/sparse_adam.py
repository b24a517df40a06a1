"""``RowSparseAdam``: Adam that updates only the rows of a large table that received a gradient.

A grid of stored values (millions of them) sees a few percent of its rows touched by one training
step's rays; a dense Adam step would read and write every value and its two moments each step (the
step's largest cost on a CPU). Parameter groups with ``row_sparse=True`` get lazy Adam, as
``torch.optim.SparseAdam`` does for sparse gradients: the moments and the value of a row change
only on steps whose gradient is non-zero in that row, with the bias correction of the
parameter's step count. Other groups get plain Adam. The gradient may be dense (what autograd
gives); the touched rows are found from it.
"""

from __future__ import annotations

import torch


class RowSparseAdam(torch.optim.Optimizer):
    """Adam (``betas``, ``eps``) with lazy row updates in groups marked ``row_sparse=True``."""

    def __init__(self, params, *, lr: float, betas=(0.9, 0.99), eps: float = 1e-15):
        if lr <= 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"RowSparseAdam: bad lr {lr}, betas {betas} or eps {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, row_sparse=False))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
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
                correction1, correction2 = 1 - beta1 ** step, 1 - beta2 ** step
                grad, exp_avg, exp_avg_sq = param.grad, state["exp_avg"], state["exp_avg_sq"]
                if group["row_sparse"] and param.dim() >= 1:
                    rows = grad.reshape(grad.shape[0], -1).any(1).nonzero().squeeze(1)
                    grad = grad[rows]
                    m = exp_avg[rows].mul_(beta1).add_(grad, alpha=1 - beta1)
                    v = exp_avg_sq[rows].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    exp_avg[rows], exp_avg_sq[rows] = m, v
                    update = (m / correction1) / ((v / correction2).sqrt_().add_(group["eps"]))
                    param.index_add_(0, rows, update, alpha=-group["lr"])
                else:
                    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    denominator = (exp_avg_sq / correction2).sqrt_().add_(group["eps"])
                    param.addcdiv_(exp_avg, denominator, value=-group["lr"] / correction1)
        return loss
