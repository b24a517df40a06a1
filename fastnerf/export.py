"""Students that leave Python: ``torch.export`` programs (``.pt2``) and ONNX files.

The exported graph is the student's ``export_forward``: it takes ``c2w [B,4,4]`` float32
camera-to-world matrices in the world frame ``fastnerf.data.load`` gives (B dynamic) and, for
models whose ``export_takes_intrinsics`` is true, ``intrinsics [B,4]`` = fx, fy, cx, cy in
pixels; it returns ``rgb [B,H,W,3]`` in [0, 1], the size fixed at export. A model that renders
one fixed camera (its ``fixed_intrinsics()``) exports a graph without an intrinsics input; the
file records that camera (ONNX metadata / a pt2 extra file, ``CAMERA_RECORD``), and ``run_onnx``,
``run_pt2`` and ``onnx_latency_ms`` given intrinsics check them against it (a ``UserError`` naming
the file's camera), so no caller's camera is silently ignored. Whether a kind exports
is its own declaration (``fastnerf.models.registry``: ``no_export`` says why not; without it, a
class with ``export_forward`` exports): a kind that does not is refused with a ``UserError``
giving its reason, before anything is built (``check_kind_exports``).

ONNX uses PyTorch's dynamo exporter; onnx, onnxscript and onnxruntime come with
``pip install fastnerf[export]``. ``onnx_latency_ms`` times a file in onnxruntime with the
protocol of ``fastnerf eval``'s ``latency_ms`` (5 warm-ups, the mean of 100 runs at batch 1).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import UserError

FORMATS = ("onnx", "pt2")
MAX_BATCH = 4096  # the dynamic batch dimension's upper bound in the exported graph
LATENCY_WARMUP, LATENCY_REPEATS = 5, 100
CAMERA_RECORD = "fastnerf_fixed_intrinsics"  # metadata key / pt2 extra file: "[fx, fy, cx, cy]" (JSON)


class ExportedRenderer(nn.Module):
    """``forward(c2w [B,4,4] (, intrinsics [B,4])) -> rgb [B,H,W,3]``: the graph that is exported."""

    def __init__(self, model: nn.Module, width: int, height: int):
        super().__init__()
        self.model = model
        self.width, self.height = int(width), int(height)
        self.takes_intrinsics = bool(getattr(model, "export_takes_intrinsics", False))

    def forward(self, c2w: torch.Tensor, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
        if self.takes_intrinsics:
            return self.model.export_forward(c2w, intrinsics, height=self.height, width=self.width)
        return self.model.export_forward(c2w, intrinsics)


def exportable_kinds() -> list[str]:
    """The registered kinds that export."""
    from .models import kinds

    return [kind.name for kind in kinds() if kind.exports]


def check_kind_exports(name: str) -> None:
    """A UserError with the kind's own reason unless kind ``name`` exports (nothing is built)."""
    from .models import KINDS, discover

    if name not in KINDS:
        discover()
    kind = KINDS.get(name)
    reason = kind.why_not_export() if kind is not None else None
    if reason:
        raise UserError(f"export: a {name!r} model cannot be exported: {reason}; "
                        f"kinds that export: {', '.join(exportable_kinds())}")


def _check_exportable(model: nn.Module) -> str:
    kind = getattr(model, "kind", type(model).__name__)
    check_kind_exports(kind)
    if not hasattr(model, "export_forward"):
        raise UserError(f"export: a {kind!r} model has no export_forward; "
                        f"kinds that export: {', '.join(exportable_kinds())}")
    return kind


def _any_size_kinds() -> list[str]:
    """The kinds whose exported graph takes intrinsics, so renders any size."""
    from .models import kinds

    return [kind.name for kind in kinds()
            if kind.exports and getattr(kind.model_class, "export_takes_intrinsics", False)]


def native_size(model: nn.Module) -> tuple[int, int]:
    """``(width, height)`` a model renders by default: its ``image_width``/``image_height`` config."""
    config = model.config() if hasattr(model, "config") else {}
    if "image_width" in config and "image_height" in config:
        return int(config["image_width"]), int(config["image_height"])
    if "width" in config and "height" in config:
        return int(config["width"]), int(config["height"])
    raise UserError(f"export: cannot tell the image size of a {getattr(model, 'kind', '?')!r} model; give --size WxH")


def camera_inputs(camera) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c2w [B,4,4], intrinsics [B,4])`` of a single or batch ``fastnerf.cameras.Camera``: an exported graph's inputs."""
    batch = camera.batch()
    batch.require_pinhole("an exported graph (its input intrinsics [B,4] has no lens)")
    return batch.c2w, torch.stack([batch.fx, batch.fy, batch.cx, batch.cy], dim=-1)


