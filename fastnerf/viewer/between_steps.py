"""``train --viewer``'s renders, run on the training thread between steps, within a share of wall time.

A render thread of its own would run a second team of torch's intra-op threads beside training's
(torch gives every thread that runs parallel ops a team as large as ``--threads``): on a machine
with no more cores than training uses, the two teams take turns on the cores and training slows by
more than the render's time. Between steps a render has training's threads to itself, training
waits for it, and ``share`` bounds how much of the wall time that takes: the work a browser asks
for (``run``, from its session's thread) waits until the training thread calls ``serve`` and has
credit, which grows by ``share`` seconds per second of wall time (at most ``burst``) and shrinks by
the time the work took. Once training is over (``stop_serving``) the work runs where it is asked.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

# At most this share of training's wall time goes to the viewer's renders. Measured (quiet 2-core
# CPU, benchmarks/viewer_overhead.py, 3000 teacher steps): at 0.2 with new weights every 2 s, a
# connected browser at rest slowed training by 43% and a moving one by 79%, Chromium's own CPU
# (software WebGL on the same two cores) the larger part of the moving case.
RENDER_SHARE = 0.1
BURST_SECONDS = 0.5  # credit saved up while nothing is asked for, so a first frame comes at once


class _Job:
    def __init__(self, work: Callable):
        self.work, self.done = work, threading.Event()
        self.ran, self.result, self.error = False, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except Exception as error:  # noqa: BLE001  (the asking thread shows it; training carries on)
            self.error = error
        self.ran = True


class BetweenSteps:
    def __init__(self, share: float = RENDER_SHARE, burst: float = BURST_SECONDS, clock=time.monotonic):
        if not 0 < share < 1:
            raise ValueError(f"share must be in (0, 1), got {share}")
        self.share, self.burst, self.clock = share, burst, clock
        self._lock = threading.Lock()
        self._jobs: list[_Job] = []
        self._serving = True
        self._credit, self._credited_at = burst, clock()
        self.jobs_run = 0
        self.busy_seconds = 0.0  # training-thread seconds spent on the viewer's work

    @property
    def waiting(self) -> int:
        """How many pieces of work wait for the training thread."""
        return len(self._jobs)

    def run(self, work: Callable):
        """``work()``'s result (or its exception), from the training thread's next ``serve`` with
        credit; here and now once training is over."""
        job = _Job(work)
        with self._lock:
            queued = self._serving
            if queued:
                self._jobs.append(job)
        if not queued:
            return work()
        job.done.wait()
        if not job.ran:  # training stopped serving before it came to this
            return work()
        if job.error is not None:
            raise job.error
        return job.result

    def serve(self, prepare: Callable[[], None] | None = None) -> None:
        """On the training thread, between steps: run the waiting work if there is credit for it,
        ``prepare()`` first (copying the weights the work renders with); its time is debited."""
        if not self._jobs:  # the common case: nothing asked for, nothing to do
            return
        start = self.clock()
        self._credit = min(self.burst, self._credit + self.share * (start - self._credited_at))
        self._credited_at = start
        if self._credit <= 0:
            return
        with self._lock:
            jobs, self._jobs = self._jobs, []
        try:
            failed = None
            if prepare is not None:
                try:
                    prepare()
                except Exception as error:  # noqa: BLE001  (a failed copy is the renders' error, not training's)
                    failed = error
            for job in jobs:
                if failed is None:
                    job.run()
                else:
                    job.error, job.ran = failed, True
            self.jobs_run += len(jobs)
        finally:
            for job in jobs:
                job.done.set()
            spent = self.clock() - start
            self._credit -= spent
            self.busy_seconds += spent

    def stop_serving(self) -> None:
        """Training is over: waiting work and all work from now on runs on the thread that asks."""
        with self._lock:
            self._serving = False
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.done.set()
