"""Data-parallel training on torch.distributed, as ``torchrun`` launches it.

``torchrun --nproc_per_node=N -m fastnerf train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; ``Distributed.start`` joins them into a process group (nccl
on CUDA, one GPU per local rank; gloo on the CPU). The engine then averages gradients over the
ranks after every backward pass, lets tasks reduce their own state (the occupancy grid) and has
rank 0 alone write. A single process (no ``WORLD_SIZE``, or 1) needs no process group and every
call here is then a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..devices import resolve_device

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


class Distributed:
    """This process's place in the run: ``rank``, ``world_size``, ``device``."""

    def __init__(self, device: torch.device, rank: int = 0, world_size: int = 1, owns_group: bool = False):
        self.device, self.rank, self.world_size, self._owns_group = device, rank, world_size, owns_group

    @classmethod
    def start(cls, device=None) -> "Distributed":
        """Join the torchrun process group if this process is one of several, else run alone."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls(resolve_device(device))
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
        return cls(device, dist.get_rank(), dist.get_world_size(), owns)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` in place over the ranks (``"sum"``, ``"max"``, ``"min"``, ``"mean"``)."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op=_OPS["sum" if op == "mean" else op])
            if op == "mean":
                tensor.div_(self.world_size)
        return tensor

    def average_gradients(self, params, loss: torch.Tensor) -> torch.Tensor:
        """Average the gradients of ``params`` and ``loss`` over the ranks in one all-reduce.

        A parameter without a gradient on a rank contributes zeros. Returns the mean loss, which is
        NaN on every rank if it is NaN on any, so all ranks stop together.
        """
        if self.world_size == 1:
            return loss.detach()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0].dtype)])
        self.all_reduce_(flat, "mean")
        offset = 0
        for param, grad in zip(params, grads):
            count = grad.numel()
            param.grad = flat[offset:offset + count].view_as(param).clone()
            offset += count
        return flat[-1]

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank."""
        if self.world_size == 1:
            return int(value)
        tensor = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        dist.broadcast(tensor, src=0)
        return int(tensor.item())

    def gather(self, value) -> list:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
