"""``fastnerf train student --teacher RUN --kind KIND --out SRUN``: distil a teacher into a student.

The teacher run is loaded with ``load_run``; its dataset (the checkpoint's ``dataset``) gives the
real training images and the cameras the distillation views are sampled around
(``fastnerf.distill``). The student kind comes from the registry (``STUDENT_KINDS``,
``fastnerf.models.students``): the task knows no kind by name, and the kinds' own flags reach the
command line through their declared options (``fastnerf.models.registry``). Each step draws from a
``ViewPool`` of teacher renders (filled on the first step, refreshed after every step) mixed with
the real images; the pool is part of the task state, so a resumed run continues exactly. So is
the student's ``schedule``: a dict the kind's ``distill_loss`` may write its phase switches into
(the step a phase began at), so that a switch, once made, stays (a minutes budget re-decides the
step count every step) and a resumed run makes the same ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import UserError
from ...options import REQUIRED, Option, Options, parse_size
from . import Task, register_task
from .teacher import load_held_out

LR_HALF_LIFE = 500
ENGINE_SETTINGS = ("lr", "ema_decay", "lr_half_life")  # settings the task applies; the rest go to the model
TEACHER_TASK = "teacher"  # the task whose runs a student distils
TEACHER_INIT = ("auto", "on", "off")


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

    Args (declared in ``options``):
        teacher: the teacher's run folder or checkpoint.
        kind: a key of ``STUDENT_KINDS``.
        size: ``(width, height)`` the student trains at (default: the dataset's).
        model: overrides of the student's model config (plain values; the kind's declared options
            are checked by their declaration, the rest against its constructor).
        settings: overrides of the kind's training settings (``lr``, ``batch_views``, ...; a kind
            whose class has ``check_settings(settings, model)`` checks them up front).
        pool_size, initial_views, fresh_ratio, real_fraction, render_batch: the ``ViewPool``
            (``initial_views`` are rendered before the first step; the pool then grows to
            ``pool_size`` and refreshes at ``fresh_ratio``).
        teacher_supersample: teacher rays per pixel side for the pool (default: the teacher's own).
        pool_file: start from a pool saved with ``ViewPool.save`` instead of rendering one.
        teacher_init: ``"auto"``: the student copies what it can from the teacher
            (``init_from_teacher``) and the log says what; ``"on"``: it must (a ``UserError`` saying
            why it cannot); ``"off"``: nothing is copied. (True / False of older runs: auto / off.)
        eval_views: held-out views of the periodic check.
    """

    model_option = "model"  # the kinds' flags (e.g. --factor) go there, as --option KEY=VALUE does
    unflagged_model_options = "--option"
    options = Options(
        Option("teacher", REQUIRED, "the teacher's run folder", type=Path, flag=True, metavar="RUN"),
        Option("kind", REQUIRED, "student kind (its options: below)", type=str, flag=True, metavar="KIND"),
        Option("size", None, "training image size (default: the data's)", type=list, flag=True, metavar="WxH",
               parse=parse_size),
        Option("model", {}, "overrides of the student's model config"),
        Option("settings", {}, "overrides of the kind's training settings"),
        Option("pool_size", 128, "teacher views kept in memory", flag=True, metavar="V", minimum=1),
        Option("initial_views", 32, "teacher views rendered before the first step", flag=True, metavar="V",
               minimum=1),
        Option("fresh_ratio", 0.1, "new teacher views rendered per pool view trained on", flag=True, metavar="R",
               minimum=0),
        Option("real_fraction", 0.3, "share of real training images in each batch", flag=True, metavar="P",
               minimum=0, maximum=1),
        Option("render_batch", 8, "teacher views rendered at a time", minimum=1),
        Option("teacher_supersample", None, "teacher rays per pixel side for its views (default: its own)", type=int,
               flag=True, metavar="S", minimum=1),
        Option("pool_file", None, "start from a saved view pool", type=Path, flag=True, metavar="FILE"),
        Option("teacher_init", "auto", "copy the teacher's field into the student: auto (what it can, logged), "
               "on (an error if it cannot), off", choices=TEACHER_INIT, flag=True),
        Option("eval_views", 3, "held-out views of the periodic check", minimum=0),
    )

    def __init__(self, **values):
        from ...models import get_kind

        if isinstance(values.get("teacher_init"), bool):  # older runs and callers: True copied what it could
            values["teacher_init"] = "auto" if values["teacher_init"] else "off"
        super().__init__(**values)
        kind = self.args["kind"]
        self.student_kind = get_kind(kind, task=self.name, what="student kind")
        self.args["model"] = self.student_kind.check_config(self.args["model"], f"student {kind!r}")
        unknown = set(self.args["settings"]) - set(self.student_kind.settings)
        if unknown:
            raise UserError(f"student {kind!r} has no setting {', '.join(sorted(unknown))}; "
                            f"its settings: {', '.join(sorted(self.student_kind.settings))}")
        _check_teacher_run(self.args["teacher"])
        self.settings = {**self.student_kind.settings, **self.args["settings"]}
        check_settings = getattr(self.student_kind.model_class, "check_settings", None)
        if check_settings is not None:  # a kind that declares its settings checks them before any work
            self.settings = check_settings(self.settings, self.args["model"])
        self.ema_decay = self.settings.get("ema_decay")
        self.pool, self.held_out, self.teacher_info = None, None, {}
        self.schedule = {}  # the student's phase switches (the step each began at), written by distill_loss
        self._pending_pool_state = None

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="any student model option (repeatable), e.g. --option channels=96")
        parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                            help="any training setting of the kind (repeatable), e.g. --setting field_lr=0.005")
        parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the kind's)")
        parser.add_argument("--batch-views", type=int, default=None, metavar="B",
                            help="views per step (default: the kind's)")
        parser.add_argument("--no-teacher-init", dest="teacher_init", action="store_const", const="off",
                            help="the same as --teacher-init off")

    @classmethod
    def from_args(cls, args) -> "StudentTask":
        values = cls.values_from_args(args)
        if "kind" in values:
            cls._refuse_flags_of_other_kinds(values["kind"], values.get("model", {}))
        values["model"] = {**dict(_parse_option(text) for text in args.option), **values.get("model", {})}
        settings = dict(_parse_option(text) for text in args.setting)
        settings.update({name: value for name, value in (("lr", args.lr), ("batch_views", args.batch_views))
                         if value is not None})
        values["settings"] = settings
        if values.get("pool_file") and not Path(values["pool_file"]).is_file():  # a resumed run needs it no more
            raise UserError(f"student: --pool-file {values['pool_file']} is not a file")
        return cls(**values)

    @classmethod
    def _refuse_flags_of_other_kinds(cls, name: str, flagged: dict) -> None:
        """A UserError for a flag that only other kinds declare (``--factor`` with a kind without it)."""
        from ...models import get_kind

        kind = get_kind(name, task=cls.name, what="student kind")
        foreign = sorted(set(flagged) - set(kind.options.names))
        if not foreign:
            return
        declared = cls.model_kinds()
        problems = []
        for option in foreign:
            owners = [owner for owner, options in declared.items() if option in options]
            problems.append(f"{declared[owners[0]][option].flag_name} is an option of {', '.join(owners)}, "
                            f"not of {name!r}")
        raise UserError(f"student: {'; '.join(problems)} (the options of {name!r}: "
                        f"{', '.join(kind.options.names) or 'none'})")

    def build_model(self, ctx) -> torch.nn.Module:
        from ...data import load
        from ...distill import ViewPool, sampler_for
        from ...models import build_model
        from ...runs import load_run

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
        if not ctx.resuming:  # a resumed run's weights (and what was copied) come from its checkpoint
            self._init_from_teacher(model, teacher, ctx.log)
        self.pool = ViewPool(teacher, sampler, dataset, capacity=self.args["pool_size"],
                             fresh_ratio=self.args["fresh_ratio"], real_fraction=self.args["real_fraction"],
                             render_batch=self.args["render_batch"], supersample=self.args["teacher_supersample"],
                             backend=ctx.backend, device=ctx.device)
        if self._pending_pool_state is not None:
            self.pool.load_state_dict(self._pending_pool_state)
            self._pending_pool_state = None
        self.held_out = load_held_out(info["path"], info.get("downscale", 1))
        return model

    def _init_from_teacher(self, model, teacher, log) -> None:
        """``model.init_from_teacher(teacher)`` as ``teacher_init`` says: it returns what it copied
        and raises ValueError saying why it cannot; "on" makes that a UserError, "auto" a log line."""
        mode, kind = self.args["teacher_init"], self.args["kind"]
        if mode == "off":
            return
        if not hasattr(model, "init_from_teacher"):
            why = f"a {kind!r} student has nothing it could copy from a teacher"
        else:
            try:
                copied, why = model.init_from_teacher(teacher), "it copied nothing"
            except ValueError as error:
                copied, why = None, str(error)
            if copied:
                log(f"teacher init: the {kind!r} student copied the teacher's {copied}")
                return
        if mode == "on":
            raise UserError(f"student {kind!r}: --teacher-init on, but {why}; "
                            "use --teacher-init auto (copy what it can) or off")
        log(f"teacher init: nothing copied ({why})")

    # ----------------------------------------------------------------------------- training
    def param_groups(self, model) -> list:
        lr = float(self.settings["lr"])
        if hasattr(model, "param_groups"):
            return model.param_groups(lr, **{k: v for k, v in self.settings.items() if k not in ENGINE_SETTINGS})
        return [{"params": [p for p in model.parameters() if p.requires_grad], "base_lr": lr}]

    def lr_factor(self, step: int, total_steps: int | None) -> float:
        """Linear warm-up over 20 steps, then halving every ``lr_half_life`` steps down to 0.1: a
        function of the step alone, so a run resumed with a larger budget follows the same schedule."""
        from ..optim import lr_factor

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
                                  schedule=self.schedule, **settings)

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
        return {"pool": None if self.pool is None else self.pool.state_dict(), "schedule": dict(self.schedule)}

    def load_state_dict(self, state: dict) -> None:
        self.schedule = dict((state or {}).get("schedule") or {})
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
                "teacher_patches_rendered": 0 if pool is None else pool.patches.rendered,
                "pool_views": 0 if pool is None else len(pool)}


def _teacher_centre(teacher):
    config = teacher.config()
    if config.get("ndc") or "aabb" not in config:
        return None
    aabb = torch.as_tensor(config["aabb"], dtype=torch.float32)
    return (aabb[:3] + aabb[3:]) / 2


def _check_teacher_run(teacher: str) -> None:
    """Fail now, not after minutes of work, unless ``teacher`` is a teacher run whose dataset is there."""
    from ...runs import CheckpointError, load_checkpoint

    try:
        checkpoint = load_checkpoint(teacher, map_location="cpu")
    except CheckpointError as error:
        raise UserError(f"student: --teacher: {error}") from None
    task = checkpoint.get("task") or TEACHER_TASK  # checkpoints from before the engine were all teachers
    if task != TEACHER_TASK:
        raise UserError(f"student: --teacher {teacher} is a {task!r} run (a {checkpoint['model_kind']!r} model); "
                        f"give a run of `fastnerf train {TEACHER_TASK}`")
    path = (checkpoint.get("dataset") or {}).get("path")
    if not path:
        raise UserError(f"student: --teacher {teacher}: the teacher checkpoint names no dataset")
    if not Path(path).exists():
        raise UserError(f"student: --teacher {teacher}: its dataset {path} is not there any more")
