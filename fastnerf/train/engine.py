"""The training engine: one loop for every model kind.

It owns the budget (steps, or minutes of wall time re-decided as the run goes: ``budget.py``), tqdm progress,
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
from typing import Callable

import torch

from ..devices import synchronize
from ..errors import UserError
from ..runs import load_buffers, load_checkpoint, load_model_state, save_checkpoint, upgraded_state
from .allocator import keep_freed_memory
from .budget import Budget, check_budget
from .denormals import with_flushed_denormals
from .distributed import Distributed
from .ema import ParameterAverage
from .optim import set_lr
from .tasks import Task, register_task, task_from_checkpoint  # noqa: F401  (register_task: the public door)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


clock = time.perf_counter  # the one clock the engine reads (tests replace it)
RANK_SEED_STRIDE = 0x9E3779B1  # rank r draws from seed + r * stride: distinct, reproducible streams


@dataclass
class Context:
    """What a task sees of the run."""

    device: torch.device
    rank: int
    world_size: int
    generator: torch.Generator  # this rank's; everything random in training draws from it
    total_steps: int | None  # None while a minutes budget is calibrating; it may change as the run goes
    backend: str | None  # op backend (None: the fastest for the device)
    distributed: Distributed = field(repr=False)
    log: object = print
    resuming: bool = False  # build_model: the checkpoint's weights follow (skip costly initialisation)

    def all_reduce_(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        return self.distributed.all_reduce_(tensor, op)


@dataclass
class StepReport:
    """What ``train(on_step=...)`` is handed after every step, on rank 0 only (a viewer, say).

    The callback runs on the training thread: it should return at once and copy what it keeps.
    ``model`` is the model in training (raw weights); ``averaged_state()`` copies its ``state_dict``
    with the averaged weights (the weights the checkpoint renders with; the buffers, such as the
    occupancy grid, as training has them now); ``dataset_info()`` is the task's.
    """

    step: int
    total_steps: int | None
    loss: float
    held_out: dict | None
    model: torch.nn.Module
    averaged_state: Callable[[], dict]
    dataset_info: Callable[[], dict]


class LoopClock:
    """Wall time of a session's training loop after its first step: ``steps`` later steps took
    ``seconds``, everything the loop does between them included (the ``on_step`` callback, held-out
    checks, checkpoints); start-up and the first step (warm-up, a viewer starting) are not. So
    ``steps / seconds`` is training's steady speed as the user sees it (``train.json``)."""

    def __init__(self):
        self.first_end, self.last_end, self.steps = None, None, 0

    def tick(self) -> None:  # at the end of every iteration
        self.last_end = clock()
        if self.first_end is None:
            self.first_end = self.last_end
        else:
            self.steps += 1

    @property
    def seconds(self) -> float:
        return 0.0 if self.first_end is None else self.last_end - self.first_end


def rank_generator(device: torch.device, seed: int, rank: int) -> torch.Generator:
    return torch.Generator(device).manual_seed((int(seed) + rank * RANK_SEED_STRIDE) % (1 << 63))


@with_flushed_denormals
def train(task: Task | None, out, *, steps: int | None = None, minutes: float | None = None, seed: int = 0,
          resume: bool = False, device=None, backend=None, eval_every: int = 500, checkpoint_every: int = 500,
          progress: bool = True, log=print, on_step: Callable[[StepReport], None] | None = None) -> dict:
    """Train ``task`` into the run folder ``out``.

    Args:
        task: what to train; with ``resume=True`` it may be None (rebuilt from the checkpoint, whose
            settings always win: only the budget may change).
        steps / minutes: the budget (minutes: wall time from this call on, everything included; the
            step count is re-decided as the run goes; with both, the smaller). On resume, none
            keeps the recorded budget.
        device: ``cpu``, ``cuda``, ``cuda:N`` (default: cuda when available); under torchrun each
            process takes the GPU of its local rank.
        backend: op backend for the task's kernels (default: the fastest for the device).
        eval_every / checkpoint_every: steps between held-out checks / checkpoints (0: only at the end).
        on_step: called with a ``StepReport`` after every step on rank 0 (e.g. ``fastnerf train --viewer``).
    Returns:
        a summary dict (also ``out/train.json`` on rank 0) with ``model``: the trained model,
        averaged weights, in eval mode.
    Raises:
        UserError (CheckpointError, DatasetError, ...): bad input; TrainingDiverged: a NaN loss.
    """
    started = clock()  # a minutes budget counts from here: building the model and loading data count
    keep_freed_memory()
    if not resume or steps is not None or minutes is not None:
        check_budget(steps, minutes)
    dist = Distributed.start(device)
    try:
        return _Run(task, Path(out), dist, started=started, steps=steps, minutes=minutes, seed=seed, resume=resume,
                    backend=backend, eval_every=eval_every, checkpoint_every=checkpoint_every, progress=progress,
                    log=log, on_step=on_step).run()
    finally:
        dist.close()


