"""built-in scene -> NeRF teacher -> every student kind -> a table (PSNR, SSIM, latency, speed-up,
nearest-training-view baseline), a side-by-side orbit GIF and a test-view picture."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# Minutes of training: the teacher, then each student (its teacher views included).
BUDGETS = {"full": {"teacher": 3.0, "student": 1.25, "pool": 48},
           "quick": {"teacher": 1.0, "student": 0.4, "pool": 24}}
KIND_ORDER = ("pose", "hybrid", "shared")  # the report's order; kinds registered later follow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser  # the dispatcher's view of the demo parser (``cli/demo.py``)
    group.add_argument("--out", default="fastnerf-demo", metavar="DIR", help="output folder (default fastnerf-demo)")
    group.add_argument("--scene", default=None, help="built-in scene (default: the first of SCENES)")
    group.add_argument("--res", type=int, default=100, metavar="R", help="image size R x R (default 100)")
    group.add_argument("--frames", type=int, default=30, metavar="N", help="orbit GIF frames (default 30)")
    group.add_argument("--minutes", type=float, default=None, metavar="M", help="teacher minutes (default 3; quick 1)")
    group.add_argument("--steps", type=int, default=None, metavar="N", help="teacher steps instead of minutes")
    group.add_argument("--encoding", choices=("hash", "frequency"), default="hash", help="the teacher's encoding")
    group.add_argument("--student-minutes", type=float, default=None, metavar="M",
                       help="minutes per student (default 1.25; quick 0.4)")
    group.add_argument("--student-steps", type=int, default=None, metavar="N", help="steps per student instead")
    group.add_argument("--kinds", default=None, metavar="K1,K2", help="student kinds (default: every registered one)")


def student_kinds(text: str | None) -> list[str]:
    from ..errors import UserError
    from ..models.students import STUDENT_KINDS

    known = [k for k in KIND_ORDER if k in STUDENT_KINDS] + sorted(set(STUDENT_KINDS) - set(KIND_ORDER))
    if text is None:
        return known
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in STUDENT_KINDS]
    if unknown:
        raise UserError(f"--kinds: unknown student kind(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return kinds


def run(args: argparse.Namespace) -> int:
    from ..data import load
    from ..data.procedural import SCENES, make_scene
    from ..errors import UserError
    from ..train.denormals import flushed_denormals

    res = args.res
    scene = args.scene or SCENES[0]
    if scene not in SCENES:
        raise UserError(f"unknown scene {scene!r}; built-in scenes are: {', '.join(SCENES)}")
    if res < 16:
        raise UserError(f"--res must be at least 16, got {res}")
    kinds = student_kinds(args.kinds)
    budget = BUDGETS["quick" if args.quick else "full"]
    out = Path(args.out)
    started = time.perf_counter()
    data = out / f"data-{scene}-{args.res}"
    if not (data / "transforms_test.json").is_file():
        print(f"ray-tracing scene {scene!r} at {args.res}x{args.res} into {data} ...")
        make_scene(scene, data, n_train=100, n_val=4, n_test=10, res=args.res, seed=args.seed)
    with flushed_denormals():
        teacher, teacher_summary = _train_teacher(args, data, out / "teacher", budget)
        pool_file = _render_pool(args, teacher, data, out / "pool.pt", budget["pool"])
        students = {}
        for kind in kinds:
            students[kind] = _train_student(args, kind, out, pool_file, budget)
        test = load(data, "test")
        train = load(data, "train")
        rows = _compare(args, teacher, students, train, test, out)
        frames = _orbit(args, scene, teacher, students, out)
    rows["teacher"].update(steps=teacher_summary["steps"])
    truth_flicker = frames.pop("truth")
    for name, flick in frames.items():
        rows[name]["flicker"] = flick
    total = time.perf_counter() - started
    (out / "demo.json").write_text(json.dumps({"scene": scene, "res": args.res, "seconds": round(total, 1),
                                               "truth_flicker": truth_flicker, "rows": rows}, indent=2))
    _print_table(scene, rows)
    print(f"flicker: mean absolute change between consecutive orbit frames ({args.frames}); the truth's own is "
          f"{truth_flicker:.4f}")
    print(f"wrote {out / 'orbit.gif'} (truth | teacher | {' | '.join(kinds)}), {out / 'test_view.png'}, "
          f"test renders in {out / 'test'}, runs in {out}; {total / 60:.1f} minutes in all")
    return 0


# ------------------------------------------------------------------------------ training
def _train_teacher(args, data, run_dir, budget):
    from ..train import train_teacher

    minutes = args.minutes if args.minutes is not None or args.steps is not None else budget["teacher"]
    print(f"training the {args.encoding} teacher ...")
    summary = train_teacher(data, run_dir, encoding=args.encoding, steps=args.steps, minutes=minutes, seed=args.seed,
                            device=args.device, eval_every=0, progress=not args.quiet)
    return summary["model"], summary


def _render_pool(args, teacher, data, path, n_views):
    import torch

    from ..data import load
    from ..distill import ViewPool, sampler_for

    from ..rendering import model_device

    train = load(data, "train").to(model_device(teacher))
    aabb = torch.tensor(teacher.config()["aabb"])
    pool = ViewPool(teacher, sampler_for(train, centre=(aabb[:3] + aabb[3:]) / 2), train, capacity=n_views)
    print(f"rendering {n_views} teacher views for the students ...")
    pool.fill(torch.Generator().manual_seed(args.seed), progress=not args.quiet)
    return pool.save(path)


def _train_student(args, kind, out, pool_file, budget):
    from ..train.engine import train
    from ..train.tasks.student import StudentTask

    task = StudentTask(teacher=str(out / "teacher"), kind=kind, pool_file=str(pool_file),
                       pool_size=max(budget["pool"], 64))
    minutes = None if args.student_steps is not None else (args.student_minutes or budget["student"])
    print(f"training the {kind!r} student ...")
    summary = train(task, out / kind, steps=args.student_steps, minutes=minutes, seed=args.seed, device=args.device,
                    eval_every=0, progress=not args.quiet)
    return summary["model"]


# ------------------------------------------------------------------------------ figures
def _compare(args, teacher, students, train, test, out):
    import imageio.v2 as imageio
    import torch

    from .. import metrics
    from ..distill.diagnostics import nearest_view_baseline
    from ..rendering import render
    from ..timing import latency_ms

    camera = test.cameras
    truth = test.images
    renders = {"teacher": render(teacher, camera, background=test.background)["rgb"].clamp(0, 1).cpu()}
    for kind, model in students.items():
        renders[kind] = render(model, camera)["rgb"].clamp(0, 1).cpu()
    renders["nearest view"], _ = nearest_view_baseline(train, test)
    rows = {}
    teacher_latency = latency_ms(teacher, camera[0], repeats=10)["latency_ms"]
    for name, images in renders.items():
        row = {"psnr": round(metrics.psnr(images, truth), 2), "ssim": round(metrics.ssim(images, truth), 4)}
        if name not in ("teacher", "nearest view"):
            row["psnr_vs_teacher"] = round(metrics.psnr(images, renders["teacher"]), 2)
            row["latency_ms"] = round(latency_ms(students[name], camera[0])["latency_ms"], 3)
            row["speedup"] = round(teacher_latency / row["latency_ms"], 1)
        elif name == "teacher":
            row["latency_ms"] = round(teacher_latency, 2)
        rows[name] = row
    folder = out / "test"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["truth"] + list(renders)
    for index in range(len(test)):
        strip = torch.cat([truth[index]] + [renders[n][index] for n in renders], dim=1)
        imageio.imwrite(folder / f"{index:03d}.png", _to_uint8(strip))
    imageio.imwrite(out / "test_view.png", _labelled(torch.stack([truth[0]] + [renders[n][0] for n in renders]), names))
    return rows


def _orbit(args, scene, teacher, students, out):
    """Side-by-side orbit GIF (truth | teacher | students); returns each renderer's flicker."""
    import imageio.v2 as imageio
    import torch

    from ..cameras import orbit_path
    from ..data.procedural import CAMERA_RADIUS, FOV_X, TEST_ELEVATION_DEG
    from ..data.procedural.scenes import BUILDERS
    from ..data.procedural.tracer import render as trace
    from ..distill.diagnostics import flicker
    from ..rendering import render

    cameras = orbit_path(args.frames, CAMERA_RADIUS, TEST_ELEVATION_DEG, args.res, args.res, FOV_X)
    rgba = trace(BUILDERS[scene](), cameras, samples_per_axis=2)
    frames = {"truth": rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])}
    frames["teacher"] = render(teacher, cameras)["rgb"].clamp(0, 1).cpu()
    for kind, model in students.items():
        frames[kind] = render(model, cameras)["rgb"].clamp(0, 1).cpu()
    names = list(frames)
    gif = [_labelled(torch.stack([frames[n][i] for n in names]), names) for i in range(args.frames)]
    imageio.mimsave(out / "orbit.gif", gif, duration=1000.0 / 12, loop=0)
    return {name: round(flicker(images), 4) for name, images in frames.items()}


