"""``fastnerf view``: a web viewer (viser) for every model kind, from run folders or during training.

It renders through ``fastnerf.render`` only and knows no kind by name (``sources.py`` says what it
reads off a model). ``server.Viewer`` serves; ``session.Session`` is one browser tab with its
render thread; ``live.LiveView`` follows a model while it trains. Importing this package does not
import viser; starting a ``Viewer`` does.
"""

from .server import DEFAULT_PORT, Viewer, check_port_free
from .sources import ViewedModel, load_viewed_run

__all__ = ["DEFAULT_PORT", "Viewer", "ViewedModel", "check_port_free", "load_viewed_run"]
