"""The web server: a viser server with one ``Session`` per browser tab."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from ..errors import UserError
from .session import Session
from .sources import ViewedModel

DEFAULT_PORT = 7007
DEFAULT_RESOLUTION = 512


def check_port_free(host: str, port: int) -> None:
    """``UserError`` naming ``port`` when something listens there (viser would silently take the next)."""
    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UserError(f"--host {host}: cannot resolve it ({error})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise UserError(f"port {port} on {host} is in use ({error.strerror}); pick another with --port") from None


class Viewer:
    """Serve ``sources`` at ``http://host:port``; ``stop()`` ends it (also from another thread)."""

    def __init__(self, sources: list[ViewedModel], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 resolution: int = DEFAULT_RESOLUTION, path_dir=".", verbose: bool = False):
        if not sources:
            raise UserError("view: no runs to show")
        try:
            import viser
        except ImportError:
            raise UserError("the viewer needs viser: pip install 'fastnerf[viewer]'") from None
        check_port_free(host, port)
        self.sources, self.resolution, self.verbose = sources, int(resolution), verbose
        self.path_dir = Path(path_dir)
        self.sessions: dict[int, Session] = {}
        self._lock = threading.Lock()
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        if self.server.get_port() != port:  # lost a race for the port after the check
            self.server.stop()
            raise UserError(f"port {port} on {host} is in use; pick another with --port")
        self.host, self.port = host, port
        self.server.gui.configure_theme(show_share_button=False, dark_mode=False)
        self.server.gui.main_panel.dock_right()  # beside the image, not over it
        self.server.scene.set_up_direction(tuple(sources[0].up.tolist()))
        self._set_initial_camera(sources[0])
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _set_initial_camera(self, source: ViewedModel) -> None:
        from .poses import fov_y_of

        first = source.cameras[0]
        # A step back from the first training camera, so that its frustum is not all one sees.
        position = source.centre + 1.5 * (first.c2w[:3, 3].double().cpu() - source.centre)
        initial = self.server.initial_camera
        initial.position = tuple(position.tolist())
        initial.look_at = tuple(source.centre.tolist())
        initial.up = tuple(source.up.tolist())
        initial.fov = fov_y_of(first)
        initial.near = 0.01 * source.radius
        initial.far = 100.0 * source.radius

    def _connect(self, client) -> None:
        session = Session(self, client)
        with self._lock:
            self.sessions[client.client_id] = session

    def _disconnect(self, client) -> None:
        with self._lock:
            session = self.sessions.pop(client.client_id, None)
        if session is not None:
            session.stop()

    @property
    def connected(self) -> int:
        return len(self.sessions)

    def next_path_file(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.path_dir / f"camera_path-{stamp}.json"
        counter = 1
        while path.exists():
            counter += 1
            path = self.path_dir / f"camera_path-{stamp}-{counter}.json"
        return path

    def stop(self) -> None:
        with self._lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.stop()
        self.server.stop()
        for session in sessions:
            session.thread.join(timeout=5.0)
            if session.thread.is_alive():  # a long render: ending the process under it would abort it
                print("viewer: waiting for a render to finish", flush=True)
                session.thread.join()
