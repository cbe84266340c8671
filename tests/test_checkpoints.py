"""Kept models: a tiny study's checkpoints reload with weights_only=True, rebuild from their description,
re-test to their rows' exact accuracies (`study test`), and `study prune` keeps each variant's best."""

from __future__ import annotations

import json
import math

import pytest
import torch

from study import checkpoints, results
from study.cli import main
from study.errors import KitError
from tests.helpers import write_tiny_dataset

ROBUST = """
[study]
axis = "robustness"
kind = "robustness"
base = "lrnet_paper"
datasets = ["fashion-mnist"]
degradations = ["none", "blur:1.0"]

[[variants]]
label = "paper"
reference = true
blocks = 1

[[variants]]
label = "k3 matched"
blocks = 1
block = { kernels = [3] }
match = "flops"

[profiles.quick]
seeds = 2
workers = 1
width = 0.25
train = { epochs = 1, train_subset = 0, val_subset = 0, batch_size = 32 }
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished robustness study (2 variants × 2 seeds × 2 levels) on tiny data; its runs folder."""
    root = tmp_path_factory.mktemp("kept")
    patch = pytest.MonkeyPatch()
    patch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(root / "data")))
    (root / "tinykeep.toml").write_text(ROBUST)
    assert main(["run", "--only", str(root / "tinykeep.toml"), "--runs", str(root / "runs"), "--no-report"]) == 0
    yield root / "runs"
    patch.undo()


def test_kept_checkpoints_load_weights_only_and_describe_their_network(tiny_run):
    rows = results.load_rows(results.results_path(tiny_run, "tinykeep"))
    assert len(rows) == 8 and all(r["status"] == "ok" and r["checkpoint"] for r in rows)
    for row in rows:
        weights = checkpoints.checkpoint_file(tiny_run, row)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        description = json.loads(weights.with_suffix(".json").read_text())
        assert description["spec_hash"] == row["spec_hash"] and description["network"] is not None
        model, module = checkpoints.load_kept(weights)  # a FLOP-matched proxy is in no registry: rebuilt from its spec
        assert model.digest == row["spec_hash"]
        assert all(torch.equal(module.state_dict()[k], v) for k, v in state.items())


def test_study_test_reproduces_every_rows_test_accuracy(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(tiny_run.parent / "data"))
    assert main(["test", "--runs", str(tiny_run), "--study", "tinykeep", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 8 and {r["degradation"] for r in lines} == {"none", "blur:1.0"}
    assert all(r["reproduced"] is True and r["test_accuracy"] == r["row_test_accuracy"] for r in lines)
    # a new degradation tests the clean rows' models only, and changes what they see
    assert main(["test", "--runs", str(tiny_run), "--study", "tinykeep", "--variant", "paper", "--seed", "0",
                 "--degrade", "noise:1.0", "--json"]) == 0
    (noisy,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert noisy["degradation"] == "noise:1.0" and noisy["reproduced"] is None and 0 <= noisy["test_accuracy"] <= 1


def test_retest_notices_weights_that_are_not_the_rows(tiny_run, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(tiny_run.parent / "data"))
    row = next(r for r in results.load_rows(results.results_path(tiny_run, "tinykeep")) if r["degradation"] == "none")
    weights = checkpoints.checkpoint_file(tiny_run, row)
    original = weights.read_bytes()
    state = torch.load(weights, weights_only=True)
    try:
        torch.save({k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in state.items()}, weights)
        # all-zero weights give equal logits, so a loss of exactly ln 10 whatever the data: the re-test read them
        # (accuracy would not tell: a tiny run that learned little can sit at chance, as zero weights do)
        zeroed = checkpoints.retest(tiny_run, row)
        assert zeroed["loss"] == pytest.approx(math.log(10), rel=1e-6) and zeroed["accuracy"] <= 0.5
        assert row["test_loss"] != pytest.approx(math.log(10), rel=1e-6)
    finally:
        weights.write_bytes(original)


def test_a_baseline_is_rebuilt_from_its_registry_name_and_a_wrong_digest_is_refused():
    model, module = checkpoints.rebuild({"model": "alexnet_scratch", "spec_hash": "alexnet_scratch", "network": None,
                                         "num_classes": 7})
    assert model.spec is None and module(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    with pytest.raises(KitError, match="digest"):
        checkpoints.rebuild({"model": "lrnet_paper", "spec_hash": "0123456789ab", "network": None})


def test_prune_keeps_each_variants_best_validation_checkpoint(tiny_run, tmp_path, capsys):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(tiny_run, runs)
    (runs / "tinykeep" / "checkpoints" / "stray.pt").write_bytes(b"")
    rows = [r for r in results.load_rows(results.results_path(runs, "tinykeep")) if r["degradation"] == "none"]
    best = {max(rows_of, key=lambda r: r["val_accuracy"])["checkpoint"]
            for rows_of in ([r for r in rows if r["variant"] == v] for v in ("paper", "k3 matched"))}
    assert main(["prune", "--runs", str(runs), "--study", "tinykeepx"]) == 1  # no rows: nothing is deleted
    assert main(["prune", "--runs", str(runs), "--study", "tinykeep", "--dry-run"]) == 0
    assert len(list((runs / "tinykeep" / "checkpoints").glob("*.pt"))) == 5
    assert main(["prune", "--runs", str(runs), "--study", "tinykeep"]) == 0
    left = {f"checkpoints/{p.name}" for p in (runs / "tinykeep" / "checkpoints").glob("*.pt")}
    assert left == best and all((runs / "tinykeep" / p).with_suffix(".json").exists() for p in left)
    assert "deleted 3 checkpoints" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["test", "--runs", str(runs), "--study", "tinykeep", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(r["pruned"] for r in records) == 4  # two clean rows and their degraded copies
    assert all(r["reproduced"] for r in records if not r["pruned"])


def test_a_reused_rows_checkpoint_is_the_one_its_training_study_kept(tmp_path):
    row = {"study": "kernels", "checkpoint": "checkpoints/a-s0.pt"}
    assert checkpoints.checkpoint_file(tmp_path, row) == tmp_path / "kernels" / "checkpoints" / "a-s0.pt"
    assert checkpoints.checkpoint_file(tmp_path, {**row, "reused_from": "links"}) == tmp_path / "links" / "checkpoints" / "a-s0.pt"
    assert checkpoints.checkpoint_file(tmp_path, {"study": "kernels", "checkpoint": None}) is None
    with pytest.raises(KitError, match="no network description"):
        (tmp_path / "w.pt").write_bytes(b"")
        checkpoints.load_kept(tmp_path / "w.pt")
