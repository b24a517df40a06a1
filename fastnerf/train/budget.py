"""A training budget in steps, or in minutes of wall time re-decided as the run goes.

Every schedule (learning rate, the switch to sub-rays, a student's fine-tuning phase) reads the
step and the current step count only, never the clock. A minutes budget counts everything the run
does from the moment ``train`` is called: building the model, the steps, held-out checks and
checkpoints. The step count is decided first after ``CALIBRATION_SHARE`` of the budget (at most
``CALIBRATION_MAX_S`` seconds) from the step times of the later half of that window (a run's first
steps are slower: lazy initialisation, the teacher's occupancy-grid warm-up), then re-decided
after every step from

    remaining steps = (budget - elapsed - tail) / (seconds per step + overhead per step)

where the seconds per step are a time-weighted average over the last ``TRACKING_SHARE`` of the
budget (so a machine that slows down mid-run is followed within seconds), the overhead per step is
the last held-out check and checkpoint spread over their cadence (every ``eval_every`` and
``checkpoint_every`` steps), and the tail is one of each (the run ends with them; the engine
times one of each when it first decides, so the tail is known from then on). A fixed count decided once at 25% of the budget
missed by 8-36% on a host whose speed changed later.

The budget's whole state (elapsed seconds, the averages, the count) is recorded in every
checkpoint, and a resumed run goes on from it, so a run killed and resumed makes the same decisions
as one that never stopped, given the same clock (``tests/test_engine.py`` replaces the clock).
Under torchrun rank 0 decides and broadcasts, so every rank runs the same number of steps.
"""

from __future__ import annotations

import math

from ..errors import UserError

CALIBRATION_SHARE = 0.05
CALIBRATION_MAX_S = 15.0
MIN_CALIBRATION_STEPS = 3
TRACKING_SHARE = 0.05


def check_budget(steps, minutes, *, where: str = "train") -> None:
    """At least one of ``steps``/``minutes``, minutes positive, steps >= 0 (0: build and initialise
    the model, e.g. bake it, and save it untrained), or a UserError naming it."""
    if steps is None and minutes is None:
        raise UserError(f"{where}: give a budget, steps or minutes")
    if minutes is not None and (isinstance(minutes, bool) or not minutes > 0):
        raise UserError(f"{where}: minutes must be positive, got {minutes!r}")
    if steps is not None and (isinstance(steps, bool) or not steps >= 0):
        raise UserError(f"{where}: steps must be 0 or more, got {steps!r}")
    if steps is not None and int(steps) != steps:
        raise UserError(f"{where}: steps must be a whole number, got {steps!r}")


