"""Training engine: determinism, early stopping and best-weights restore, divergence, history, checkpoints, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from study import data as datasets
from study.models import build_model
from study.profiles import PROFILES, get_profile, with_training
from study.train import Task, TrainConfig, evaluate, load_checkpoint, save_checkpoint, train
from tests.helpers import write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = TrainConfig(epochs=2, batch_size=32, patience=5, precision="fp32", profile="test", eval_batch_size=100)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A learnable 300/200-image stand-in for fashion-mnist in IDX files."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))


def run(root: Path, cfg: TrainConfig = TINY, model: str = "lrnet_half", **kwargs) -> dict:
    task = Task("fashion-mnist", protocol="val-split", data_root=str(root), extra_tests=kwargs.pop("extra_tests", ()))
    return train(model, task, cfg=cfg, **kwargs)


def test_same_seed_gives_identical_metrics_and_another_seed_differs(tiny_root):
    first, second, other = run(tiny_root, seed=3), run(tiny_root, seed=3), run(tiny_root, seed=4)
    keys = ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "best_epoch", "epochs")
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}
    assert first["val_loss"] != other["val_loss"]


def test_learns_the_tiny_task_and_records_provenance(tiny_root, tmp_path):
    cfg = dataclasses.replace(TINY, epochs=4, lr=3e-3)
    result = run(tiny_root, cfg, history_path=tmp_path / "h.csv", seed=0)
    assert result["status"] == "ok"
    assert result["test_accuracy"] >= 0.9, result  # ten bars at ten rows: trivially separable
    assert result["protocol"] == "val-split" and result["test_size"] == 200 and result["train_size"] == 270
    assert result["params"] == 405_114 and result["flops"] > 0
    for key in ("torch_version", "device", "threads", "precision", "wall_s", "train_img_per_s", "infer_img_per_s"):
        assert key in result
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert set(rows[0]) == {"step", "epoch", "epoch_end", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s"}
    assert [float(r["epoch"]) for r in rows if r["epoch_end"] == "1"] == [1.0, 2.0, 3.0, 4.0]
    # 8 steps an epoch, 32 in all, fewer than 10 epochs: a row every ceil(32 / 10) = 4 steps
    assert [int(r["step"]) for r in rows] == list(range(4, 33, 4))


def test_history_rows_within_an_epoch_do_not_change_the_run(tiny_root, tmp_path, monkeypatch):
    import study.train

    logged = run(tiny_root, history_path=tmp_path / "many.csv", seed=2)
    monkeypatch.setattr(study.train, "HISTORY_POINTS", 1)  # epoch ends only
    plain = run(tiny_root, history_path=tmp_path / "few.csv", seed=2)
    keys = ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "best_epoch")
    assert {k: logged[k] for k in keys} == {k: plain[k] for k in keys}
    assert len(list(csv.DictReader(open(tmp_path / "many.csv")))) > len(list(csv.DictReader(open(tmp_path / "few.csv")))) == 2


def test_early_stopping_restores_the_best_validation_weights(tiny_root, tmp_path):
    # a learning rate so high that validation loss rises after the first epochs: patience 1 stops it
    cfg = dataclasses.replace(TINY, epochs=8, patience=1, optimizer="sgd", lr=0.5, momentum=0.9)
    result = run(tiny_root, cfg, history_path=tmp_path / "h.csv", checkpoint_path=tmp_path / "best.pt", seed=1)
    epochs = [r for r in csv.DictReader(open(tmp_path / "h.csv")) if r["epoch_end"] == "1"]
    losses = [float(r["val_loss"]) for r in epochs]
    best = min(range(len(losses)), key=losses.__getitem__) + 1
    assert result["status"] == "ok" and "early stopping" in result["stop_reason"]
    assert result["best_epoch"] == best == result["epochs"] - 1  # the last epoch is not the best one
    # the weights tested (and kept) are the best epoch's: their validation loss is that epoch's, recomputed
    splits = datasets.make_splits("fashion-mnist", seed=1, val_fraction=cfg.val_fraction, protocol="val-split",
                                  data_root=str(tiny_root))
    model = load_checkpoint(build_model("lrnet_half"), tmp_path / "best.pt")
    loader = datasets.DeviceLoader(*splits.val, batch_size=cfg.eval_batch_size, shuffle=False, seed=1, device="cpu")
    assert evaluate(model, loader, cfg, "cpu")["loss"] == pytest.approx(losses[best - 1], rel=1e-6)
    assert result["val_loss"] == pytest.approx(losses[best - 1])


def test_nan_loss_ends_the_run_as_diverged_without_crashing(tiny_root):
    cfg = dataclasses.replace(TINY, optimizer="sgd", lr=1e12, momentum=0.0, epochs=3)
    result = run(tiny_root, cfg, seed=0)
    assert result["status"] == "diverged"
    assert result["stop_reason"].startswith("diverged:")
    assert "test_accuracy" not in result


def test_budgets_are_work_not_time():
    # no field of a training config is measured in seconds: a trial's length cannot depend on machine load
    assert not [f.name for f in dataclasses.fields(TrainConfig) if f.name.endswith(("_s", "_seconds", "_min"))]


def test_extra_test_degradations_are_evaluated_on_the_final_model(tiny_root):
    result = run(tiny_root, seed=0, extra_tests=("lowres:7", "noise:0.5"))
    assert set(result["extra_tests"]) == {"lowres:7", "noise:0.5"}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in result["extra_tests"].values())


def test_bf16_autocast_trains_on_cpu(tiny_root):
    result = run(tiny_root, dataclasses.replace(TINY, precision="bf16", epochs=1), seed=0)
    assert result["status"] == "ok" and result["precision"] == "bf16"


def test_checkpoint_round_trip_uses_weights_only(tmp_path):
    model = build_model("lrnet_half")
    save_checkpoint(model, tmp_path / "w.pt")
    clone = load_checkpoint(build_model("lrnet_half"), tmp_path / "w.pt")
    for a, b in zip(model.state_dict().values(), clone.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    torch.save({"evil": object()}, tmp_path / "bad.pt")  # an arbitrary pickle is refused
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(build_model("lrnet_half"), tmp_path / "bad.pt")


def test_profiles_say_what_they_are():
    paper = PROFILES["paper"].train
    assert paper.optimizer == "adam" and paper.lr == 1e-3 and paper.patience == 30 and paper.batch_size == 128
    assert (paper.precision, paper.fast, paper.eval_batch_size) == ("bf16", True, 2000)  # the GPU path (issue 17)
    assert "bf16 fast path" in PROFILES["paper"].describe()
    quick = with_training(get_profile("quick"), epochs=1, lr=None)
    assert quick.train.epochs == 1 and quick.train.lr == PROFILES["quick"].train.lr
    text = quick.describe()
    assert text.startswith("quick profile; PROXY; MK networks at width ×0.25; 450 steps (14,400-image")
    assert "study overrides: train.epochs=1" in text and "5 seeds" in text
    assert not PROFILES["paper"].proxy and "PROXY" not in PROFILES["paper"].describe()
    with pytest.raises(Exception, match="unknown profile 'fast'; use one of: paper, quick"):
        get_profile("fast")


def test_cli_prints_the_result_row_as_json(tiny_root):
    proc = subprocess.run(
        [sys.executable, "-m", "study", "train", "lrnet_half", "--dataset", "fashion-mnist", "--data-root", str(tiny_root),
         "--epochs", "1", "--precision", "fp32", "--json", "--protocol", "val-split"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    for key in ("test_accuracy", "val_accuracy", "train_img_per_s", "wall_s", "profile", "config"):
        assert key in row
    assert row["profile"] == "quick" and row["train_config"].startswith("quick profile; PROXY; MK networks at width ×0.25")
    assert row["model"] == "lrnet_half ×0.125"  # the quick profile's proxy width applies to MK networks


def test_cli_unknown_dataset_is_one_line(tiny_root):
    proc = subprocess.run([sys.executable, "-m", "study", "train", "lrnet_paper", "--dataset", "fashion"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "fashion-mnist" in proc.stderr and "Traceback" not in proc.stderr


def test_same_seed_is_identical_under_the_quick_profiles_fast_bf16_path(tiny_root):
    cfg = dataclasses.replace(PROFILES["quick"].train, train_subset=0, val_subset=0, epochs=1, batch_size=32)
    first, second = run(tiny_root, cfg, seed=5), run(tiny_root, cfg, seed=5)
    assert first["precision"] == "bf16" and first["config"]["fast"] is True
    keys = ("val_accuracy", "val_loss", "test_accuracy", "test_loss")
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}


@pytest.mark.slow
def test_quick_profile_proxy_learns_on_real_fashion_mnist(fashion_root):
    # The quick profile is a budget in steps: the same seed gives the same accuracy on an idle or a busy
    # machine. Its ×0.25 proxy of LR-Net reaches 80.5 ± 0.7 % (12 seeds, docs/calibration.md); 78 % is
    # more than 3 SDs below that mean.
    proc = subprocess.run([sys.executable, "-m", "study", "train", "lrnet_paper", "--dataset", "fashion-mnist",
                           "--profile", "quick", "--json"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "ok" and result["test_size"] == 10_000 and result["protocol"] == "val-split"
    assert result["model"] == "lrnet_paper ×0.25" and result["epochs"] == 1 and result["train_size"] == 14_400
    assert result["test_accuracy"] >= 0.78, result["test_accuracy"]


def test_bn_recalibration_recomputes_the_statistics_before_evaluating_and_never_changes_training(tiny_root, tmp_path):
    cfg = dataclasses.replace(TINY, epochs=1)
    plain = run(tiny_root, cfg, history_path=tmp_path / "plain.csv", checkpoint_path=tmp_path / "plain.pt", seed=5)
    recal = run(tiny_root, dataclasses.replace(cfg, bn_recalibrate=3), history_path=tmp_path / "recal.csv",
                checkpoint_path=tmp_path / "recal.pt", seed=5)
    rows = [list(csv.DictReader(open(tmp_path / f"{name}.csv"))) for name in ("plain", "recal")]
    assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]]  # the same steps, the same order
    tracked = {name: [v.item() for k, v in torch.load(tmp_path / f"{name}.pt", weights_only=True).items()
                      if k.endswith("num_batches_tracked")] for name in ("plain", "recal")}
    assert set(tracked["recal"]) == {3}  # the tested weights carry the plain average over 3 batches
    assert set(tracked["plain"]) == {8}  # momentum updates over the epoch's 8 steps
    assert recal["val_loss"] != plain["val_loss"]
    described = with_training(PROFILES["quick"], bn_recalibrate=20).describe()
    assert "batch-norm statistics recomputed on 20 training batches before each evaluation" in described
