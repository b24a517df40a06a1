"""``python _sfm_worker.py JOB.json``: the pycolmap calls, in a process of their own (this file
imports nothing of fastnerf, so the child starts without torch).

COLMAP is C++: a failed check inside it aborts the process. Run here, such a crash kills this
worker only, and the parent (``sfm.run_sfm``) reports it with the stage it happened in. The job
file says what to do (``sfm.SfmJob`` writes it); the worker writes ``result.json`` (cameras,
registered images, the keypoints of every photo) and ``points.npy`` beside it, and prints one
line per stage and per registered photo on stdout. COLMAP's own log goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# Small images (long side below SMALL_IMAGE) hold far fewer features than COLMAP's defaults
# expect (e.g. 60-170 SIFT features at 96x96 against thousands in a photo): a lower detection
# threshold finds more, and the mapper starts and grows from fewer matches; lens distortion is
# not fitted.
SMALL_IMAGE = 400
SMALL_PEAK_THRESHOLD = 0.003  # COLMAP: 0.0067
SMALL_MAPPER = {"init_min_num_inliers": 30, "abs_pose_min_num_inliers": 15, "init_min_tri_angle": 8.0}  # 100, 30, 16


def say(message: str) -> None:
    print(message, flush=True)


def extract(pycolmap, job: dict) -> None:
    say(f"stage: extract: SIFT features of {job['n_photos']} photos")
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = job["camera_model"]
    if job["camera_params"]:
        reader.camera_params = job["camera_params"]  # the EXIF focal length, marked as a prior
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = job["num_threads"]
    extraction.max_image_size = max(job["max_side"], extraction.max_image_size)
    if job["max_side"] < SMALL_IMAGE:
        extraction.sift.peak_threshold = SMALL_PEAK_THRESHOLD
    pycolmap.extract_features(job["database"], job["images"], camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, extraction_options=extraction)


def match(pycolmap, job: dict) -> None:
    say(f"stage: match: {job['matching']} matching")
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = job["num_threads"]
    if job["matching"] == "sequential":
        pycolmap.match_sequential(job["database"], matching_options=options)
    else:
        pycolmap.match_exhaustive(job["database"], matching_options=options)


def map_photos(pycolmap, job: dict) -> dict:
    say("stage: map: incremental mapping")
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = job["num_threads"]
    options.min_model_size = 3
    options.random_seed = job["seed"]
    if job["max_side"] < SMALL_IMAGE:
        for key, value in SMALL_MAPPER.items():
            setattr(options.mapper, key, value)
        # Too few features to pin lens coefficients down (OPENCV at 96x96 found k2 = 8.5 and
        # cameras 18% off): distortion stays 0, as if the model were a pinhole.
        options.ba_refine_extra_params = False
        options.mapper.abs_pose_refine_extra_params = False
    registered = [0]

    def started():
        registered[0] = 2
        say("map: started from a pair of photos")

    def next_photo():
        registered[0] += 1
        say(f"map: {registered[0]} photos registered")

    Path(job["sparse"]).mkdir(parents=True, exist_ok=True)
    return pycolmap.incremental_mapping(job["database"], job["images"], job["sparse"], options,
                                       initial_image_pair_callback=started, next_image_callback=next_photo)


def describe(pycolmap, job: dict, models: dict) -> dict:
    """What the parent needs: the largest model's cameras and poses, every photo's keypoints and
    verified neighbours (to name the photos that shared nothing)."""
    database = pycolmap.Database.open(job["database"])
    try:
        names = {image.image_id: image.name for image in database.read_all_images()}
        keypoints = {name: int(database.num_keypoints_for_image(image_id)) for image_id, name in names.items()}
        pair_ids, geometries = database.read_two_view_geometries()
        partners = {name: 0 for name in names.values()}
        for pair_id, geometry in zip(pair_ids, geometries):
            if len(geometry.inlier_matches) >= job["min_matches"]:
                for image_id in pycolmap.pair_id_to_image_pair(pair_id):
                    partners[names[image_id]] += 1
    finally:
        database.close()
    result = {"keypoints": keypoints, "verified_partners": partners,
              "model_sizes": {str(k): m.num_reg_images() for k, m in models.items()}, "chosen": None}
    if models:
        chosen = max(models, key=lambda k: models[k].num_reg_images())
        model = models[chosen]
        result["chosen"] = str(chosen)
        result["cameras"] = {str(cid): {"model": cam.model.name, "width": cam.width, "height": cam.height,
                                        "params": [float(v) for v in cam.params]} for cid, cam in model.cameras.items()}
        result["images"] = [{"name": image.name, "camera_id": image.camera_id,
                             "cam_from_world": image.cam_from_world().matrix().tolist()}
                            for image in (model.images[i] for i in model.reg_image_ids())]
        points = np.array([point.xyz for point in model.points3D.values()], dtype=np.float64).reshape(-1, 3)
        np.save(Path(job["result"]).with_name("points.npy"), points)
    return result


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    import pycolmap

    pycolmap.set_random_seed(job["seed"])
    extract(pycolmap, job)
    match(pycolmap, job)
    models = map_photos(pycolmap, job)
    say("stage: write: reading the model back")
    result = describe(pycolmap, job, models)
    Path(job["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
