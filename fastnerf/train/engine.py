"""The training engine: one loop for every model kind.

It owns the budget (steps, or minutes turned into steps once: ``budget.py``), tqdm progress,
atomic versioned checkpoints and exact resume (model, optimizer, averaged weights, every rank's
generator, the task's own state), averaged weights, divergence (a NaN or infinite loss on any
rank stops every rank and keeps the last good checkpoint), periodic cheap held-out evaluation,
device placement and data parallelism under torchrun (``distributed.py``). A model kind supplies
a ``Task`` (``fastnerf.train.tasks``): build the model, draw a batch and compute the loss, update
its own state, say what to checkpoint. The engine knows no model kind by name.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UserError
from .allocator import keep_freed_memory
from .budget import Budget, check_budget
from .checkpoint import load_buffers, load_checkpoint, load_model_state, save_checkpoint, upgraded_state
from .denormals import with_flushed_denormals
from .devices import synchronize
from .distributed import Distributed
from .ema import ParameterAverage
from .loop import TrainingDiverged, set_lr
from .tasks import Task, register_task, task_from_checkpoint  # noqa: F401  (register_task: the public door)

clock = time.perf_counter  # the one clock the engine reads (tests replace it)
RANK_SEED_STRIDE = 0x9E3779B1  # rank r draws from seed + r * stride: distinct, reproducible streams


@dataclass
class Context:
    """What a task sees of the run."""

    device: torch.device
    rank: int
    world_size: int
    generator: torch.Generator  # this rank's; everything random in training draws from it
    total_steps: int | None  # None while a minutes budget has not been turned into steps yet
    backend: str | None  # op backend (None: the fastest for the device)
    distributed: Distributed = field(repr=False)
    log: object = print
    resuming: bool = False  # build_model: the checkpoint's weights follow (skip costly initialisation)

    def all_reduce_(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        return self.distributed.all_reduce_(tensor, op)


def rank_generator(device: torch.device, seed: int, rank: int) -> torch.Generator:
    return torch.Generator(device).manual_seed((int(seed) + rank * RANK_SEED_STRIDE) % (1 << 63))


@with_flushed_denormals
def train(task: Task | None, out, *, steps: int | None = None, minutes: float | None = None, seed: int = 0,
          resume: bool = False, device=None, backend=None, eval_every: int = 500, checkpoint_every: int = 500,
          progress: bool = True, log=print) -> dict:
    """Train ``task`` into the run folder ``out``.

    Args:
        task: what to train; with ``resume=True`` it may be None (rebuilt from the checkpoint, whose
            settings always win: only the budget may change).
        steps / minutes: the budget (a minutes budget becomes a step count early on; with both,
            the smaller). On resume, none keeps the recorded budget.
        device: ``cpu``, ``cuda``, ``cuda:N`` (default: cuda when available); under torchrun each
            process takes the GPU of its local rank.
        backend: op backend for the task's kernels (default: the fastest for the device).
        eval_every / checkpoint_every: steps between held-out checks / checkpoints (0: only at the end).
    Returns:
        a summary dict (also ``out/train.json`` on rank 0) with ``model``: the trained model,
        averaged weights, in eval mode.
    Raises:
        UserError (CheckpointError, DatasetError, ...): bad input; TrainingDiverged: a NaN loss.
    """
    keep_freed_memory()
    if not resume or steps is not None or minutes is not None:
        check_budget(steps, minutes)
    dist = Distributed.start(device)
    try:
        return _Run(task, Path(out), dist, steps=steps, minutes=minutes, seed=seed, resume=resume, backend=backend,
                    eval_every=eval_every, checkpoint_every=checkpoint_every, progress=progress, log=log).run()
    finally:
        dist.close()


class _Run:
    def __init__(self, task, out, dist, *, steps, minutes, seed, resume, backend, eval_every, checkpoint_every,
                 progress, log):
        self.out, self.dist, self.log, self.show_progress = out, dist, log, progress
        self.bar = None  # the progress bar, from run(); a task may log before (build_model)
        self.eval_every, self.checkpoint_every = int(eval_every or 0), int(checkpoint_every or 0)
        self.checkpoint = load_checkpoint(out, map_location=dist.device) if resume else None
        engine_state = {}
        if self.checkpoint is not None:
            resumed_task = task_from_checkpoint(self.checkpoint)
            if task is not None and task.name != resumed_task.name:
                raise UserError(f"{out}: the checkpoint is a {resumed_task.name!r} run, not {task.name!r}")
            task = resumed_task
            engine_state = dict(self.checkpoint.get("extra", {}).get("engine") or {})
            seed = engine_state.get("seed", self.checkpoint.get("train_args", {}).get("seed", seed))
            self.budget = Budget.resumed(engine_state.get("budget") or {"steps": self.checkpoint["step"]},
                                         steps=steps, minutes=minutes)
        else:
            if task is None:
                raise UserError("train: give a task (or resume=True with a checkpoint)")
            self.budget = Budget(steps=steps, minutes=minutes)
        self.task, self.seed = task, int(seed)
        device = dist.device
        self.ctx = Context(device=device, rank=dist.rank, world_size=dist.world_size,
                           generator=rank_generator(device, self.seed, dist.rank), total_steps=self.budget.total_steps,
                           backend=backend, distributed=dist, log=self._write,
                           resuming=self.checkpoint is not None)
        torch.manual_seed(self.seed)  # the same initial weights on every rank
        self.model = task.build_model(self.ctx).to(device)
        self.optimizer = task.make_optimizer(self.model)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.average = None if task.ema_decay is None else ParameterAverage(self.model, decay=task.ema_decay)
        self.step, self.train_seconds = 0, 0.0
        self.last_saved = None
        self.averaged_buffers = {}
        if self.checkpoint is not None:
            self._restore(engine_state)

    # ------------------------------------------------------------------ state
    def _restore(self, engine_state: dict) -> None:
        checkpoint = self.checkpoint
        load_model_state(self.model, checkpoint["model"], checkpoint["model_kind"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.average is not None and checkpoint.get("averaged"):
            averaged = checkpoint["averaged"]
            self.average.load_state_dict({**averaged, "params": upgraded_state(self.model, averaged["params"])})
        extra = checkpoint.get("extra", {})
        self.task.load_state_dict(dict(extra.get("task_state") or extra.get("state") or {}))
        self.step = self.last_saved = int(checkpoint["step"])
        self.train_seconds = float(extra.get("train_seconds", 0.0))
        rng = checkpoint.get("rng", {})
        states = rng.get("ranks") or ([rng["train"]] if "train" in rng else [])
        same_layout = len(states) == self.dist.world_size and rng.get("device", "cpu") == self.dist.device.type
        if same_layout:
            self.ctx.generator.set_state(states[self.dist.rank].cpu())
        else:  # another world size or device: fresh streams, reproducible from the step
            self.ctx.generator = rank_generator(self.dist.device, self.seed + self.step, self.dist.rank)
            self._write(f"resuming on {self.dist.world_size} process(es) on {self.dist.device.type} from a run of "
                        f"{len(states)} on {rng.get('device', 'cpu')}: random streams restart, so the result is not "
                        "bitwise that of an uninterrupted run")

    def _save(self) -> None:
        states = self.dist.gather(self.ctx.generator.get_state())  # a collective: every rank calls it
        if not self.dist.is_main:
            return
        engine = {"seed": self.seed, "budget": self.budget.state_dict(), "world_size": self.dist.world_size,
                  "device": str(self.dist.device)}
        save_checkpoint(self.out, model=self.model, optimizer=self.optimizer, step=self.step,
                        rng={"train": states[0], "ranks": states, "device": self.dist.device.type},
                        train_args=self.task.train_args(), dataset=self.task.dataset_info(),
                        extra={"train_seconds": self.train_seconds, "engine": engine,
                               "task_state": self.task.state_dict()},
                        averaged=None if self.average is None else self._averaged_state(), task=self.task.name)
        self.last_saved = self.step

    def _averaged_state(self) -> dict:
        """The averaged weights and the buffers the model derives from them (its occupancy grid,
        rebuilt: ``model.rebuilt_buffers``), which a loaded model and the returned one use."""
        state = self.average.state_dict()
        rebuild = getattr(self.model, "rebuilt_buffers", None)
        if rebuild is not None:
            with self.average.swapped_in():
                state["buffers"] = rebuild(backend=self.ctx.backend)
        self.averaged_buffers = state.get("buffers") or {}
        return state

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        task, ctx, model = self.task, self.ctx, self.model
        counters = {"n_samples": 0.0, "n_rays": 0.0}
        session_seconds, history, evaluation = 0.0, [], None
        self.bar = self._progress()
        model.train()
        try:
            while self.budget.running(self.step):
                tick = clock()
                set_lr(self.optimizer, task.lr_factor(self.step, self.budget.total_steps))
                loss, stats = task.loss(model, self.step, ctx)
                if self.dist.world_size == 1:
                    self._check_finite(loss)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self._check_finite(self.dist.average_gradients(self.params, loss))
                self.optimizer.step()
                if self.average is not None:
                    self.average.update()
                self.step += 1
                task.after_step(model, self.step, ctx)
                synchronize(ctx.device)
                elapsed = clock() - tick
                self.train_seconds += elapsed
                session_seconds += elapsed
                for key in counters:
                    counters[key] += float(stats.get(key, 0.0))
                if self.budget.observe(self.step, self.train_seconds, self.dist.broadcast_int):
                    ctx.total_steps = self.budget.total_steps
                    self._announce_total()
                self._show(stats, float(loss.detach()))
                if self.eval_every and self.step % self.eval_every == 0:
                    evaluation = self._evaluate(history) or evaluation
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self._save()
        finally:
            if self.bar is not None:
                self.bar.close()
        self._save()
        if self.average is not None:
            self.average.copy_to_model()  # from here on the model holds the weights evaluation uses
            load_buffers(model, self.averaged_buffers)  # and the grid built from them, as load_run gives
        if not history or history[-1]["step"] != self.step:
            evaluation = self._evaluate(history, swap=False) or evaluation
        world = self.dist.world_size
        summary = {"task": task.name, "steps": self.step, "train_seconds": self.train_seconds,
                   "world_size": world, "device": str(ctx.device),
                   "samples_per_second": world * counters["n_samples"] / session_seconds if session_seconds else 0.0,
                   "rays_per_second": world * counters["n_rays"] / session_seconds if session_seconds else 0.0,
                   "held_out_psnr": None if evaluation is None else evaluation.get("psnr"), "history": history,
                   "rank": self.dist.rank, **task.summary(model)}
        if self.dist.is_main:
            (self.out / "train.json").write_text(json.dumps(summary, indent=2))
        summary["model"] = model.eval()
        return summary

    def _check_finite(self, loss: torch.Tensor) -> None:
        if torch.isfinite(loss):
            return
        where = (f"{self.out}/checkpoint.pt (step {self.last_saved})" if self.last_saved is not None
                 else "none was written yet")
        raise TrainingDiverged(f"loss became {float(loss.detach())} at step {self.step}; training stopped; "
                               f"last good checkpoint: {where}")

    def _evaluate(self, history: list, swap: bool = True) -> dict | None:
        if not self.dist.is_main:
            return None
        if swap and self.average is not None:
            with self.average.swapped_in():
                result = self.task.evaluate(self.model, self.ctx)
        else:
            result = self.task.evaluate(self.model, self.ctx)
        self.model.train()
        if result is None:
            return None
        history.append({"step": self.step, "seconds": round(self.train_seconds, 2),
                        **{k: v for k, v in result.items() if isinstance(v, (int, float))}})
        figures = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                            if isinstance(v, (int, float)))
        self._write(f"step {self.step}: held-out {figures} ({self.train_seconds:.0f} s trained)")
        return result

    # ------------------------------------------------------------------ progress
    def _progress(self):
        if not self.show_progress or not self.dist.is_main:
            return None
        from tqdm import tqdm

        return tqdm(total=self.budget.total_steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=0.5)

    def _announce_total(self) -> None:
        total = self.budget.total_steps
        per_step = self.budget.seconds_per_step or 0.0
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()
        checks = f"; held-out checks every {self.eval_every} steps come on top" if self.eval_every else ""
        self._write(f"{self.budget.minutes:g} minutes of training = {total} steps at {per_step * 1e3:.1f} ms per step "
                    f"(decided at step {self.step}{checks})")

    def _show(self, stats: dict, loss: float) -> None:
        if self.bar is None:
            return
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in stats.items() if k not in ("n_samples",)}
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4g}", **shown, refresh=False)

    def _write(self, message: str) -> None:
        if not self.dist.is_main:
            return
        if self.bar is not None:
            self.bar.write(message)
        elif self.log is not None:
            self.log(message)
