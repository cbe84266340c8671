"""Branches a CPU machine can reach but the happy path never does: a device that is not there, an
out-of-memory retry, gradient clipping, label smoothing, the cosine schedule's end, a diverged
`study train`, and the `--seeds` forms of `study run`."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch

from study.cli import main
from study.commands.selection import parse_seeds
from study.errors import KitError
from study.measure import try_batches
from study.spec import HeadSpec, MKBlockSpec, NetworkSpec
from study.train import Task, TrainConfig, check_device, train
from tests.helpers import tiny_grid_study, write_tiny_dataset

TINY = TrainConfig(epochs=1, batch_size=30, patience=5, precision="fp32", profile="test", eval_batch_size=100,
                   train_subset=90, val_subset=60, test_subset=60)
#: One MK block at a quarter of the paper's widths and one hidden layer of 32: about 50k parameters, fast on a CPU.
SMALL = NetworkSpec(name="small", blocks=(MKBlockSpec(width_multiplier=0.25, out_channels=8),), head=HeadSpec(hidden=(32,), dropout=0.0))
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data"), train=200, test=100)


def _train(root: Path, cfg: TrainConfig, **kwargs) -> dict:
    return train(SMALL, Task("fashion-mnist", protocol="val-split", data_root=str(root)), cfg=cfg, seed=0, **kwargs)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


# --- devices ---------------------------------------------------------------------------------------

@no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_train_on_cuda_without_a_gpu_is_one_line_and_exit_1(tiny_root, capsys, device):
    code = main(["train", "lrnet_paper", "--dataset", "fashion-mnist", "--data-root", str(tiny_root), "--epochs", "1",
                 "--device", device])
    assert code == 1
    assert _one_line_error(capsys) == "error: --device cuda: no CUDA device is visible; use --device cpu"


@no_gpu
def test_run_on_cuda_without_a_gpu_fails_before_any_study(tmp_path, tiny_root, capsys, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(tiny_root))
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_grid_study())
    code = main(["run", "--only", str(study), "--runs", str(tmp_path / "runs"), "--no-report", "--device", "cuda"])
    assert code == 1 and "no CUDA device is visible" in _one_line_error(capsys)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("device", ["tpu", "gpu", "", "cuda:x"])
def test_unknown_device_is_one_line_not_a_traceback(tiny_root, capsys, device):
    with pytest.raises(KitError, match=f"--device {device}: not a device the kit trains on"):
        check_device(device)
    code = main(["train", "lrnet_paper", "--dataset", "fashion-mnist", "--data-root", str(tiny_root), "--device", device])
    assert code == 1 and _one_line_error(capsys).startswith(f"error: --device {device}: not a device")


def test_cpu_is_a_device():
    check_device("cpu")


# --- out of memory -----------------------------------------------------------------------------------

def test_try_batches_halves_the_batch_on_out_of_memory():
    tried = []

    def measure(batch: int) -> dict[str, float]:
        tried.append(batch)
        if batch > 32:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {batch} MiB\nmore detail")
        return {"img_per_s": 10.0 * batch}

    assert try_batches(measure, 128) == {"batch": 32, "img_per_s": 320.0}
    assert tried == [128, 64, 32]


def test_try_batches_records_the_error_when_even_one_image_does_not_fit():
    def measure(batch: int) -> dict[str, float]:
        raise torch.OutOfMemoryError("CUDA out of memory.\nsecond line")

    result = try_batches(measure, 4)
    assert result["batch"] == 0 and result["img_per_s"] != result["img_per_s"]  # nan
    assert result["error"] == "out of memory at batch 1: CUDA out of memory."


def test_try_batches_lets_other_errors_through():
    def measure(batch: int) -> dict[str, float]:
        raise ValueError("not memory")

    with pytest.raises(ValueError, match="not memory"):
        try_batches(measure, 8)


# --- training options ---------------------------------------------------------------------------------

def test_grad_clip_changes_the_run_and_off_means_off(tiny_root):
    plain = _train(tiny_root, TINY)
    huge = _train(tiny_root, dataclasses.replace(TINY, grad_clip=1e9))  # a norm never reached: same run
    clipped = _train(tiny_root, dataclasses.replace(TINY, grad_clip=1e-3))
    assert huge["val_loss"] == plain["val_loss"]
    # Adam rescales each coordinate, but clipping changes the gradient's moments and so every update after the first.
    assert clipped["val_loss"] != plain["val_loss"] and clipped["status"] == "ok"


def test_label_smoothing_raises_the_training_loss_floor(tiny_root, tmp_path):
    cfg = dataclasses.replace(TINY, epochs=3, lr=1e-2)
    _train(tiny_root, cfg, history_path=tmp_path / "plain.csv")
    _train(tiny_root, dataclasses.replace(cfg, label_smoothing=0.5), history_path=tmp_path / "smooth.csv")
    plain = [float(r["train_loss"]) for r in csv.DictReader(open(tmp_path / "plain.csv"))]
    smooth = [float(r["train_loss"]) for r in csv.DictReader(open(tmp_path / "smooth.csv"))]
    # With smoothing 0.5 over 10 classes the target puts 0.55 on the true class: cross-entropy cannot go below
    # its entropy, -(0.55 ln 0.55 + 9 × 0.05 ln 0.05) ≈ 1.677.
    floor = -(0.55 * torch.log(torch.tensor(0.55)) + 9 * 0.05 * torch.log(torch.tensor(0.05))).item()
    assert min(smooth) >= floor - 1e-3
    assert min(plain) < floor / 2  # without smoothing the same run fits the training labels far below it


def test_cosine_schedule_ends_at_zero_learning_rate(tiny_root, tmp_path):
    cfg = dataclasses.replace(TINY, epochs=2, schedule="cosine", lr=1e-3)
    _train(tiny_root, cfg, history_path=tmp_path / "h.csv")
    lrs = [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "h.csv"))]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)
    assert lrs[0] > lrs[-1] and lrs == sorted(lrs, reverse=True)  # decays monotonically


# --- exit codes of the CLI -----------------------------------------------------------------------------

def test_diverged_train_exits_1_with_the_reason(tiny_root, capsys):
    code = main(["train", "lrnet_paper", "--dataset", "fashion-mnist", "--data-root", str(tiny_root), "--epochs", "2",
                 "--train-subset", "60", "--lr", "1e30"])
    out = capsys.readouterr().out
    assert code == 1
    assert "diverged, diverged:" in out and "test accuracy" not in out


@pytest.mark.parametrize(("text", "default", "expected"), [
    (None, (0, 1, 2, 3, 4), ((0, 1, 2, 3, 4), 0)),  # the profile's seeds
    ("2", (0, 1, 2, 3, 4), ((0, 1), 0)),
    ("auto", (0, 1, 2, 3, 4), ((0, 1, 2, 3, 4), 10)),  # bare auto: the profile's seeds, up to 10
    ("auto", (0,), ((0, 1, 2), 10)),  # never fewer than 3 to start
    ("auto:4", (0, 1, 2, 3, 4), ((0, 1, 2, 3), 4)),  # the cap bounds the start too
    ("auto:2", (0, 1, 2, 3, 4), ((0, 1, 2), 2)),
])
def test_seeds_forms(text, default, expected):
    assert parse_seeds(text, default) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("0", "--seeds 0: use a seed count ≥ 1"), ("-3", "--seeds -3: use a seed count ≥ 1"),
    ("three", "--seeds three: use a seed count ≥ 1"), ("2.5", "--seeds 2.5: use a seed count ≥ 1"),
    ("auto:ten", 'use "auto" or "auto:MAX" with an integer MAX'), ("auto:-1", 'use "auto" or "auto:MAX"'),
])
def test_bad_seeds_are_one_line_exit_1_before_training(tmp_path, tiny_root, capsys, monkeypatch, text, message):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(tiny_root))
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_grid_study())
    code = main(["run", "--only", str(study), "--runs", str(tmp_path / "runs"), "--no-report", f"--seeds={text}"])
    assert code == 1
    assert message in _one_line_error(capsys)
    assert not list((tmp_path / "runs").glob("*/results.jsonl"))


def test_workers_share_the_gpus_round_robin_and_split_the_cores(monkeypatch):
    from study.commands.run import worker_env

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    envs = [worker_env(i, 6, gpus=2, cores=16) for i in range(6)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1", "0", "1"]  # three small trials per GPU
    assert {e["OMP_NUM_THREADS"] for e in envs} == {e["STUDY_THREADS"] for e in envs} == {"2"}
    cpu = worker_env(1, 4, gpus=0, cores=2)
    assert cpu["CUDA_VISIBLE_DEVICES"] == "0,1" and cpu["STUDY_THREADS"] == "1"  # no GPUs: the variable is left alone
