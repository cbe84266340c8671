"""Optuna bookkeeping (sampler, journal storage, results table, reuse lookup) against a quick-profile trial."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from study import cells, objectives, search
from study.studies import load_study, study_path

CELLS = 24


def fake_train(model, task, *, cfg, seed, device, history_path, checkpoint_path, on_epoch):
    """A result row as `study.train.train` returns it, without training: what is left is bookkeeping."""
    on_epoch(1, {"val_acc": 0.5})
    return {"status": "ok", "stop_reason": "epoch cap (1)", "epochs": 1, "best_epoch": 1, "val_accuracy": 0.5, "val_loss": 1.0,
            "test_accuracy": 0.5, "test_loss": 1.0, "params": 1, "flops": 1, "train_img_per_s": 1.0, "infer_img_per_s": 1.0,
            "config": {}, "extra_tests": {}, "wall_s": 0.0, "model": "fake", "spec_hash": "fake", "dataset": task.dataset,
            "precision": "fp32", "device": "cpu", "torch_version": "fake", "peak_mem_mb": 0.0, "fold": 0, "seed": seed}


def test_optuna_bookkeeping_is_under_two_percent_of_a_quick_trial(benchmark, tmp_path, monkeypatch, fashion_root):
    spec = load_study(study_path("kernels"))
    # quick trial time: one real cell of the kernels study (the paper configuration) on real Fashion-MNIST
    ctx = cells.Context(dataclasses.replace(spec, variants=spec.variants[:1]), "quick", tmp_path / "real", seeds=(0,),
                         commit="bench")
    begin = time.perf_counter()
    search.run_worker(ctx)
    trial_s = time.perf_counter() - begin

    # bookkeeping: a study of CELLS cells whose training is free
    monkeypatch.setattr(objectives, "train", fake_train)
    seeds = tuple(range(CELLS // len(spec.variants)))

    def bookkeeping() -> float:
        runs = Path(tmp_path / f"fake{time.perf_counter_ns()}")
        fake = cells.Context(spec, "quick", runs, seeds=seeds, commit="bench")
        start = time.perf_counter()
        search.run_worker(fake)
        return (time.perf_counter() - start) / cells.expected_rows(fake)

    per_trial = benchmark.pedantic(bookkeeping, rounds=3, iterations=1)
    share = per_trial / trial_s
    benchmark.extra_info.update(quick_trial_s=round(trial_s, 2), bookkeeping_ms_per_trial=round(1000 * per_trial, 1),
                                share_pct=round(100 * share, 3))
    assert share < 0.02, f"Optuna bookkeeping {1000 * per_trial:.0f} ms per trial is {100 * share:.1f}% of a {trial_s:.1f} s quick trial"

