"""What the tests share: the tiny teacher config and tiny scene (fixtures in conftest.py wrap
them; small enough that building, training a few steps and rendering take a moment), and the
harness that kills a training run during a given step.
"""

from types import MappingProxyType

TINY_TEACHER = MappingProxyType(dict(hash_levels=4, hash_log2_size=10, hash_min_res=4, hash_max_res=32, hidden=16,
                                     grid_resolution=8))


def make_tiny_scene(folder, **overrides):
    """A procedural Blender-format scene at 16x16: 8 train, 1 val and 2 test views."""
    from fastnerf.data.procedural import SCENES, make_scene

    settings = {**dict(n_train=8, n_val=1, n_test=2, res=16, seed=0, samples_per_axis=1), **overrides}
    return make_scene(SCENES[0], folder, **settings)


def train_killed_in_step(monkeypatch, step: int, run) -> None:
    """``run()`` (a teacher training run), killed (KeyboardInterrupt) as step ``step`` draws its
    rays, so the last checkpoint before it is what a resume starts from."""
    import pytest

    from fastnerf.data.dataset import Dataset

    real, calls = Dataset.sample_rays, []

    def dies(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Dataset, "sample_rays", dies)
    try:
        with pytest.raises(KeyboardInterrupt):
            run()
    finally:
        monkeypatch.setattr(Dataset, "sample_rays", real)
