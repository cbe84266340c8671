"""The GPU check's plumbing on the CPU: its order of measurements, the budget that stops it from starting more
(never changes a number), a JSON saved after every measurement, the bundle a lent machine needs, and a run in
a simulated device image (no optuna; fvcore only where carried)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
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


def _fake_measurements(monkeypatch, clock: list[float], calls: list | None = None):
    """Each measurement takes 60 s of a fake clock; throughput rows say which model and batch they are; `calls`
    records what each measurement was given."""
    calls = [] if calls is None else calls

    def throughput(model, batch, settings, device):
        calls.append(("throughput", settings, device))
        clock[0] += 60
        return {"model": model, "batch": batch, "train_img_per_s": 1000.0 + batch, "infer_img_per_s": 4000.0, "peak_mem_mb": 9.0}

    def tta(settings, device, data_root, seed):
        calls.append(("time to accuracy", settings, device, data_root))
        clock[0] += 60
        return {"model": "lrnet_paper", "seed": seed, "test_accuracy": 0.9 + seed / 100, "train_seconds": 5.0 + seed, "epochs": 3}

    monkeypatch.setattr(gpu_check, "measure_throughput", throughput)
    monkeypatch.setattr(gpu_check, "tta_seed", tta)
    monkeypatch.setattr(gpu_check.time, "time", lambda: clock[0])


def test_past_its_budget_the_check_starts_nothing_and_saves_every_measurement_as_it_ends(tmp_path, monkeypatch):
    clock, calls = [1_000_000.0], []
    _fake_measurements(monkeypatch, clock, calls)
    settings = gpu_check.CheckSettings(models=("lrnet_paper", "vgg", "resnet"), batches=(128, 512), seeds=3)
    saved = []

    def say(line):  # the file on disk already holds what was just measured
        path = next(tmp_path.glob("gpu-check-*.json"))
        saved.append((line, json.loads(path.read_text())))

    # 240 s of budget: measurements start at 0, 60, ..., 240 s (at the deadline itself still); the sixth at 300 s does not
    begin = time.localtime(clock[0])
    path = gpu_check.run_check(settings, "cpu", tmp_path, data_root="/data", deadline=clock[0] + 240, say=say)
    assert path.name == time.strftime("gpu-check-%Y%m%d-%H%M%S.json", begin)
    assert calls[:2] == [("throughput", settings, "cpu"), ("time to accuracy", settings, "cpu", "/data")]
    assert [line for line, _ in saved] == ["[    60 s] measured throughput lrnet_paper batch 128",
                                           "[   120 s] measured time to accuracy lrnet_paper seed 0",
                                           "[   180 s] measured throughput vgg batch 128",
                                           "[   240 s] measured throughput resnet batch 128",
                                           "[   300 s] measured time to accuracy lrnet_paper seed 1"]
    assert [len(doc["throughput"]) for _, doc in saved] == [1, 1, 2, 3, 3]
    assert saved[0][1]["time_to_accuracy"] is None
    assert saved[1][1]["time_to_accuracy"]["test_accuracy"] == [0.9]
    assert saved[0][1]["paper_study"]["hours_per_model"].keys() == {"lrnet_paper"}  # estimated from what was measured
    assert all(doc["complete"] is False for _, doc in saved)
    doc = json.loads(path.read_text())
    assert doc["complete"] is False and doc["wall_s"] == 300 and doc["errors"] == []
    assert (doc["tiny"], doc["device"], doc["started"]) == (False, "cpu", time.strftime("%Y-%m-%d %H:%M:%S", begin))
    assert doc["provenance"]["precision"] == "bf16" and doc["provenance"]["git_commit"] == gpu_check.git_commit()
    assert doc["quick_profile"] == gpu_check.PROFILES["quick"].describe()
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
    clock = [5_000.0]
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
    assert doc["complete"] is True and doc["skipped"] == [] and len(doc["throughput"]) == 2 and doc["wall_s"] == 7 * 60  # 2 rates, 5 seeds
    assert not any(line.startswith("  not measured") for line in gpu_check.summary_lines(doc))


def test_a_negative_budget_is_refused_in_one_line(capsys):
    from study.cli import main

    assert main(["gpu", "--tiny", "--budget-min", "-1"]) == 1
    assert "--budget-min -1.0: must be ≥ 0 (0 = no limit)" in capsys.readouterr().err


def test_the_bundle_holds_the_pinned_wheels_and_the_data_and_names_the_command(tmp_path, monkeypatch):
    data = write_tiny_dataset(tmp_path / "data", train=20, test=10)
    calls = []
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    gpu_check.bundle(tmp_path / ".gpu", str(data))
    calls.clear()
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)) or subprocess.CompletedProcess(cmd, 0))
    command = gpu_check.bundle(tmp_path / ".gpu", str(data))  # again into the same folder: refreshed, not refused
    calls = [cmd for cmd, kw in calls if kw == {"capture_output": True, "text": True}]
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
    with pytest.raises(KitError, match=r"^--bundle: pip could not build wheels of fvcore==\S+ iopath==\S+ yacs==\S+ termcolor==\S+ "
                                       r"\(it needs the package index once\): ERROR: No matching distribution found for fvcore$"):
        gpu_check.bundle(tmp_path / ".gpu")
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "  "))
    with pytest.raises(KitError, match=r"\(it needs the package index once\): no message$"):
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


def test_the_paper_study_estimate_uses_batch_128_where_measured_else_the_first_batch():
    rows = [{"model": "lrnet_paper", "batch": 512, "train_img_per_s": 1000.0, "infer_img_per_s": 4000.0},
            {"model": "lrnet_paper", "batch": 128, "train_img_per_s": 500.0, "infer_img_per_s": 2000.0},
            {"model": "vgg", "batch": 512, "train_img_per_s": 250.0, "infer_img_per_s": 1000.0},
            {"model": "vgg", "batch": 2048, "train_img_per_s": 300.0, "infer_img_per_s": 1200.0}]
    estimate = gpu_check.paper_study_estimate(rows)
    # an epoch of the three datasets: 132,300 training and 14,700 validation images; 60 epochs, 5 seeds
    lrnet = (132_300 / 500 + 14_700 / 2000) * 60 * 5 / 3600
    vgg = (132_300 / 250 + 14_700 / 1000) * 60 * 5 / 3600
    assert estimate["hours_per_model"] == pytest.approx({"lrnet_paper": lrnet, "vgg": vgg}, rel=1e-12)
    assert estimate["batch_per_model"] == {"lrnet_paper": 128, "vgg": 512}
    assert estimate["hours_total"] == pytest.approx(lrnet + vgg, rel=1e-12)
    assert (estimate["assumed_epochs"], estimate["seeds"], estimate["datasets"]) == (60, 5, ["mnist", "fashion-mnist", "oracle-mnist"])
    assert estimate["note"].endswith("at the measured training rate (batch 128 where measured) plus one validation pass per epoch")


def test_the_time_to_accuracy_target_is_reached_at_exactly_95_percent_and_the_summary_says_so():
    settings = gpu_check.CheckSettings(seeds=2)
    runs = [{"model": "lrnet_paper", "seed": s, "test_accuracy": 0.95, "train_seconds": 30.0, "epochs": 10} for s in (0, 1)]
    tta = gpu_check.tta_summary(settings, runs)
    assert tta["reached"] is True and tta["mean_test_accuracy"] == 0.95
    assert tta["schedule"] == dataclasses.asdict(settings.tta) and tta["schedule"]["batch_size"] == 512
    doc = {"tiny": False, "provenance": {"device_name": "NVIDIA H200"}, "throughput": [], "time_to_accuracy": tta,
           "paper_study": gpu_check.paper_study_estimate([]), "skipped": [], "errors": []}
    assert gpu_check.summary_lines(doc) == [
        "check on NVIDIA H200",
        "  time to accuracy: lrnet_paper mean test 95.00% over 2 of 2 seeds, 30.0 s of training per seed (reached 95.0%)"]
    assert gpu_check.summary_lines({**doc, "tiny": True})[0] == "TINY (numbers mean nothing) check on NVIDIA H200"


def test_a_failure_is_one_line_even_without_a_message():
    assert gpu_check._failure("throughput vgg batch 128", MemoryError()) == "throughput vgg batch 128: MemoryError"
    assert gpu_check._failure("x", ValueError("  first\nsecond ")) == "x: ValueError: first"


def test_the_schedule_options_reach_the_time_to_accuracy_runs_and_a_bad_augmentation_is_one_line(tmp_path, monkeypatch, capsys):
    from study.cli import main

    seen = []
    _fake_measurements(monkeypatch, [0.0])
    monkeypatch.setattr(gpu_check, "tta_seed", lambda settings, device, data_root, seed: seen.append(settings.tta) or {
        "model": "lrnet_paper", "seed": seed, "test_accuracy": 0.9, "train_seconds": 1.0, "epochs": 3})
    assert main(["gpu", "--tiny", "--out", str(tmp_path), "--epochs", "3", "--augment", "flip:h+crop:2", "--seeds", "2"]) == 0
    assert [(c.epochs, c.augment) for c in seen] == [(3, "flip:h+crop:2")] * 2
    [saved] = tmp_path.glob("gpu-check-*.json")
    assert json.loads(saved.read_text())["tiny"] is True  # a rehearsal with other options is still a rehearsal
    assert main(["gpu", "--tiny", "--out", str(tmp_path), "--augment", "rotate:5"]) == 1
    assert "--augment: bad augmentation 'rotate:5' in 'rotate:5'; allowed:" in capsys.readouterr().err
    assert len(seen) == 2  # refused before anything was measured
