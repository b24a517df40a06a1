"""The training engine: minutes budgets resume exactly, torchrun data parallelism, devices, budgets."""

import json
import os
import subprocess
import sys

import pytest
import torch

from fastnerf.data import DatasetError
from fastnerf.data.procedural import SCENES, make_scene
from fastnerf.errors import UserError
from fastnerf.train import engine, load_checkpoint, train_teacher
from fastnerf.train.budget import Budget
from fastnerf.train.tasks.teacher import TeacherTask
from tiny import train_killed_in_step
from fastnerf.devices import available_devices, resolve_device

SMALL = dict(hash_levels=8, hash_log2_size=14, hash_min_res=4, hash_max_res=64, hidden=32, grid_resolution=16,
             steps_per_diagonal=96, grid_warmup=16)
FAST = dict(target_samples=4096, max_rays=512, grid_every=4, eval_every=0, progress=False, model_config=SMALL)


@pytest.fixture(scope="module")
def scene(tiny_scene):
    return tiny_scene


class FakeClock:
    """The engine's clock, advanced by the work alone: no sleeping, the same readings every run."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advancing(self, work, seconds):
        """``work`` that takes ``seconds`` (a number, or a function of how many calls came before)."""
        calls = []

        def timed(*args, **kwargs):
            self.now += seconds(len(calls)) if callable(seconds) else seconds
            calls.append(1)
            return work(*args, **kwargs)

        return timed


@pytest.fixture
def one_second_steps(monkeypatch):
    """Every teacher step takes one second of the engine's clock; nothing else takes any."""
    fake = FakeClock()
    monkeypatch.setattr(engine, "clock", fake)
    monkeypatch.setattr(TeacherTask, "loss", fake.advancing(TeacherTask.loss, 1.0))
    return fake


def test_a_minutes_budget_becomes_steps_and_resumes_bitwise(scene, tmp_path, monkeypatch, one_second_steps):
    straight = train_teacher(scene, tmp_path / "straight", minutes=0.5, seed=3, checkpoint_every=0, **FAST)
    budget = load_checkpoint(tmp_path / "straight")["extra"]["engine"]["budget"]
    assert budget["total_steps"] == straight["steps"] == 30 and budget["minutes"] == 0.5
    assert straight["wall_seconds"] == 30.0 and straight["budget_seconds"] == 30.0
    train_killed_in_step(monkeypatch, 20, lambda: train_teacher(scene, tmp_path / "split", minutes=0.5, seed=3,
                                                                checkpoint_every=10, **FAST))
    assert load_checkpoint(tmp_path / "split")["step"] == 10
    resumed = train_teacher(scene, tmp_path / "split", resume=True, progress=False)
    assert resumed["steps"] == 30
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    for key in a:  # the sub-ray switch and the LR follow the decided step count: bitwise equal
        assert torch.equal(a[key], b[key]), key
    # and a run given that step count from the start is the same run
    by_steps = train_teacher(scene, tmp_path / "steps", steps=30, seed=3, checkpoint_every=0, **FAST)
    for key in a:
        assert torch.equal(a[key], by_steps["model"].state_dict()[key]), key


def test_budget_decides_from_the_later_steps_then_follows_the_machine():
    budget = Budget(minutes=1.0)
    assert budget.total_steps is None and budget.running(10**6)
    # a slow first step (1.5 s: lazy initialisation, grid warm-up), then 0.5 s per step
    elapsed, decided = 0.0, []
    for step in range(1, 11):
        elapsed += 1.5 if step == 1 else 0.5
        if budget.observe(step, 1.5 if step == 1 else 0.5, elapsed):
            decided.append(step)
    assert decided == [4]  # 3 s = 5% of 60 s of wall time
    assert budget.seconds_per_step == 0.5  # the later half of the window: the slow start is not counted
    assert budget.total_steps == 4 + 114  # (60 - 3) s / 0.5 s, the same after every step on this machine
    assert not budget.observe(11, 0.5, elapsed + 0.5)  # the same machine: the same count
    budget.every = {"eval": 10, "save": 0}  # a held-out check every 10 steps, no periodic checkpoint
    budget.add_overhead("eval", 2.0)  # 2 s: 0.2 s a step on top, and one more check at the end
    assert budget.observe(12, 0.5, elapsed + 3.0) and budget.total_steps == 12 + 70  # (60 - 9 - 2) s / 0.7 s
    assert not budget.observe(13, 0.5, 61.0) or budget.total_steps == 13  # out of time: stop now
    assert not budget.running(13)
    capped = Budget(minutes=1.0, steps=50)
    assert any(capped.observe(step, 0.5, 0.5 * step) for step in range(1, 40)) and capped.total_steps == 50
    assert Budget(steps=7).total_steps == 7
    resumed = Budget.resumed(budget.state_dict(), minutes=2.0)  # the whole run's budget: the time spent counts
    assert resumed.elapsed == 61.0 and resumed.observe(14, 0.5, 61.5) and 100 < resumed.total_steps < 14 + 118
    assert Budget.resumed(budget.state_dict()).total_steps == 13
    fresh = Budget.resumed({"minutes": 1.0, "total_steps": None})  # killed before deciding
    assert not fresh.observe(30, 0.5, 40.0) and not fresh.observe(31, 0.5, 40.5)  # needs 3 steps of this session
    assert fresh.observe(32, 0.5, 41.0) and fresh.total_steps == 32 + 38
    assert "against a budget of 60 s (+5.0%)" in fresh.report(63.0)


