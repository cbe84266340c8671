"""One tidy results table per study: one row per (model/spec, dataset, degradation, protocol, seed).

Rows are JSON lines appended to `<run_dir>/<study>/results.jsonl` with a single `write` on a file
opened with O_APPEND, then fsync'd: a row is either wholly there or (after a kill mid-write) a torn
last line that `load_rows` skips. Re-running a study skips every key already finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns every row carries (more may be present). Report and statistics code relies on these.
COLUMNS: tuple[str, ...] = (
    "study",  # study name (the ablations/<name>.toml stem)
    "axis",  # ablation axis the row belongs to ("kernels", "links", "paper", "search", ...)
    "variant",  # human label of the cell on that axis ("{3,5,7}", "dense", "lrnet_paper", ...)
    "is_reference",  # True for the paper configuration the axis compares against
    "model",  # registry name or spec file of the network trained
    "spec_hash",  # sha256[:12] of the resolved network spec (same hash = same network)
    "dataset",  # registry name ("fashion-mnist", ...)
    "degradation",  # "none" or e.g. "blur:1.0+noise:0.2"
    "protocol",  # "val-split" (val carved from train, test once) or "kfold-test:K" (test split only)
    "fold",  # fold index for k-fold protocols, else 0
    "seed",
    "profile",  # "quick" | "paper" | custom; quick rows are CPU-budgeted and say so
    "status",  # "ok" | "diverged" | "pruned" | "failed"
    "val_accuracy",  # fraction in [0, 1]
    "val_loss",
    "test_accuracy",  # fraction in [0, 1]; evaluated once, on the best-val weights
    "test_loss",
    "epochs",
    "best_epoch",
    "params",  # trainable parameters
    "flops",  # fvcore count, one multiply-add = one FLOP, per image
    "train_img_per_s",
    "infer_img_per_s",
    "peak_mem_mb",
    "wall_s",
    "device",
    "precision",
    "torch_version",
    "git_commit",
    "history_path",  # per-epoch history CSV (epoch, train_loss, train_acc, val_loss, val_acc, lr, epoch_s, img_per_s)
    "train_config",  # the profile's generated description ("quick profile; PROXY; MK networks at width ×0.25; …")
    "proxy",  # True when the row is a proxy of the paper's protocol (narrow widths or subsets)
    "width_multiplier",  # the trained MK network's width multiplier (proxy width × capacity matching)
    "match",  # "flops" / "params" when the variant was capacity-matched to the reference, else ""
    "raw_flops",  # the variant's FLOPs before capacity matching (same as flops when unmatched)
    "raw_params",
)

#: Columns that identify one run; a study skips rows whose key is already finished.
KEY: tuple[str, ...] = ("study", "axis", "variant", "dataset", "degradation", "protocol", "fold", "seed", "profile")


def row_key(row: Mapping[str, Any]) -> tuple:
    """The identity of a run, for skip-if-finished."""
    return tuple(str(row.get(k, "")) for k in KEY)


def results_path(run_dir: str | os.PathLike, study: str) -> Path:
    """Where a study's results table lives."""
    return Path(run_dir) / study / "results.jsonl"


def check_row(row: Mapping[str, Any]) -> None:
    """A finished ("ok") row must carry every column of `COLUMNS`: a writer that forgets one fails here, not in the report."""
    if row.get("status") != "ok":
        return
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"result row of {row.get('study')}/{row.get('variant')} lacks columns {', '.join(missing)}")


def append_row(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append one row atomically (single O_APPEND write + fsync)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(dict(row), default=_jsonable, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete row of a results file; a torn last line (killed mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def load_table(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Rows of one or more results files as a DataFrame with at least `COLUMNS`; later duplicates of a key win."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows = [r for p in paths for r in load_rows(p)]
    frame = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.NA
    if len(frame):
        keys = frame[list(KEY)].astype(object).fillna("").astype(str).agg("|".join, axis=1)
        frame = frame[~keys.duplicated(keep="last")].reset_index(drop=True)
    return frame


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)
