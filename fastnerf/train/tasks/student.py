"""``fastnerf train student --teacher RUN --kind KIND --out SRUN``: distil a teacher into a student.

The teacher run is loaded with ``load_run``; its dataset (the checkpoint's ``dataset``) gives the
real training images and the cameras the distillation views are sampled around
(``fastnerf.distill``). The student kind comes from ``STUDENT_KINDS``
(``fastnerf.models.students``): the task knows no kind by name. Each step draws from a
``ViewPool`` of teacher renders (filled on the first step, refreshed after every step) mixed with
the real images; the pool is part of the task state, so a resumed run continues exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import UserError
from . import Task, register_task
from .teacher import load_held_out

LR_HALF_LIFE = 500
ENGINE_SETTINGS = ("lr", "ema_decay", "lr_half_life")  # settings the task applies; the rest go to the model
TASK_DEFAULTS = {"pool_size": 128, "initial_views": 32, "fresh_ratio": 0.1, "real_fraction": 0.3,
                 "render_batch": 8, "eval_views": 3}


def parse_size(text: str | None):
    if text is None:
        return None
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UserError(f"--size must look like 200x150, got {text!r}") from None
    if width < 1 or height < 1 or width * height > 16_000_000:
        raise UserError(f"--size {text}: width and height must be positive (and not absurd)")
    return width, height


def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise UserError(f"--option / --setting must look like KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


@register_task("student")
class StudentTask(Task):
    """Distil ``teacher`` (a run folder) into a student of ``kind`` (see the module docstring).

    Args:
        teacher: the teacher's run folder or checkpoint.
        kind: a key of ``STUDENT_KINDS``.
        size: ``(width, height)`` the student trains at (default: the dataset's).
        model: overrides of the student's model config (plain values).
        settings: overrides of the kind's training settings (``lr``, ``batch_views``, ...).
        pool_size, initial_views, fresh_ratio, real_fraction, render_batch: the ``ViewPool``
            (``initial_views`` are rendered before the first step; the pool then grows to
            ``pool_size`` and refreshes at ``fresh_ratio``).
        teacher_supersample: teacher rays per pixel side for the pool (default: the teacher's own).
        pool_file: start from a pool saved with ``ViewPool.save`` instead of rendering one.
        teacher_init: let the student copy what it can from the teacher (``init_from_teacher``).
    """

    def __init__(self, *, teacher: str, kind: str, size=None, model: dict | None = None, settings: dict | None = None,
                 pool_size: int = TASK_DEFAULTS["pool_size"], initial_views: int = TASK_DEFAULTS["initial_views"],
                 fresh_ratio: float = TASK_DEFAULTS["fresh_ratio"], real_fraction: float = TASK_DEFAULTS["real_fraction"],
                 render_batch: int = TASK_DEFAULTS["render_batch"], teacher_supersample: int | None = None,
                 pool_file: str | None = None, teacher_init: bool = True, eval_views: int = TASK_DEFAULTS["eval_views"]):
        from ...models.students import STUDENT_KINDS

        if kind not in STUDENT_KINDS:
            raise UserError(f"unknown student kind {kind!r}; known kinds: {', '.join(sorted(STUDENT_KINDS))}")
        self.student_kind = STUDENT_KINDS[kind]
        unknown = set(settings or {}) - set(self.student_kind.settings)
        if unknown:
            raise UserError(f"student {kind!r} has no setting {', '.join(sorted(unknown))}; "
                            f"its settings: {', '.join(sorted(self.student_kind.settings))}")
        self.args = {"teacher": str(Path(teacher).resolve()), "kind": kind, "size": None if size is None else list(size),
                     "model": dict(model or {}), "settings": dict(settings or {}), "pool_size": int(pool_size),
                     "initial_views": int(initial_views), "fresh_ratio": float(fresh_ratio),
                     "real_fraction": float(real_fraction), "render_batch": int(render_batch),
                     "teacher_supersample": teacher_supersample, "pool_file": pool_file,
                     "teacher_init": bool(teacher_init), "eval_views": int(eval_views)}
        self.settings = {**self.student_kind.settings, **self.args["settings"]}
        self.ema_decay = self.settings.get("ema_decay")
        self.pool, self.held_out, self.teacher_info = None, None, {}
        self._pending_pool_state = None

    # ----------------------------------------------------------------------------- construction
    def train_args(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self.args.items()}

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--teacher", required=True, metavar="RUN", help="the teacher's run folder")
        parser.add_argument("--kind", required=True, metavar="KIND", help="student kind (pose, hybrid, shared, ...)")
        parser.add_argument("--size", default=None, metavar="WxH", help="training image size (default: the data's)")
        parser.add_argument("--upsampler", choices=("bilinear", "transposed"), default=None,
                            help="decoder upsampling (default bilinear)")
        parser.add_argument("--factor", type=int, default=None, metavar="F", help="hybrid: upsampling factor")
        parser.add_argument("--sampling", choices=("march", "dense"), default=None, help="hybrid: samples along rays")
        parser.add_argument("--samples", type=int, default=None, metavar="N",
                            help="hybrid: samples per ray (dense) or steps per box diagonal (march)")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="any student model option (repeatable), e.g. --option channels=96")
        parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                            help="any training setting of the kind (repeatable), e.g. --setting field_lr=0.005")
        parser.add_argument("--lr", type=float, default=None)
        parser.add_argument("--batch-views", type=int, default=None, metavar="B", help="views per step")
        parser.add_argument("--pool-size", type=int, default=TASK_DEFAULTS["pool_size"], metavar="V",
                            help=f"teacher views kept in memory (default {TASK_DEFAULTS['pool_size']})")
        parser.add_argument("--initial-views", type=int, default=TASK_DEFAULTS["initial_views"], metavar="V",
                            help="teacher views rendered before the first step")
        parser.add_argument("--fresh-ratio", type=float, default=TASK_DEFAULTS["fresh_ratio"], metavar="R",
                            help="new teacher views rendered per pool view trained on "
                            f"(default {TASK_DEFAULTS['fresh_ratio']})")
        parser.add_argument("--real-fraction", type=float, default=TASK_DEFAULTS["real_fraction"], metavar="P",
                            help=f"share of real training images in each batch (default {TASK_DEFAULTS['real_fraction']})")
        parser.add_argument("--teacher-supersample", type=int, default=None, metavar="S",
                            help="teacher rays per pixel side for its views (default: its own)")
        parser.add_argument("--pool-file", default=None, metavar="FILE", help="start from a saved view pool")
        parser.add_argument("--no-teacher-init", action="store_true", help="do not copy the teacher's field")

    @classmethod
    def from_args(cls, args) -> "StudentTask":
        model = dict(_parse_option(text) for text in args.option)
        for name in ("upsampler", "factor", "sampling", "samples"):
            if getattr(args, name) is not None:
                model[name] = getattr(args, name)
        settings = dict(_parse_option(text) for text in args.setting)
        settings.update({name: value for name, value in (("lr", args.lr), ("batch_views", args.batch_views))
                         if value is not None})
        return cls(teacher=args.teacher, kind=args.kind, size=parse_size(args.size), model=model, settings=settings,
                   pool_size=args.pool_size, initial_views=args.initial_views, fresh_ratio=args.fresh_ratio,
                   real_fraction=args.real_fraction, teacher_supersample=args.teacher_supersample,
                   pool_file=args.pool_file, teacher_init=not args.no_teacher_init)

    def build_model(self, ctx) -> torch.nn.Module:
        from ...data import load
        from ...distill import ViewPool, sampler_for
        from ...models import build_model
        from .. import load_run

        teacher, checkpoint = load_run(self.args["teacher"], device=ctx.device)
        teacher = teacher.to(ctx.device).eval()
        info = checkpoint.get("dataset") or {}
        if not info.get("path"):
            raise UserError(f"{self.args['teacher']}: the teacher checkpoint names no dataset")
        dataset = load(info["path"], "train", downscale=info.get("downscale", 1)).to(ctx.device)
        size = tuple(self.args["size"]) if self.args["size"] else None
        sampler = sampler_for(dataset, centre=_teacher_centre(teacher), size=size)
        self.teacher_info = {"path": info["path"], "downscale": info.get("downscale", 1), "format": info.get("format"),
                             "width": sampler.width, "height": sampler.height, "split": "train",
                             "teacher": self.args["teacher"]}
        model_class = self.student_kind.model_class
        config = model_class.config_for(teacher, dataset, sampler, **self.args["model"])
        try:
            model = build_model(self.args["kind"], **config)
        except TypeError as error:
            raise UserError(f"student {self.args['kind']!r}: bad model option ({error})") from None
        model = model.to(ctx.device)
        if self.args["teacher_init"] and hasattr(model, "init_from_teacher") and not ctx.resuming:
            model.init_from_teacher(teacher)
        self.pool = ViewPool(teacher, sampler, dataset, capacity=self.args["pool_size"],
                             fresh_ratio=self.args["fresh_ratio"], real_fraction=self.args["real_fraction"],
                             render_batch=self.args["render_batch"], supersample=self.args["teacher_supersample"],
                             backend=ctx.backend, device=ctx.device)
        if self._pending_pool_state is not None:
            self.pool.load_state_dict(self._pending_pool_state)
            self._pending_pool_state = None
        self.held_out = load_held_out(info["path"], info.get("downscale", 1))
        return model

    # ----------------------------------------------------------------------------- training
    def param_groups(self, model) -> list:
        lr = float(self.settings["lr"])
        if hasattr(model, "param_groups"):
            return model.param_groups(lr, **{k: v for k, v in self.settings.items() if k not in ENGINE_SETTINGS})
        return [{"params": [p for p in model.parameters() if p.requires_grad], "base_lr": lr}]

    def lr_factor(self, step: int, total_steps: int | None) -> float:
        """Linear warm-up over 20 steps, then halving every ``lr_half_life`` steps down to 0.1: a
        function of the step alone, so a run resumed with a larger budget follows the same schedule."""
        from ..loop import lr_factor

        return lr_factor(step, warmup=20, half_life=int(self.settings.get("lr_half_life", LR_HALF_LIFE)), floor=0.1)

    def loss(self, model, step: int, ctx):
        pool = self.pool
        if len(pool) == 0:  # the first step (not a resumed one) fills it, counted in the budget
            if self.args["pool_file"]:
                pool.load(self.args["pool_file"])
            else:
                pool.render_views(min(self.args["initial_views"], pool.capacity), ctx.generator, progress=False)
        settings = {k: v for k, v in self.settings.items() if k not in ENGINE_SETTINGS}
        return model.distill_loss(pool, ctx.generator, step=step, backend=ctx.backend, total_steps=ctx.total_steps,
                                  **settings)

    def after_step(self, model, step: int, ctx) -> None:
        self.pool.refresh(ctx.generator)  # fresh views grow the pool to capacity, then replace the oldest
        if hasattr(model, "after_distill_step"):
            settings = {k: v for k, v in self.settings.items() if k not in ENGINE_SETTINGS + ("batch_views",)}
            reduce = (lambda tensor: ctx.all_reduce_(tensor, "max")) if ctx.world_size > 1 else None
            model.after_distill_step(step, ctx.generator, reduce=reduce, backend=ctx.backend, **settings)

    @torch.no_grad()
    def evaluate(self, model, ctx) -> dict | None:
        if self.held_out is None or not self.args["eval_views"]:
            return None
        from ...metrics import psnr
        from ...rendering import render

        data = self.held_out
        count = min(self.args["eval_views"], len(data))
        cameras = data.cameras[:count].to(ctx.device).resize(self.pool.width, self.pool.height)
        images = data.images[:count].to(ctx.device)
        if (self.pool.width, self.pool.height) != (data.width, data.height):
            from ...distill.pool import _resized

            images = _resized(images, self.pool.width, self.pool.height)
        rgb = render(model, cameras)["rgb"].clamp(0, 1)
        return {"psnr": psnr(rgb, images)}

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {"pool": None if self.pool is None else self.pool.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        pool_state = (state or {}).get("pool")
        if pool_state is None:
            return
        if self.pool is None:
            self._pending_pool_state = pool_state
        else:
            self.pool.load_state_dict(pool_state)

    def dataset_info(self) -> dict:
        return dict(self.teacher_info)

    def summary(self, model) -> dict:
        pool = self.pool
        return {"kind": self.args["kind"], "teacher": self.args["teacher"],
                "teacher_views_rendered": 0 if pool is None else pool.rendered,
                "pool_views": 0 if pool is None else len(pool)}


def _teacher_centre(teacher):
    config = teacher.config()
    if config.get("ndc") or "aabb" not in config:
        return None
    aabb = torch.as_tensor(config["aabb"], dtype=torch.float32)
    return (aabb[:3] + aabb[3:]) / 2