def example_inputs(width: int, height: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c2w [batch,4,4], intrinsics [batch,4])``: cameras 4 units from the origin looking at it, 50-degree field of view."""
    from .cameras import look_at

    angles = torch.arange(batch, dtype=torch.float32) * (2 * math.pi / max(batch, 3))
    eyes = torch.stack([4 * torch.cos(angles), 4 * torch.sin(angles), torch.full_like(angles, 1.5)], -1)
    c2w = look_at(eyes, torch.zeros_like(eyes))
    focal = 0.5 * width / math.tan(math.radians(25.0))
    intrinsics = torch.tensor([[focal, focal, width / 2, height / 2]] * batch)
    return c2w, intrinsics


def renderer_for(model: nn.Module, size: tuple[int, int] | None = None) -> ExportedRenderer:
    """The ``ExportedRenderer`` of ``model`` at ``size = (width, height)`` (default: its own).

    Raises UserError for a model that cannot be exported, or a size a fixed-size student cannot render.
    """
    kind = _check_exportable(model)
    width, height = size if size is not None else native_size(model)
    renderer = ExportedRenderer(model.eval(), width, height).eval()
    if not renderer.takes_intrinsics:
        c2w, _ = example_inputs(width, height, batch=1)
        with torch.no_grad():
            produced = tuple(renderer(c2w.to(_device(model))).shape[1:3])
        if produced != (height, width):
            raise UserError(f"export: a {kind!r} student renders {produced[1]}x{produced[0]} images only, "
                            f"not {width}x{height}; drop --size, or use a kind that renders any size "
                            f"({', '.join(_any_size_kinds())})")
    return renderer


def _device(model: nn.Module) -> torch.device:
    """Where ``model``'s tensors live (example inputs are made there)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _inputs(renderer: ExportedRenderer, c2w, intrinsics) -> tuple:
    return (c2w, intrinsics) if renderer.takes_intrinsics else (c2w,)


