"""``python -m fastnerf.capture.compare DATA REFERENCE``: how far the cameras process-images
recovered (``DATA/transforms.json``) are from a reference dataset of the same photos (any format
``fastnerf.data.load`` reads: calibrated cameras, a DTU scan, a Blender scene), matched by image
file name (without the suffix): the camera-centre error after a similarity alignment, as a
fraction of the reference rig's size (``alignment.camera_centre_error``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from .alignment import camera_centre_error
from .transforms import FILE_NAME


def _reference_centres(path: Path) -> dict[str, np.ndarray]:
    from ..data import load

    dataset = load(path, "all")
    stack = getattr(dataset, "_stack", None)  # the loaders' image stack knows each frame's file
    if stack is None:
        raise UserError(f"{path}: this dataset does not say which file each camera belongs to")
    centres = dataset.cameras.c2w[:, :3, 3].double().numpy()
    return {header.path.stem: centre for header, centre in zip(stack.headers, centres)}


def compare(data, reference) -> dict:
    """``{"matched", "mean", "max", "rig_size"}`` for the photos both datasets hold."""
    data, reference = Path(data), Path(reference)
    meta = json.loads((data / FILE_NAME).read_text())
    recovered = {Path(f["file_path"]).stem: np.array(f["transform_matrix"])[:3, 3] for f in meta["frames"]}
    known = _reference_centres(reference)
    names = sorted(set(recovered) & set(known))
    if len(names) < 3:
        raise UserError(f"{data} and {reference} share {len(names)} image names; at least 3 are needed")
    error = camera_centre_error(np.stack([recovered[n] for n in names]), np.stack([known[n] for n in names]))
    return {"matched": len(names), "reference_views": len(known), **error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastnerf.capture.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a folder written by fastnerf process-images")
    parser.add_argument("reference", help="a dataset of the same photos with known cameras")
    args = parser.parse_args(argv)
    result = compare(args.data, args.reference)
    print(f"{result['matched']} of {result['reference_views']} reference views matched; camera centres after a "
          f"similarity alignment: mean {100 * result['mean']:.2f}%, max {100 * result['max']:.2f}% of the rig size "
          f"({result['rig_size']:.4g} reference units)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
