"""Table II's measurement protocol: every model's cost measured the same way, apart from its training.

A trial's own throughput depends on the study's batch and precision, on the other work in its
process, and on what ran before it. Table II does not use it. Instead, each model of a study that
trained the paper's baselines is profiled with `study.measure.profile_model` (what `python -m study
profile MODEL --json` prints) under the same settings for every model:

- the same batch, warm-up and repeats, with the median and the spread of the repeats;
- in two settings: `stock` (fp32 eager, the architecture alone) and `fast` (the kit's fastest
  correct setting for the device, the engineering);
- each model in a fresh process, so its peak memory is its own and not the largest model's before it.

The rows go to `runs/<study>/costs.jsonl`, one per model × setting. A re-run measures only what is
missing there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from study.errors import KitError
from study.results import append_row, load_rows

SETTINGS = ("stock", "fast")


def costs_path(run_dir: str | os.PathLike, study: str) -> Path:
    """Where a study's cost measurements live."""
    return Path(run_dir) / study / "costs.jsonl"


def measure(models: list[str], path: Path, *, batch: int, device: str = "cpu", repeats: int = 5,
            settings: tuple[str, ...] = SETTINGS) -> int:
    """Profile each model in each setting (one fresh process each) unless `path` has it; returns how many ran."""
    have = {(r["model"], r["setting"], r["batch_asked"], r["device"]) for r in load_rows(path)}
    ran = 0
    for model in models:
        for setting in settings:
            if (model, setting, batch, device) in have:
                continue
            row = profile_in_process(model, setting, batch=batch, device=device, repeats=repeats)
            append_row(path, row)
            ran += 1
    return ran


def profile_in_process(model: str, setting: str, *, batch: int, device: str, repeats: int) -> dict[str, Any]:
    """`python -m study profile MODEL --json` in a fresh process: the row Table II shows for it."""
    cmd = [sys.executable, "-m", "study", "profile", model, "--json", "--batch", str(batch), "--device", device,
           "--repeats", str(repeats), *(["--fast"] if setting == "fast" else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise KitError(f"measuring the cost of {model} ({setting}) failed: {last}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"model": model, "setting": setting, "batch_asked": batch, "device": device, "params": result["params"],
            "flops": result["flops"], "batch": result["train"]["batch"],
            "train_img_per_s": result["train_img_per_s"], "train_spread_pct": result["train"].get("spread_pct"),
            "infer_img_per_s": result["infer_img_per_s"], "infer_spread_pct": result["inference"].get("spread_pct"),
            "peak_mem_mb": result["peak_mem_mb"], "precision": result["setting"]["precision"],
            "device_name": result["provenance"]["device_name"], "threads": result["provenance"]["threads"],
            "torch_version": result["provenance"]["torch_version"], "command": " ".join(cmd[1:])}
