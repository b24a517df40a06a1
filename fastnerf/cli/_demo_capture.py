"""photos of a built-in scene -> process-images (the cameras forgotten, then recovered) -> the
teacher trained on the recovered cameras and on the true ones: the camera error and both
held-out PSNRs (``--steps 0`` stops after the camera error)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

# photos, their size, and each teacher's training minutes (both teachers take the same steps)
BUDGETS = {"full": {"photos": 48, "res": 160, "minutes": 2.0}, "quick": {"photos": 24, "res": 128, "minutes": 0.5}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("capture demo")
    group.add_argument("--photos", type=int, default=None, metavar="N", help="photos around the scene (default 48; quick 24)")
    group.add_argument("--arc", type=float, default=360.0, metavar="DEG",
                       help="degrees of azimuth the photographer walks round the scene (default 360)")
    group.add_argument("--camera-model", default="SIMPLE_PINHOLE", metavar="MODEL",
                       help="COLMAP camera model process-images fits (default SIMPLE_PINHOLE: the renders are "
                       "undistorted with square pixels)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..capture import camera_centre_error, process_images
    from ..capture.synthetic import write_rig_photos
    from ..errors import UserError

    budget = BUDGETS["quick" if args.quick else "full"]
    n_photos, res = args.photos or budget["photos"], args.res or budget["res"]
    if args.scene is not None:
        raise UserError("the capture demo films its own textured scene; --scene does not apply")
    if n_photos < 8 or res < 64 or not 0 < args.arc <= 360:
        raise UserError(f"the capture demo needs --photos >= 8, --res >= 64 and --arc in (0, 360], "
                        f"got {n_photos}, {res} and {args.arc:g}")
    out = Path(args.out)
    started = time.perf_counter()
    photos = out / "photos"
    print(f"ray-tracing {n_photos} photos of {res}x{res} around the textured tabletop into {photos} ...")
    if photos.exists():
        shutil.rmtree(photos)
    known = write_rig_photos(photos, n_photos, res, arc_deg=args.arc)
    print("recovering the cameras with process-images ...")
    capture = process_images(photos, out / "capture", camera_model=args.camera_model, max_size=None,
                             num_threads=args.threads or -1, seed=args.seed, progress=not args.quiet)
    index = [int(Path(name).stem.split("_")[1]) for name in capture.registered]
    recovered = np.stack([capture.c2w[name][:3, 3] for name in capture.registered])
    error = camera_centre_error(recovered, known.c2w[index, :3, 3].double().numpy())
    print(f"camera centres: mean error {100 * error['mean']:.2f}%, max {100 * error['max']:.2f}% of the rig size "
          f"after a similarity alignment ({len(capture.registered)} of {n_photos} photos registered)")
    known_data = _known_cameras_dataset(out / "known", capture, known, index)
    rows = {} if args.steps == 0 else _train_both(
        args, out, {"recovered cameras": capture.transforms.parent, "true cameras": known_data}, budget["minutes"])
    total = time.perf_counter() - started
    report = {"photos": n_photos, "res": res, "registered": len(capture.registered),
              "camera_error_mean": error["mean"], "camera_error_max": error["max"], "rows": rows,
              "seconds": round(total, 1)}
    (out / "capture_demo.json").write_text(json.dumps(report, indent=2))
    if rows:
        print(f"\n{'teacher trained on':<20} {'steps':>6} {'held-out PSNR':>14}")
    for name, row in rows.items():
        print(f"{name:<20} {row['steps']:>6} {row['psnr']:>11.2f} dB")
    print(f"camera-centre error {100 * error['mean']:.2f}% of the rig size; {total / 60:.1f} minutes in all; "
          f"{out / 'capture_demo.json'}")
    return 0


def _known_cameras_dataset(folder: Path, capture, known, index: list[int]) -> Path:
    """The registered photos with their true cameras, frames in the same order as the capture's,
    so the every-8th held-out rule picks the same photos."""
    import numpy as np

    from ..capture.transforms import write_transforms
    from ..data.procedural.textured import textured_tabletop

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "images").mkdir(parents=True)
    for name in capture.registered:
        shutil.copyfile(capture.transforms.parent / "images" / name, folder / "images" / name)
    camera = {"model": "PINHOLE", "width": known.width, "height": known.height,
              "params": [float(known.fx[0]), float(known.fy[0]), float(known.cx[0]), float(known.cy[0])]}
    write_transforms(folder, capture.registered, [1] * len(index), {1: camera},
                     known.c2w[index].double().numpy(), np.array(textured_tabletop().aabb))
    return folder


def _train_both(args, out: Path, datasets: dict, minutes: float) -> dict:
    from ..data import load
    from ..train import evaluate, train_teacher
    from ..train.denormals import flushed_denormals

    rows, steps = {}, args.steps
    with flushed_denormals():
        for name, data in datasets.items():
            budget = {"steps": steps} if steps else {"minutes": args.minutes or minutes}
            print(f"training the teacher on the {name} ...")
            summary = train_teacher(data, out / ("teacher-" + name.split()[0]), seed=args.seed, device=args.device,
                                    eval_every=0, progress=not args.quiet, **budget)
            steps = summary["steps"]  # the second teacher takes as many steps as the first
            held_out = evaluate(summary["model"], load(data, "test"), with_ssim=False)
            rows[name] = {"steps": summary["steps"], "psnr": held_out["psnr"]}
    return rows
