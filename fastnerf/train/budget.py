"""A training budget in steps, or in minutes turned into steps once.

Every schedule (learning rate, the switch to sub-rays, a student's fine-tuning phase) depends on
the step and the total step count only, never on the clock, so a run killed and resumed ends
bitwise equal to one that never stopped. A minutes budget is therefore turned into a step count
once, early in the run: after ``CALIBRATION_SHARE`` of the budget (at most ``CALIBRATION_MAX_S``
seconds) the time per step over the second half of that window decides how many steps fit. The
second half, because a run's first steps are slower than the rest (lazy initialisation; the
teacher's occupancy-grid warm-up evaluates every cell): timing them from the start undercounted
a 3-minute teacher by 30%. The count is recorded in the checkpoint; under torchrun rank 0
decides and broadcasts it, so every rank runs the same number of steps. The clock is read only
to decide.
"""

from __future__ import annotations

import math

from ..errors import UserError

CALIBRATION_SHARE = 0.25
CALIBRATION_MAX_S = 60.0
MIN_CALIBRATION_STEPS = 3


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
    """``total_steps`` once known; ``minutes`` (or None) while a time budget still calibrates."""

    def __init__(self, *, steps: int | None = None, minutes: float | None = None, total_steps: int | None = None,
                 seconds_per_step: float | None = None):
        self.steps = None if steps is None else int(steps)
        self.minutes = None if minutes is None else float(minutes)
        self.seconds_per_step = seconds_per_step
        self.total_steps = total_steps if total_steps is not None else (self.steps if self.minutes is None else None)
        self._clock = []  # (step, train_seconds) of this session while the count is undecided

    def running(self, step: int) -> bool:
        return self.total_steps is None or step < self.total_steps

    def observe(self, step: int, train_seconds: float, broadcast=None) -> bool:
        """After ``step`` steps and ``train_seconds`` of training: decide the step count if it is
        time to (``broadcast(int) -> int`` shares rank 0's decision). True when it was decided now."""
        if self.total_steps is not None:
            return False
        self._clock.append((step, train_seconds))
        budget_s = self.minutes * 60.0
        ready = len(self._clock) >= MIN_CALIBRATION_STEPS and (
            train_seconds >= min(CALIBRATION_SHARE * budget_s, CALIBRATION_MAX_S) or train_seconds >= budget_s)
        decision = -1
        if ready:
            per_step = self._recent_seconds_per_step()
            total = step + max(0, math.floor((budget_s - train_seconds) / per_step))
            if self.steps is not None:
                total = min(total, self.steps)
            decision = max(total, step)
            self.seconds_per_step = per_step
        if broadcast is not None:
            decision = broadcast(decision)
        if decision < 0:
            return False
        self.total_steps = decision
        return True

    def _recent_seconds_per_step(self) -> float:
        """Seconds per step over the later half of the (step, seconds) pairs seen so far."""
        (first_step, first_s), (step, seconds) = self._clock[0], self._clock[-1]
        middle = (first_s + seconds) / 2
        step_mid, seconds_mid = next((s, t) for s, t in self._clock if t >= middle)
        if step_mid >= step:  # one long step: fall back to the whole window
            step_mid, seconds_mid = first_step, first_s
        return max((seconds - seconds_mid) / max(step - step_mid, 1), 1e-9)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "minutes": self.minutes, "total_steps": self.total_steps,
                "seconds_per_step": self.seconds_per_step}

    @classmethod
    def resumed(cls, state: dict, *, steps=None, minutes=None) -> "Budget":
        """The budget of a resumed run: its recorded one, unless a new budget is given.

        A new ``steps`` budget replaces the count; a new ``minutes`` budget is turned into steps at
        the recorded time per step (or calibrated afresh if the run never got that far).
        """
        if steps is None and minutes is None:
            return cls(steps=state.get("steps"), minutes=state.get("minutes"), total_steps=state.get("total_steps"),
                       seconds_per_step=state.get("seconds_per_step"))
        per_step = state.get("seconds_per_step")
        if minutes is not None and per_step:
            total = max(1, math.floor(minutes * 60.0 / per_step))
            if steps is not None:
                total = min(total, int(steps))
            return cls(steps=steps, minutes=minutes, total_steps=total, seconds_per_step=per_step)
        return cls(steps=steps, minutes=minutes)