class _Run:
    def __init__(self, task, out, dist, *, started, steps, minutes, seed, resume, backend, eval_every, checkpoint_every,
                 progress, log, on_step=None):
        self.out, self.dist, self.log, self.show_progress = out, dist, log, progress
        self.started = started
        self.bar = None  # the progress bar, from run(); a task may log before (build_model)
        self.on_step = on_step if dist.is_main else None
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
        self.earlier_seconds = self.budget.elapsed  # wall seconds of the sessions before this one
        self.budget.every = {"eval": self.eval_every, "save": self.checkpoint_every}

    def _elapsed(self) -> float:
        """Wall seconds of the whole run: earlier sessions and this one so far."""
        return self.earlier_seconds + clock() - self.started

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
        loop = LoopClock()
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
                step_seconds = clock() - tick
                self.train_seconds += step_seconds
                session_seconds += step_seconds
                for key in counters:
                    counters[key] += float(stats.get(key, 0.0))
                first_decision = ctx.total_steps is None
                if self.budget.observe(self.step, step_seconds, self._elapsed(), self.dist.broadcast_int):
                    ctx.total_steps = self.budget.total_steps
                    self._announce_total(first_decision)
                    if first_decision:
                        evaluation = self._time_the_tail(history) or evaluation
                loss_value = float(loss.detach())
                self._show(stats, loss_value)
                if self.eval_every and self.step % self.eval_every == 0:
                    evaluation = self._timed("eval", self._evaluate, history) or evaluation
                if self.on_step is not None:
                    self.on_step(StepReport(self.step, self.budget.total_steps, loss_value, evaluation, model,
                                            self._viewed_state, task.dataset_info))
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self._timed("save", self._save)
                loop.tick()
        finally:
            if self.bar is not None:
                self.bar.close()
        self._save()
        if self.average is not None:
            self.average.copy_to_model()  # from here on the model holds the weights evaluation uses
            load_buffers(model, self.averaged_buffers)  # and the grid built from them, as load_run gives
        if not history or history[-1]["step"] != self.step:
            evaluation = self._evaluate(history, swap=False) or evaluation
        wall_seconds = self._elapsed()
        self._write(f"{self.step} steps; {self.budget.report(wall_seconds)}")
        world = self.dist.world_size
        summary = {"task": task.name, "steps": self.step, "train_seconds": self.train_seconds,
                   "wall_seconds": wall_seconds, "budget_seconds": self.budget.seconds,
                   "world_size": world, "device": str(ctx.device),
                   "samples_per_second": world * counters["n_samples"] / session_seconds if session_seconds else 0.0,
                   "rays_per_second": world * counters["n_rays"] / session_seconds if session_seconds else 0.0,
                   "loop_steps": loop.steps, "loop_seconds": loop.seconds,
                   "held_out_psnr": None if evaluation is None else evaluation.get("psnr"), "history": history,
                   "rank": self.dist.rank, **task.summary(model)}
        if self.dist.is_main:
            (self.out / "train.json").write_text(json.dumps(summary, indent=2))
        summary["model"] = model.eval()
        return summary

    def _time_the_tail(self, history: list) -> dict | None:
        """A run ends with a held-out check and a checkpoint. When a time budget is first decided
        and neither has been timed, do one of each now (counted too), so the budget reserves
        their time at the end instead of running over by it."""
        evaluation = None
        if "eval" not in self.budget.tail_seconds:
            evaluation = self._timed("eval", self._evaluate, history)
        if "save" not in self.budget.tail_seconds:
            self._timed("save", self._save)
        return evaluation

    def _timed(self, kind: str, work, *args):
        """``work(*args)``, its wall time counted as the budget's overhead of ``kind``."""
        tick = clock()
        try:
            return work(*args)
        finally:
            self.budget.add_overhead(kind, clock() - tick)

    def _viewed_state(self) -> dict:
        """A copy of the model's ``state_dict`` with the averaged weights in place of the raw ones
        (its buffers, the occupancy grid among them, as training has them now)."""
        state = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
        if self.average is not None:
            state.update({name: value.detach().clone() for name, value in zip(self.average.names,
                                                                                self.average.average)})
        return state

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

    def _announce_total(self, first: bool) -> None:
        total = self.budget.total_steps
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()
        if first:
            per_step = self.budget.seconds_per_step or 0.0
            self._write(f"{self.budget.minutes:g} minutes of wall time = about {total} steps at {per_step * 1e3:.1f} ms "
                        f"per step, held-out checks and checkpoints included (re-decided as the run goes)")

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
