"""ParameterAverage: the average it keeps, swapping it in and out, and checkpoints carrying it."""

import pytest
import torch

from fastnerf.models import build_model
from fastnerf.runs import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from fastnerf.train.ema import ParameterAverage
from tiny import TINY_TEACHER

TINY = TINY_TEACHER


def test_average_follows_the_ramped_recurrence():
    layer = torch.nn.Linear(3, 2)
    average = ParameterAverage(layer, decay=0.9)
    expected = [p.detach().clone() for p in layer.parameters()]
    for n in range(1, 40):
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(torch.randn_like(p))
        average.update()
        decay = min(0.9, (1 + n) / (10 + n))
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, layer.parameters())]
    for got, want in zip(average.average, expected):
        torch.testing.assert_close(got, want)
    assert average.updates == 39


def test_swapped_in_restores_the_raw_weights_even_on_error():
    layer = torch.nn.Linear(3, 2)
    average = ParameterAverage(layer)
    raw = layer.weight.detach().clone()
    average.average[0].fill_(7.0)
    with pytest.raises(RuntimeError, match="inside"):
        with average.swapped_in():
            assert torch.all(layer.weight == 7.0)
            raise RuntimeError("inside")
    assert torch.equal(layer.weight, raw)
    average.copy_to_model()
    assert torch.all(layer.weight == 7.0)


def test_bad_decay_is_refused():
    with pytest.raises(ValueError, match="decay must be in"):
        ParameterAverage(torch.nn.Linear(1, 1), decay=1.0)


def test_checkpoint_rebuilds_with_the_average_and_resumes_from_the_raw(tmp_path):
    torch.manual_seed(0)
    model = build_model("nerf", **TINY)
    average = ParameterAverage(model, decay=0.5)
    with torch.no_grad():
        model.position_encoding.table.add_(1.0)
    average.update()
    save_checkpoint(tmp_path, model=model, averaged=average.state_dict())
    checkpoint = load_checkpoint(tmp_path)
    torch.testing.assert_close(model_from_checkpoint(checkpoint).position_encoding.table, average.average[0])
    assert torch.equal(model_from_checkpoint(checkpoint, averaged=False).position_encoding.table, model.position_encoding.table)
    assert not torch.equal(average.average[0], model.position_encoding.table)

    restored = ParameterAverage(build_model("nerf", **TINY), decay=0.5)
    restored.load_state_dict(checkpoint["averaged"])
    assert restored.updates == 1 and torch.equal(restored.average[0], average.average[0])

    checkpoint["averaged"]["params"]["position_encoding.table"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="averaged position_encoding.table has shape"):
        model_from_checkpoint(checkpoint)
    checkpoint["averaged"]["params"] = {"nope": torch.zeros(3)}
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(checkpoint)
