"""The GPU check's plumbing on the CPU: its order of measurements, the budget that stops it from starting more
(never changes a number), a JSON saved after every measurement, the bundle a lent machine needs, and a run in
a simulated device image (no optuna; fvcore only where carried)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from study import gpu_check
from study.errors import KitError
from tests.helpers import write_tiny_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_the_check_measures_lrnet_and_one_seed_of_its_time_to_accuracy_before_any_baseline():
    settings = gpu_check.CheckSettings(models=("lrnet_paper", "vgg", "resnet"), batches=(128, 512), seeds=3)
    assert gpu_check.plan(settings) == [
        ("throughput", "lrnet_paper", 128), ("time to accuracy", "lrnet_paper", 0),
        ("throughput", "vgg", 128), ("throughput", "resnet", 128),
        ("time to accuracy", "lrnet_paper", 1), ("time to accuracy", "lrnet_paper", 2),
        ("throughput", "lrnet_paper", 512), ("throughput", "vgg", 512), ("throughput", "resnet", 512)]


def _fake_measurements(monkeypatch, clock: list[float]):
    """Each measurement takes 60 s of a fake clock; throughput rows say which model and batch they are."""
    def throughput(model, batch, settings, device):
        clock[0] += 60
        return {"model": model, "batch": batch, "train_img_per_s": 1000.0 + batch, "infer_img_per_s": 4000.0, "peak_mem_mb": 9.0}

    def tta(settings, device, data_root, seed):
        clock[0] += 60
        return {"model": "lrnet_paper", "seed": seed, "test_accuracy": 0.9 + seed / 100, "train_seconds": 5.0 + seed, "epochs": 3}

    monkeypatch.setattr(gpu_check, "measure_throughput", throughput)
    monkeypatch.setattr(gpu_check, "tta_seed", tta)
    monkeypatch.setattr(gpu_check.time, "time", lambda: clock[0])


def test_past_its_budget_the_check_starts_nothing_and_saves_every_measurement_as_it_ends(tmp_path, monkeypatch):
    clock = [1_000_000.0]
    _fake_measurements(monkeypatch, clock)
    settings = gpu_check.CheckSettings(models=("lrnet_paper", "vgg", "resnet"), batches=(128, 512), seeds=3)
    saved = []

    def say(line):  # the file on disk already holds what was just measured
        path = next(tmp_path.glob("gpu-check-*.json"))
        saved.append((line, json.loads(path.read_text())))

    # 270 s of budget: measurements start at 0, 60, ..., 240 s; the sixth would start at 300 s
    path = gpu_check.run_check(settings, "cpu", tmp_path, deadline=clock[0] + 270, say=say)
    assert [line for line, _ in saved] == ["[    60 s] measured throughput lrnet_paper batch 128",
                                           "[   120 s] measured time to accuracy lrnet_paper seed 0",
                                           "[   180 s] measured throughput vgg batch 128",
                                           "[   240 s] measured throughput resnet batch 128",
                                           "[   300 s] measured time to accuracy lrnet_paper seed 1"]
    assert [len(doc["throughput"]) for _, doc in saved] == [1, 1, 2, 3, 3]
    assert saved[0][1]["time_to_accuracy"] is None
    assert saved[1][1]["time_to_accuracy"]["test_accuracy"] == [0.9]
    assert saved[0][1]["paper_study"]["hours_per_model"].keys() == {"lrnet_paper"}  # estimated from what was measured
    doc = json.loads(path.read_text())
    assert doc["complete"] is False and doc["wall_s"] == 300 and doc["errors"] == []
    assert doc["skipped"] == ["time to accuracy lrnet_paper seed 2", "throughput lrnet_paper batch 512",
                              "throughput vgg batch 512", "throughput resnet batch 512"]
    tta = doc["time_to_accuracy"]
    assert (tta["seeds"], tta["seeds_planned"], tta["test_accuracy"], tta["train_seconds_per_seed"]) == (2, 3, [0.9, 0.91], [5.0, 6.0])
    assert tta["mean_test_accuracy"] == pytest.approx(0.905) and tta["mean_train_seconds"] == 5.5 and tta["reached"] is False
    lines = gpu_check.summary_lines(doc)
    assert lines[-1] == ("  not measured (the budget ran out first): time to accuracy lrnet_paper seed 2, "
                         "throughput lrnet_paper batch 512, throughput vgg batch 512, throughput resnet batch 512")
    assert "  time to accuracy: lrnet_paper mean test 90.50% over 2 of 3 seeds, 5.5 s of training per seed (missed 95.0%)" in lines


def test_a_failed_measurement_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    clock = [0.0]
    _fake_measurements(monkeypatch, clock)
    measured = gpu_check.measure_throughput

    def throughput(model, batch, settings, device):
        if model == "vgg":
            raise RuntimeError("inductor: compilation failed\nlong traceback text")
        return measured(model, batch, settings, device)

    monkeypatch.setattr(gpu_check, "measure_throughput", throughput)
    settings = gpu_check.CheckSettings(models=("lrnet_paper", "vgg", "resnet"), batches=(128,), seeds=1)
    said = []
    doc = json.loads(gpu_check.run_check(settings, "cpu", tmp_path, say=said.append).read_text())
    assert doc["errors"] == ["throughput vgg batch 128: RuntimeError: inductor: compilation failed"]
    assert [r["model"] for r in doc["throughput"]] == ["lrnet_paper", "resnet"] and doc["complete"] is False
    assert said[2] == "[   120 s] FAILED throughput vgg batch 128: RuntimeError: inductor: compilation failed"
    assert gpu_check.summary_lines(doc)[-1] == "  FAILED throughput vgg batch 128: RuntimeError: inductor: compilation failed"


def test_without_a_budget_the_check_measures_everything_and_says_it_is_complete(tmp_path, monkeypatch):
    _fake_measurements(monkeypatch, [0.0])
    settings = gpu_check.CheckSettings(models=("lrnet_paper", "vgg"), batches=(128,))
    doc = json.loads(gpu_check.run_check(settings, "cpu", tmp_path, say=lambda line: None).read_text())
    assert doc["complete"] is True and doc["skipped"] == [] and len(doc["throughput"]) == 2
    assert not any(line.startswith("  not measured") for line in gpu_check.summary_lines(doc))


def test_a_negative_budget_is_refused_in_one_line(capsys):
    from study.cli import main

    assert main(["gpu", "--tiny", "--budget-min", "-1"]) == 1
    assert "--budget-min -1.0: must be ≥ 0 (0 = no limit)" in capsys.readouterr().err


def test_the_bundle_holds_the_pinned_wheels_and_the_data_and_names_the_command(tmp_path, monkeypatch):
    data = write_tiny_dataset(tmp_path / "data", train=20, test=10)
    calls = []
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    command = gpu_check.bundle(tmp_path / ".gpu", str(data))
    pins = [f"{name}=={metadata.version(name)}" for name in ("fvcore", "iopath", "yacs", "termcolor")]
    assert calls == [[sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / ".gpu" / "wheels"), *pins]]
    copied = sorted(p.name for p in (tmp_path / ".gpu" / "data" / "fashion-mnist").iterdir())
    assert copied == sorted(p.name for p in (data / "fashion-mnist").iterdir()) and len(copied) == 4
    for name in copied:
        assert (tmp_path / ".gpu" / "data" / "fashion-mnist" / name).read_bytes() == (data / "fashion-mnist" / name).read_bytes()
    assert command.endswith(f"python3 -m study gpu --data-root {tmp_path}/.gpu/data --out $OUT")
    assert f"--target /tmp/site {tmp_path}/.gpu/wheels/*.whl && PYTHONPATH=$PWD:/tmp/site " in command


def test_a_bundle_without_the_package_index_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for fvcore"))
    with pytest.raises(KitError, match=r"^--bundle: pip could not build wheels of fvcore==\S+ .* \(it needs the package "
                                       r"index once\): ERROR: No matching distribution found for fvcore$"):
        gpu_check.bundle(tmp_path / ".gpu")


IMAGE = """\
import sys
GONE = ("optuna", "sqlalchemy", "alembic", "colorlog")  # not in the lent machines' image