def _to_uint8(image):  # [..., 3] float tensor in [0, 1] -> uint8 array
    import torch

    return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def _labelled(panels, names: list[str]):
    """``panels [P,H,W,3]`` side by side under a strip with their names -> uint8 ``[H+12, P*W, 3]``."""
    import numpy as np
    from PIL import Image, ImageDraw

    count, height, width, _ = panels.shape
    strip = np.full((12, count * width, 3), 255, dtype=np.uint8)
    label = Image.fromarray(strip)
    draw = ImageDraw.Draw(label)
    for index, name in enumerate(names):
        draw.text((index * width + 2, 0), name[: max(1, width // 6)], fill=(0, 0, 0))
    body = _to_uint8(panels.permute(1, 0, 2, 3).reshape(height, count * width, 3))
    return np.concatenate([np.asarray(label), body], axis=0)


def _print_table(scene, rows):
    header = ("renderer", "PSNR", "SSIM", "vs teacher", "latency ms", "speed-up", "flicker")
    lines = [header]
    for name, row in rows.items():
        lines.append((name, f"{row['psnr']:.2f}", f"{row['ssim']:.3f}",
                      f"{row['psnr_vs_teacher']:.2f}" if "psnr_vs_teacher" in row else "-",
                      f"{row['latency_ms']:.2f}" if "latency_ms" in row else "-",
                      f"{row['speedup']:.0f}x" if "speedup" in row else "-",
                      f"{row['flicker']:.4f}" if "flicker" in row else "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(f"scene {scene}, test views (PSNR / SSIM against the ray-traced truth):")
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