class Budget:
    """``total_steps`` (None while a time budget still calibrates) and what decides it."""

    def __init__(self, *, steps: int | None = None, minutes: float | None = None, total_steps: int | None = None,
                 seconds_per_step: float | None = None, elapsed: float = 0.0, tail_seconds: dict | None = None):
        self.steps = None if steps is None else int(steps)
        self.minutes = None if minutes is None else float(minutes)
        self.seconds_per_step = seconds_per_step  # time-weighted recent average (None: not yet measured)
        self.total_steps = total_steps if total_steps is not None else (self.steps if self.minutes is None else None)
        self.elapsed = float(elapsed)  # wall seconds of the whole run so far, every session
        self.tail_seconds = dict(tail_seconds or {})  # the last held-out check's and checkpoint's seconds
        self.every = {}  # {"eval": steps between held-out checks, "save": between checkpoints} (engine's)
        self._clock = []  # (step, seconds of steps) of this session while the count is undecided

    @property
    def seconds(self) -> float | None:
        return None if self.minutes is None else self.minutes * 60.0

    def running(self, step: int) -> bool:
        return self.total_steps is None or step < self.total_steps

    def add_overhead(self, kind: str, seconds: float) -> None:
        """A held-out check (``kind="eval"``) or checkpoint (``"save"``) took ``seconds``."""
        self.tail_seconds[kind] = float(seconds)

    def observe(self, step: int, step_seconds: float, elapsed: float, broadcast=None) -> bool:
        """Step ``step`` took ``step_seconds``; the run has taken ``elapsed`` wall seconds. Decide the
        step count (``broadcast(int) -> int`` shares rank 0's decision). True when it changed."""
        self.elapsed = float(elapsed)
        if self.minutes is None:
            return False
        decision = self._decide(step, float(step_seconds))
        if broadcast is not None:
            decision = broadcast(decision)
        if decision < 0 or decision == self.total_steps:
            return False
        self.total_steps = decision
        return True

    def _decide(self, step: int, step_seconds: float) -> int:
        """The step count from here (-1: still calibrating)."""
        budget_s = self.seconds
        if self.seconds_per_step is None:
            seconds = (self._clock[-1][1] if self._clock else 0.0) + step_seconds
            self._clock.append((step, seconds))
            ready = len(self._clock) >= MIN_CALIBRATION_STEPS and (
                self.elapsed >= min(CALIBRATION_SHARE * budget_s, CALIBRATION_MAX_S) or self.elapsed >= budget_s)
            if not ready:
                return -1
            self.seconds_per_step = self._calibrated_seconds_per_step()
        else:  # a time-weighted average: a step's weight is its share of the tracking window
            weight = min(1.0, step_seconds / (TRACKING_SHARE * budget_s))
            self.seconds_per_step += weight * (step_seconds - self.seconds_per_step)
        overhead_per_step = sum(seconds / self.every[kind] for kind, seconds in self.tail_seconds.items()
                                if self.every.get(kind))
        remaining_s = budget_s - self.elapsed - sum(self.tail_seconds.values())
        per_step = max(self.seconds_per_step + overhead_per_step, 1e-9)
        total = step + max(0, math.floor(remaining_s / per_step))
        return total if self.steps is None else min(total, self.steps)

    def _calibrated_seconds_per_step(self) -> float:
        """Seconds per step over the later half of this session's calibration steps."""
        (first_step, first_s), (step, seconds) = self._clock[0], self._clock[-1]
        middle = (first_s + seconds) / 2
        step_mid, seconds_mid = next((s, t) for s, t in self._clock if t >= middle)
        if step_mid >= step:  # one long step: fall back to the whole window
            step_mid, seconds_mid = first_step, first_s
        return max((seconds - seconds_mid) / max(step - step_mid, 1), 1e-9)

    def report(self, wall_seconds: float) -> str:
        """One line: the run's wall time, against the budget when it is a time budget."""
        if self.minutes is None:
            return f"wall time {wall_seconds:.1f} s"
        return (f"wall time {wall_seconds:.1f} s against a budget of {self.seconds:.0f} s "
                f"({(wall_seconds - self.seconds) / self.seconds:+.1%})")

    def state_dict(self) -> dict:
        return {"steps": self.steps, "minutes": self.minutes, "total_steps": self.total_steps,
                "seconds_per_step": self.seconds_per_step, "elapsed": self.elapsed,
                "tail_seconds": dict(self.tail_seconds)}

    @classmethod
    def resumed(cls, state: dict, *, steps=None, minutes=None) -> "Budget":
        """The budget of a resumed run: its recorded one, unless a new budget is given.

        A new ``steps`` budget replaces the count; a new ``minutes`` budget is the whole run's
        (the time already spent counts), re-decided from the recorded averages as the run goes on.
        """
        measured = {key: state[key] for key in ("seconds_per_step", "elapsed", "tail_seconds") if state.get(key) is not None}
        if steps is None and minutes is None:
            return cls(steps=state.get("steps"), minutes=state.get("minutes"), total_steps=state.get("total_steps"),
                       **measured)
        return cls(steps=steps, minutes=minutes, **measured)
