"""``fastnerf train --viewer``: the viewer on the model while it trains.

``LiveView.on_step`` is the engine's per-step callback (``fastnerf.train.engine.StepReport``), on
the training thread. Without a browser it only writes a status line. With one, every
``refresh_seconds`` it tells the views that newer weights are to be had, and it serves the renders
the browser asks for on the training thread, between steps, within a share of the wall time
(``between_steps.BetweenSteps``): the averaged weights, as the checkpoint holds them, are copied into
the viewer's own model just before a frame is drawn with them, never when none is. Nothing is
rendered while the camera rests and the weights have not moved on.
"""

from __future__ import annotations

import copy
import time

from .between_steps import RENDER_SHARE, BetweenSteps
from .server import Viewer, check_port_free
from .sources import ViewedModel, viewed_model

# While training, no frame holds a step up longer than this: frames are sized to it from the last
# one's time per pixel (the first is small, to time), so an untrained model's slow renders come small.
LONGEST_FRAME_SECONDS = 1.0


class LiveView:
    def __init__(self, name: str, *, host: str, port: int, resolution: int = 256,
                 refresh_seconds: float = 5.0, share: float = RENDER_SHARE, log=None):
        check_port_free(host, port)  # at once, not after the first step
        self.name, self.host, self.port, self.resolution = name, host, port, resolution
        self.log = log or (lambda message: print(message, flush=True))
        self.refresh_seconds = float(refresh_seconds)
        self.renders = BetweenSteps(share)
        self.viewer: Viewer | None = None
        self.source: ViewedModel | None = None
        self.next_refresh = 0.0
        self.copied_version = 0  # the views' version whose weights the viewer's model holds
        self.started = None

    def on_step(self, report) -> None:
        if self.viewer is None:
            self._start(report)
        held_out = (report.held_out or {}).get("psnr")
        total = f" / {report.total_steps}" if report.total_steps else ""
        self.source.status = (f"training: step {report.step}{total}, loss {report.loss:.4g}, held-out PSNR "
                              + ("n/a" if held_out is None else f"{held_out:.2f} dB"))
        if self.viewer.connected:
            now = time.monotonic()
            if now >= self.next_refresh:
                self.next_refresh = now + self.refresh_seconds
                self.source.newer_weights()  # the views redraw; the weights are copied when they do
        self.renders.serve(lambda: self._copy_weights(report))  # (nothing asked for: returns at once)

    def _copy_weights(self, report) -> None:
        version = self.source.version
        if version != self.copied_version:
            self.source.model.load_state_dict(report.averaged_state())
            self.copied_version = version

    def _start(self, report) -> None:
        model = copy.deepcopy(report.model)
        for parameter in model.parameters():
            parameter.grad = None
            parameter.requires_grad_(False)
        model.load_state_dict(report.averaged_state())
        self.source = viewed_model(self.name, model.eval(), report.dataset_info(), where=self.name)
        self.source.run_work, self.source.longest_frame = self.renders.run, LONGEST_FRAME_SECONDS
        self.viewer = Viewer([self.source], host=self.host, port=self.port, resolution=self.resolution)
        self.started = time.monotonic()
        self.log(f"viewer: {self.viewer.url} (the averaged weights as training goes)")

    def finish(self, model) -> None:
        """Show the trained model (``model``: the averaged weights) from now on; renders run on the
        browser's session threads from here."""
        if self.source is None:
            return
        state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        self.source.offer_weights(state, self.source.status.replace("training:", "trained:", 1))
        self.source.longest_frame = None  # training no longer waits for frames: full resolution
        self.renders.stop_serving()
        seconds = time.monotonic() - self.started
        self.log(f"viewer: {self.renders.jobs_run} frames drawn while training, {self.renders.busy_seconds:.1f} s "
                 f"on the training thread ({100 * self.renders.busy_seconds / max(seconds, 1e-9):.1f}% of the "
                 f"{seconds:.0f} s since the viewer started)")

    def stop(self) -> None:
        self.renders.stop_serving()
        if self.viewer is not None:
            self.viewer.stop()
