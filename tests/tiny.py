"""The tiny teacher config and tiny scene the tests share (fixtures in conftest.py wrap them).

Small enough that building, training a few steps and rendering take well under a second each.
"""

from types import MappingProxyType

TINY_TEACHER = MappingProxyType(dict(hash_levels=4, hash_log2_size=10, hash_min_res=4, hash_max_res=32, hidden=16,
                                     grid_resolution=8))


def make_tiny_scene(folder, **overrides):
    """A procedural Blender-format scene at 16x16: 8 train, 1 val and 2 test views."""
    from fastnerf.data.procedural import SCENES, make_scene

    settings = {**dict(n_train=8, n_val=1, n_test=2, res=16, seed=0, samples_per_axis=1), **overrides}
    return make_scene(SCENES[0], folder, **settings)