class TinyModel(torch.nn.Linear):
    kind = "tiny"

    def __init__(self):
        super().__init__(2, 1)

    def config(self):
        return {}


class TinyTask(engine.Task):
    """A task with nothing to learn, for the engine's own behaviour."""

    name = "tiny"

    def build_model(self, ctx):
        return TinyModel()

    def param_groups(self, model):
        return [{"params": list(model.parameters()), "base_lr": 1e-3}]

    def loss(self, model, step, ctx):
        return model(torch.ones(1, 2)).square().sum(), {}

    def evaluate(self, model, ctx):
        return {"psnr": 1.0}


@pytest.mark.parametrize("slowdown", [1.0, 3.0])
def test_a_minutes_budget_holds_in_wall_time_when_the_machine_slows_down(tmp_path, monkeypatch, slowdown):
    """0.2 s a step, then ``slowdown`` times that from the 150th step on (a third of the run), with
    held-out checks (2 s) and checkpoints (1 s) on top, and 4 s of start-up: the run ends within 5%
    of its 2 minutes on a steady machine, within 10% on one that slows down."""
    fake = FakeClock()
    monkeypatch.setattr(engine, "clock", fake)
    monkeypatch.setattr(TinyTask, "build_model", fake.advancing(TinyTask.build_model, 4.0))
    monkeypatch.setattr(TinyTask, "loss", fake.advancing(TinyTask.loss, lambda n: 0.2 * (slowdown if n >= 150 else 1)))
    monkeypatch.setattr(TinyTask, "evaluate", fake.advancing(TinyTask.evaluate, 2.0))
    monkeypatch.setattr(engine, "save_checkpoint", fake.advancing(engine.save_checkpoint, 1.0))
    summary = engine.train(TinyTask(), tmp_path / "run", minutes=2.0, eval_every=50, checkpoint_every=100,
                           progress=False, log=None)
    assert summary["wall_seconds"] == fake.now
    tolerance = 0.05 if slowdown == 1.0 else 0.10
    assert abs(summary["wall_seconds"] - 120.0) <= tolerance * 120.0, summary["wall_seconds"]
    assert load_checkpoint(tmp_path / "run")["extra"]["engine"]["budget"]["total_steps"] == summary["steps"]


def test_the_loop_time_counts_what_the_loop_does_after_the_first_step(tmp_path, monkeypatch):
    """train.json's loop_steps / loop_seconds: steps 2..20 with the on_step callback and the
    held-out checks between them; start-up, the first step and the final checkpoint left out."""
    fake = FakeClock()
    monkeypatch.setattr(engine, "clock", fake)
    monkeypatch.setattr(TinyTask, "build_model", fake.advancing(TinyTask.build_model, 4.0))
    monkeypatch.setattr(TinyTask, "loss", fake.advancing(TinyTask.loss, 0.2))
    monkeypatch.setattr(TinyTask, "evaluate", fake.advancing(TinyTask.evaluate, 2.0))
    monkeypatch.setattr(engine, "save_checkpoint", fake.advancing(engine.save_checkpoint, 1.0))

    def on_step(report):  # a viewer, say: 0.05 s after every step
        fake.now += 0.05

    summary = engine.train(TinyTask(), tmp_path / "run", steps=20, eval_every=10, checkpoint_every=0,
                           progress=False, log=None, on_step=on_step)
    assert summary["loop_steps"] == 19
    assert summary["loop_seconds"] == pytest.approx(19 * 0.25 + 2 * 2.0)  # checks at steps 10 and 20
    assert summary["wall_seconds"] == pytest.approx(4.0 + 20 * 0.25 + 2 * 2.0 + 1.0)
    assert json.loads((tmp_path / "run" / "train.json").read_text())["loop_steps"] == 19


