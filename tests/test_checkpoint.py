"""Checkpoints: round trip, atomic write, weights_only load, version and truncation errors."""

import pytest
import torch

from fastnerf.errors import UserError
from fastnerf.models import build_model
from fastnerf.runs import (FORMAT_VERSION, CheckpointError, load_checkpoint, model_from_checkpoint,
                                       save_checkpoint)
from tiny import TINY_TEACHER

TINY = TINY_TEACHER


def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("nerf", **TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-15)
    model.position_encoding.table.grad = torch.ones_like(model.position_encoding.table)
    optimizer.step()
    model.grid.occupied[0] = False
    generator = torch.Generator().manual_seed(3)
    path = save_checkpoint(tmp_path / "run", model=model, optimizer=optimizer, step=7,
                           rng={"train": generator.get_state()}, train_args={"seed": 3, "data": "x"},
                           dataset={"path": "x", "split": "train", "downscale": 2})
    return model, optimizer, path


def test_round_trip_is_exact(tmp_path):
    model, optimizer, path = saved(tmp_path)
    assert path == tmp_path / "run" / "checkpoint.pt"
    assert not (tmp_path / "run" / "checkpoint.pt.tmp").exists()
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint["format_version"] == FORMAT_VERSION and checkpoint["step"] == 7
    assert checkpoint["dataset"]["downscale"] == 2
    clone = model_from_checkpoint(checkpoint)
    for key, value in model.state_dict().items():
        assert torch.equal(value, clone.state_dict()[key]), key
    assert not clone.grid.occupied[0].any()
    generator = torch.Generator()
    generator.set_state(checkpoint["rng"]["train"])
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=torch.Generator().manual_seed(3)))
    restored = torch.optim.Adam(clone.parameters(), lr=1e-2, eps=1e-15)
    restored.load_state_dict(checkpoint["optimizer"])
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_wrong_version_is_a_clear_user_error(tmp_path):
    _, _, path = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}.*reads version {FORMAT_VERSION}"):
        load_checkpoint(path)
    assert issubclass(CheckpointError, UserError)


def test_truncated_missing_and_foreign_files(tmp_path):
    _, _, path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "nowhere")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fastnerf checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_pickled_objects_are_refused(tmp_path):
    import argparse

    torch.save({"format_version": FORMAT_VERSION, "payload": argparse.Namespace(x=1)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")


@pytest.mark.parametrize("encoding", ["hash", "frequency"])
def test_runs_from_before_the_fields_composition_still_load(tmp_path, encoding):
    torch.manual_seed(0)
    model = build_model("nerf", encoding=encoding, **TINY, width=16, depth=2)
    old_names = {"position_encoding.table": "table", "geometry_mlp.": "density_mlp." if encoding == "hash" else "trunk."}

    def old(key):
        for new, before in old_names.items():
            if key.startswith(new):
                return before + key[len(new):]
        return key

    state = {old(k): v for k, v in model.state_dict().items()}
    assert any(k.startswith(("density_mlp.", "trunk.")) for k in state)  # the old layout
    params = {old(n): p.detach() + 1.0 for n, p in model.named_parameters()}
    save_checkpoint(tmp_path, model=model, averaged={"updates": 1, "params": params})
    checkpoint = load_checkpoint(tmp_path)
    checkpoint["model"] = state
    raw = model_from_checkpoint(checkpoint, averaged=False)
    for key, value in model.state_dict().items():
        assert torch.equal(raw.state_dict()[key], value), key
    averaged = model_from_checkpoint(checkpoint)
    for name, param in model.named_parameters():
        assert torch.equal(dict(averaged.named_parameters())[name], param + 1.0), name