def export_model(model: nn.Module, path, *, format: str = "onnx", size: tuple[int, int] | None = None) -> dict:
    """Write ``model`` (a student) to ``path`` as ``format`` (``"onnx"`` or ``"pt2"``).

    Returns ``dict(path, format, kind, width, height, inputs)``. The file is written to a
    temporary name in the same folder and renamed, so a failed export leaves no partial file.
    """
    if format not in FORMATS:
        raise UserError(f"export: format must be one of {FORMATS}, got {format!r}")
    renderer = renderer_for(model, size)
    c2w, intrinsics = (t.to(_device(model)) for t in example_inputs(renderer.width, renderer.height))
    inputs = _inputs(renderer, c2w, intrinsics)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic = {"c2w": {0: batch}, "intrinsics": {0: batch}} if renderer.takes_intrinsics else {"c2w": {0: batch}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{format}")
    os.close(handle)
    record = _camera_record(model)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' deprecation and "torchvision missing" chatter
            if format == "pt2":
                program = torch.export.export(renderer, inputs, dynamic_shapes=dynamic)
                torch.export.save(program, temporary, extra_files={CAMERA_RECORD: record} if record else None)
            else:
                require_onnx()
                names = ["c2w", "intrinsics"] if renderer.takes_intrinsics else ["c2w"]
                torch.onnx.export(renderer, inputs, temporary, input_names=names, output_names=["rgb"],
                                  dynamic_shapes=dynamic, dynamo=True, verbose=False,
                                  external_data=False)
                if record:
                    _add_onnx_metadata(temporary, {CAMERA_RECORD: record})
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return {"path": str(path), "format": format, "kind": model.kind, "width": renderer.width,
            "height": renderer.height, "takes_intrinsics": renderer.takes_intrinsics,
            "inputs": ["c2w [B,4,4]", "intrinsics [B,4]"] if renderer.takes_intrinsics else ["c2w [B,4,4]"]}


def _camera_record(model: nn.Module) -> str | None:
    """JSON ``[fx, fy, cx, cy]`` of a model that renders one fixed camera (``fixed_intrinsics``), else None."""
    fixed = getattr(model, "fixed_intrinsics", None)
    return json.dumps([float(v) for v in fixed()]) if fixed is not None else None


def _add_onnx_metadata(path, entries: dict) -> None:
    import onnx

    graph = onnx.load(str(path))
    for key, value in entries.items():
        onnx.helper.set_model_props(graph, {**{p.key: p.value for p in graph.metadata_props}, key: value})
    onnx.save(graph, str(path))


def _check_recorded_camera(record: str | None, intrinsics, path) -> None:
    """For a file whose graph takes no intrinsics: ``intrinsics`` given must be its recorded camera's."""
    if intrinsics is None:
        return
    from .cameras import check_fixed_intrinsics

    if not record:
        raise UserError(f"{path}: this file renders one fixed camera and takes no intrinsics, and it records none to "
                        "check the given ones against (exported before fastnerf recorded them); pass no intrinsics, "
                        "or export it again")
    check_fixed_intrinsics(json.loads(record), intrinsics, f"{path} (a fixed-camera student)")


def require_onnx():
    """A UserError unless the ONNX exporter's packages (onnx, onnxscript) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise UserError(f"export: ONNX export needs onnx and onnxscript ({error}); "
                        "pip install 'fastnerf[export]'") from None


def load_exportable(run, *, format: str = "onnx"):
    """``(model, checkpoint)`` of run folder (or checkpoint) ``run``, after the checks that need no
    model: the format, its packages, and whether the run's kind exports."""
    from .train.checkpoint import load_checkpoint, model_from_checkpoint

    if format not in FORMATS:
        raise UserError(f"export: format must be one of {FORMATS}, got {format!r}")
    if format == "onnx":
        require_onnx()
    checkpoint = load_checkpoint(run, map_location="cpu")
    check_kind_exports(checkpoint["model_kind"])
    return model_from_checkpoint(checkpoint, device="cpu"), checkpoint


def export_run(run, path, *, format: str = "onnx", size: tuple[int, int] | None = None) -> dict:
    """``export_model`` of the student in run folder (or checkpoint) ``run`` (``load_exportable``)."""
    model, _ = load_exportable(run, format=format)
    return export_model(model, path, format=format, size=size)


# ------------------------------------------------------------------------------ running exported files
def check_onnx_file(path) -> None:
    """A UserError unless onnxruntime is installed and ``path`` is a file (checks that cost nothing,
    made before a command's long work)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UserError("onnxruntime is not installed; pip install 'fastnerf[export]'") from None
    if not Path(path).is_file():
        raise UserError(f"ONNX file {str(path)!r} does not exist")


def onnx_session(path, *, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads, default torch's)."""
    check_onnx_file(path)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feeds(session, c2w: torch.Tensor, intrinsics: torch.Tensor | None) -> dict:
    if "intrinsics" not in {spec.name for spec in session.get_inputs()}:
        record = session.get_modelmeta().custom_metadata_map.get(CAMERA_RECORD)
        _check_recorded_camera(record, intrinsics, getattr(session, "_model_path", None) or "the ONNX file")
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "c2w":
            feeds["c2w"] = c2w.detach().to(torch.float32).cpu().contiguous().numpy()
        elif spec.name == "intrinsics":
            if intrinsics is None:
                raise UserError("this ONNX file takes intrinsics [B,4] (fx, fy, cx, cy) as well as c2w")
            feeds["intrinsics"] = intrinsics.detach().to(torch.float32).cpu().contiguous().numpy()
        else:
            raise UserError(f"ONNX file has an input {spec.name!r}; fastnerf exports take c2w (and intrinsics)")
    return feeds


def run_onnx(session_or_path, c2w: torch.Tensor, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
    """``rgb [B,H,W,3]`` from an ONNX file (or session) for ``c2w [B,4,4]`` (and ``intrinsics [B,4]``)."""
    session = session_or_path if hasattr(session_or_path, "run") else onnx_session(session_or_path)
    return torch.from_numpy(session.run(["rgb"], _feeds(session, c2w, intrinsics))[0])


def run_pt2(path, c2w: torch.Tensor, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
    """``rgb [B,H,W,3]`` from a ``.pt2`` program written by ``export_model`` (``intrinsics`` given to
    a fixed-camera program must be the camera it records)."""
    extra = {CAMERA_RECORD: ""}
    program = torch.export.load(str(path), extra_files=extra).module()
    inputs = [spec for spec in program.graph.nodes if spec.op == "placeholder"]
    if len(inputs) == 1:
        _check_recorded_camera(extra[CAMERA_RECORD], intrinsics, path)
    with torch.no_grad():
        return program(c2w, intrinsics) if len(inputs) > 1 else program(c2w)


def onnx_latency_ms(path, c2w: torch.Tensor, intrinsics: torch.Tensor | None = None, *,
                    threads: int | None = None, warmup: int = LATENCY_WARMUP, repeats: int = LATENCY_REPEATS) -> float:
    """Mean wall time (ms) of one onnxruntime run of ``path`` on ``c2w [1,4,4]`` (``intrinsics [1,4]``)
    after ``warmup`` runs: ``latency_ms``'s protocol (first test camera, batch 1, 100 runs)."""
    session = onnx_session(path, threads=threads)
    feeds = _feeds(session, c2w, intrinsics)
    for _ in range(warmup):
        session.run(["rgb"], feeds)
    start = time.perf_counter()
    for _ in range(repeats):
        session.run(["rgb"], feeds)
    return 1000.0 * (time.perf_counter() - start) / repeats
