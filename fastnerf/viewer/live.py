"""``fastnerf train --viewer``: the viewer on the model while it trains.

``LiveView.on_step`` is the engine's per-step callback (``fastnerf.train.engine.StepReport``), on
the training thread. It only writes a status line unless a browser is connected; then, at most every
``refresh_seconds``, and never so often that copying the weights costs training more than about 5%
or that redrawing with them keeps a core busy more than a fifth of the time, it copies the averaged
weights, as the checkpoint holds them, for the viewer's own copy of the model, which the render
threads swap in before their next frame. Training never waits for a render.
"""

from __future__ import annotations

import copy
import time

from .server import Viewer, check_port_free
from .sources import ViewedModel, viewed_model

COPY_SHARE = 0.05  # at most this share of training time goes to copying weights for the viewer
REDRAW_SHARE = 0.2  # redraws for new weights keep a core busy at most this share of the time


class LiveView:
    def __init__(self, name: str, *, host: str, port: int, resolution: int = 256,
                 refresh_seconds: float = 2.0, log=None):
        check_port_free(host, port)  # at once, not after the first step
        self.name, self.host, self.port, self.resolution = name, host, port, resolution
        self.log = log or (lambda message: print(message, flush=True))
        self.refresh_seconds = float(refresh_seconds)
        self.viewer: Viewer | None = None
        self.source: ViewedModel | None = None
        self.next_copy = 0.0

    def on_step(self, report) -> None:
        if self.viewer is None:
            self._start(report)
        held_out = (report.held_out or {}).get("psnr")
        total = f" / {report.total_steps}" if report.total_steps else ""
        self.source.status = (f"training: step {report.step}{total}, loss {report.loss:.4g}, held-out PSNR "
                              + ("n/a" if held_out is None else f"{held_out:.2f} dB"))
        now = time.monotonic()
        if not self.viewer.connected or now < self.next_copy:
            return
        state = report.averaged_state()
        cost = time.monotonic() - now
        self.source.offer_weights(state)
        redraw = self.source.last_render_seconds
        self.next_copy = now + max(self.refresh_seconds, cost / COPY_SHARE, redraw / REDRAW_SHARE)

    def _start(self, report) -> None:
        model = copy.deepcopy(report.model)
        for parameter in model.parameters():
            parameter.grad = None
            parameter.requires_grad_(False)
        model.load_state_dict(report.averaged_state())
        self.source = viewed_model(self.name, model.eval(), report.dataset_info(), where=self.name)
        self.viewer = Viewer([self.source], host=self.host, port=self.port, resolution=self.resolution)
        self.log(f"viewer: {self.viewer.url} (the averaged weights as training goes)")

    def finish(self, model) -> None:
        """Show the trained model (``model``: the averaged weights) from now on."""
        if self.source is not None:
            state = {name: value.detach().clone() for name, value in model.state_dict().items()}
            self.source.offer_weights(state, self.source.status.replace("training:", "trained:", 1))

    def stop(self) -> None:
        if self.viewer is not None:
            self.viewer.stop()