class Image:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in GONE:
            return None
        return self.finder.find_spec(name, path, target) if hasattr(self.finder, "find_spec") else None

    def __getattr__(self, name):  # find_distributions and the rest: package metadata stays visible
        return getattr(self.finder, name)


sys.meta_path[:] = [Image(f) for f in sys.meta_path]
"""


def test_the_check_runs_in_the_device_image_without_optuna(tmp_path):
    # the lent machine has no optuna and no nox: `python3 -m study gpu` must not need them
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "sitecustomize.py").write_text(IMAGE)
    data = write_tiny_dataset(tmp_path / "data", train=300, test=200)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'image'}:{ROOT}"}
    probe = subprocess.run([sys.executable, "-c", "import optuna"], env=env, capture_output=True, text=True)
    assert "No module named 'optuna'" in probe.stderr  # the simulated image really lacks it
    done = subprocess.run([sys.executable, "-m", "study", "gpu", "--tiny", "--out", str(tmp_path / "out"),
                           "--data-root", str(data)], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "measured time to accuracy lrnet_paper" in done.stdout and len(list((tmp_path / "out").glob("*.json"))) == 1


def test_the_command_saves_what_it_measured_and_exits_1_when_a_measurement_failed(tmp_path, monkeypatch, capsys):
    from study.cli import main

    _fake_measurements(monkeypatch, [0.0])
    monkeypatch.setattr(gpu_check, "measure_throughput", lambda *a: (_ for _ in ()).throw(MemoryError()))
    assert main(["gpu", "--tiny", "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    [saved] = tmp_path.glob("gpu-check-*.json")
    assert f"saved {saved}" in out and "  FAILED throughput lrnet_paper batch 4: MemoryError" in out
    assert f"2 measurement(s) of the GPU check failed (listed above and in {saved}); the others are saved" in err
    assert json.loads(saved.read_text())["time_to_accuracy"]["seeds"] == 1