def test_devices_are_checked_against_the_machine():
    assert resolve_device("cpu") == torch.device("cpu") and available_devices()[0] == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="not a device name"):
        resolve_device("gpu7")
    with pytest.raises(UserError, match="not supported"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="asked for CUDA.*devices here: cpu"):
            resolve_device("cuda:0")


def test_a_malformed_val_split_is_an_error_a_missing_one_falls_back(scene, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(scene, data)
    (data / "transforms_val.json").unlink()
    assert train_teacher(data, tmp_path / "a", steps=1, **FAST)["held_out_psnr"] is not None  # the test split
    (data / "transforms_val.json").write_text('{"frames": 3}')
    with pytest.raises(DatasetError, match="transforms_val.json"):
        train_teacher(data, tmp_path / "b", steps=1, **FAST)


def test_the_held_out_check_renders_a_bounded_subset_of_pixels(tmp_path):
    data = make_scene(SCENES[0], tmp_path / "big", n_train=2, n_val=3, n_test=1, res=96, seed=0, samples_per_axis=1)
    summary = train_teacher(data, tmp_path / "run", steps=2, eval_images=3, eval_pixels=1000,
                            **{**FAST, "eval_every": 1})
    assert [h["pixels"] for h in summary["history"]] == [1000, 1000]  # not 3 x 96 x 96


def test_a_task_name_mismatch_on_resume_is_refused(scene, tmp_path):
    train_teacher(scene, tmp_path / "run", steps=1, **FAST)

    class Other(engine.Task):
        name = "other"

    with pytest.raises(UserError, match="'teacher' run, not 'other'"):
        engine.train(Other(), tmp_path / "run", resume=True)


def torchrun(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "fastnerf", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is needed")
def test_torchrun_trains_checkpoints_and_resumes_on_two_processes(scene, tmp_path):
    run = tmp_path / "run"
    common = ["train", "teacher", "--data", str(scene), "--out", str(run), "--device", "cpu", "--quiet",
              "--eval-every", "0", "--checkpoint-every", "2"]
    done = torchrun(*common, "--steps", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 4 steps") == 1 and "on 2 processes" in done.stdout  # rank 0 alone prints
    checkpoint = load_checkpoint(run)
    engine_state = checkpoint["extra"]["engine"]
    assert engine_state["world_size"] == 2 and checkpoint["train_args"]["target_samples"] == 1 << 14
    states = checkpoint["rng"]["ranks"]
    assert len(states) == 2 and not torch.equal(states[0], states[1])  # each rank draws its own rays
    done = torchrun(*common, "--steps", "6", "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = load_checkpoint(run)
    assert resumed["step"] == 6 and json.loads((run / "train.json").read_text())["world_size"] == 2
    assert not torch.equal(resumed["model"]["position_encoding.table"], checkpoint["model"]["position_encoding.table"])


def _replica(rank, world_size, port, results):
    import torch.distributed as dist

    from fastnerf.train.distributed import Distributed

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        group = Distributed(torch.device("cpu"), rank, world_size)
        param = torch.nn.Parameter(torch.zeros(3))
        param.grad = torch.full((3,), float(rank + 1))
        loss = torch.tensor(float("nan") if rank == 1 else 1.0)
        mean_loss = group.average_gradients([param], loss)
        grid = torch.tensor([float(rank), 5.0 - rank])
        group.all_reduce_(grid, "max")
        results[rank] = (param.grad.tolist(), bool(torch.isfinite(mean_loss)), grid.tolist(), group.broadcast_int(7 + rank),
                         [int(s.sum()) for s in group.gather(torch.tensor([rank, rank]))])
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is needed")
def test_replicas_average_gradients_and_a_nan_on_one_rank_stops_all():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_replica, args=(2, port, results), nprocs=2, join=True)
    for rank in (0, 1):
        grads, finite, grid, broadcast, gathered = results[rank]
        assert grads == [1.5, 1.5, 1.5]  # the mean of 1 and 2
        assert not finite  # rank 1's NaN reaches rank 0, so both stop
        assert grid == [1.0, 5.0]  # the occupancy EMA: a max over the ranks
        assert broadcast == 7 and gathered == [0, 2]
