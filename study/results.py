"""One tidy results table per study: one row per (variant, dataset, degradation, protocol, fold, seed, profile).

Rows are JSON lines appended to `<run_dir>/<study>/results.jsonl` with a single `write` on a file
opened with O_APPEND, then fsync'd: a row is either wholly there or (after a kill mid-write) a torn
last line that `load_rows` skips. `ResultsTable` owns everything about one table: what is finished,
the lock under which a cell is claimed and written, rows imported from shared storage, and rows of
identical runs reused from the other tables of a run directory. `SCHEMA` is the row type: every
writer's row is checked against it before it is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from study.files import locked

_NUM = (int, float)


@dataclass(frozen=True)
class Column:
    """One column of the row type: its name, the JSON types it may hold (None/NaN always allowed) and
    whether every finished ("ok") row must carry it."""

    name: str
    types: tuple[type, ...]
    doc: str
    required: bool = True


SCHEMA: tuple[Column, ...] = (
    Column("study", (str,), "study name (the ablations/<name>.toml stem)"),
    Column("axis", (str,), 'ablation axis of the row ("kernels", "links", "paper", "search", …)'),
    Column("variant", (str,), 'label of the cell on that axis ("{3,5,7}", "dense", "lrnet_paper", …)'),
    Column("is_reference", (bool,), "True for the paper configuration the axis compares against"),
    Column("model", (str,), "registry name or network name trained"),
    Column("spec_hash", (str,), "sha256[:12] of the resolved network spec (registry name for baselines)"),
    Column("dataset", (str,), 'registry name ("fashion-mnist", …)'),
    Column("degradation", (str,), '"none" or e.g. "blur:1.0+noise:0.2"'),
    Column("protocol", (str,), '"val-split" (val carved from train) or "kfold-test:K" (test split only)'),
    Column("fold", (int,), "test fold of a k-fold protocol, else 0"),
    Column("seed", (int,), "seed of init, split, order and degradations"),
    Column("profile", (str,), '"quick" | "paper" | custom'),
    Column("status", (str,), '"ok" | "diverged" | "pruned" | "failed"'),
    Column("val_accuracy", _NUM, "fraction in [0, 1], best epoch"),
    Column("val_loss", _NUM, "best epoch"),
    Column("test_accuracy", _NUM, "fraction in [0, 1]; evaluated once, on the best-val weights"),
    Column("test_loss", _NUM, "on the best-val weights"),
    Column("epochs", (int,), "epochs trained"),
    Column("best_epoch", (int,), "epoch whose weights were tested"),
    Column("params", (int,), "trainable parameters"),
    Column("flops", (int,), "fvcore count per image, one multiply-add = one FLOP"),
    Column("train_img_per_s", _NUM, "training throughput of the trial (its own batch and precision)"),
    Column("infer_img_per_s", _NUM, "test-loop throughput of the trial"),
    Column("peak_mem_mb", _NUM, "peak memory of the process so far"),
    Column("wall_s", _NUM, "seconds the trial took"),
    Column("device", (str,), '"cpu" or "cuda:i"'),
    Column("precision", (str,), '"fp32" | "bf16" | "fp16"'),
    Column("torch_version", (str,), "torch.__version__"),
    Column("git_commit", (str,), "the kit's commit (-dirty when the tree had changes)"),
    Column("history_path", (str,), "history CSV (step, epoch, train_loss, val_acc, …), relative to the study folder"),
    Column("train_config", (str,), "the profile's generated description"),
    Column("proxy", (bool,), "True when the row is a proxy of the paper's protocol (narrow widths or subsets)"),
    Column("width_multiplier", _NUM, "the MK network's width multiplier (proxy width × capacity matching)"),
    Column("match", (str,), '"flops" / "params" when capacity-matched to the reference, else ""'),
    Column("raw_flops", (int,), "the variant's FLOPs before capacity matching"),
    Column("raw_params", (int,), "the variant's parameters before capacity matching"),
    Column("config", (str,), "the TrainConfig as JSON"),
    Column("stop_reason", (str,), "why training ended", required=False),
    Column("params_total", (int,), "parameters including frozen ones", required=False),
    Column("data_source", (str,), "where the data came from", required=False),
    Column("train_size", (int,), "training images", required=False),
    Column("val_size", (int,), "validation images", required=False),
    Column("test_size", (int,), "test images", required=False),
    Column("python", (str,), "Python version", required=False),
    Column("device_name", (str,), "CPU or GPU model", required=False),
    Column("threads", (int,), "torch CPU threads (exact accuracies depend on it)", required=False),
    Column("trial_number", (int,), "Optuna trial that wrote the row", required=False),
    Column("reused_from", (str,), "study whose identical run the row copies", required=False),
    Column("test_degraded_only", (bool,), "robustness: trained clean, tested at this degradation", required=False),
    Column("search_params", (str,), "search: the sampled parameters as JSON", required=False),
    Column("checkpoint", (str,), "best-validation weights, relative to the study folder", required=False),
    Column("rung", (str,), "the ladder rung of the row, as its scale (\"1,800 steps, width ×0.25\"); absent without a ladder",
           required=False),
    Column("scale", (str,), "where the row was measured: the profile's budget and width (\"450 steps, width ×0.25\")",
           required=False),
    Column("budget_images", (int,), "training images the budget allows (epoch cap × subset): a rung's size", required=False),
    Column("scale_width", _NUM, "the profile's (or rung's) proxy width, before capacity matching", required=False),
    Column("equivalence_margin", _NUM, "the study's equivalence margin in points (a report without study.json uses it)",
           required=False),
    Column("kind", (str,), "the study's kind (grid, robustness, search)", required=False),
    Column("torchvision_version", (str,), "torchvision.__version__", required=False),
    Column("optuna_version", (str,), "optuna's version", required=False),
    Column("numpy_version", (str,), "numpy's version", required=False),
    Column("fvcore_version", (str,), "fvcore's version (the FLOP counter)", required=False),
    Column("cuda_version", (str,), "CUDA of the torch build, on a GPU", required=False),
    Column("cudnn_version", (str,), "cuDNN, on a GPU", required=False),
    Column("git_diff_hash", (str,), "sha256[:12] of the uncommitted changes the row ran with (\"\" for none)",
           required=False),
    Column("flops_counter", (str,), '"fvcore", or "torch.utils.flop_counter" where fvcore failed on the model',
           required=False),
)
COLUMNS: tuple[str, ...] = tuple(c.name for c in SCHEMA if c.required)
_BY_NAME = {c.name: c for c in SCHEMA}

#: Columns that identify one run; a study skips rows whose key is already finished.
KEY: tuple[str, ...] = ("study", "axis", "variant", "dataset", "degradation", "protocol", "fold", "seed", "profile", "rung")


def row_key(row: Mapping[str, Any]) -> tuple:
    """The identity of a run, for skip-if-finished."""
    return tuple(str(row.get(k, "")) for k in KEY)


def results_path(run_dir: str | os.PathLike, study: str) -> Path:
    """Where a study's results table lives."""
    return Path(run_dir) / study / "results.jsonl"


def check_row(row: Mapping[str, Any]) -> None:
    """A row must fit `SCHEMA`: no unknown column, no value of the wrong type, and a finished ("ok")
    row carries every required column; a writer that breaks this fails here, not in the report."""
    where = f"result row of {row.get('study')}/{row.get('variant')}"
    unknown = sorted(set(row) - set(_BY_NAME))
    if unknown:
        raise ValueError(f"{where} has columns outside results.SCHEMA: {', '.join(unknown)}")
    if row.get("status") == "ok":
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"{where} lacks columns {', '.join(missing)}")
    for name, value in row.items():
        types = _BY_NAME[name].types
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"{where}: {name} = {value!r} is not {' or '.join(t.__name__ for t in types)}")


def append_row(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append one row atomically (single O_APPEND write + fsync), always on a line of its own: after a torn last
    line (a kill or a full disk mid-write) it starts a new one, so the torn line stays the only loss."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(dict(row), default=jsonable, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete row of a results file; a torn line (killed mid-write) is skipped (`torn_lines` counts them)."""
    return read_rows(path)[0]


def torn_lines(path: str | os.PathLike) -> int:
    """How many lines of a results file are not a complete row (each a write cut off; its cell trains again)."""
    return read_rows(path)[1]


def read_rows(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """(every complete row, how many torn lines were skipped), from one read of a results file."""
    path = Path(path)
    if not path.exists():
        return [], 0
    rows, torn = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            torn += 1
    return rows, torn


class ResultsTable:
    """One study's results file: what is finished, claiming and writing a cell under the table's lock,
    importing rows kept in shared storage, and reusing identical runs of sibling studies."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row."""
        return load_rows(self.path)

    def finished(self) -> dict[tuple, dict[str, Any]]:
        """Rows by key, failed ones left out (a failed cell is run again)."""
        return {row_key(r): r for r in self.rows() if r.get("status") != "failed"}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across every worker of this machine: check-then-write happens under it."""
        with locked(self.path):
            yield

    def write(self, row: Mapping[str, Any]) -> None:
        """Check a row against `SCHEMA` and append it."""
        check_row(row)
        append_row(self.path, row)

    def claim_and_write(self, rows: list[dict[str, Any]], taken_elsewhere=lambda key: False,
                        current=lambda row: True) -> bool:
        """Write a cell's rows unless the table (or, per `taken_elsewhere(key)`, another worker's storage)
        already has a `current` row of the cell; check and write happen under the lock. Returns whether written."""
        key = row_key(rows[0])
        with self.lock():
            finished = self.finished()
            if (key in finished and current(finished[key])) or taken_elsewhere(key):
                return False
            for row in rows:
                self.write(row)
        return True

    def import_rows(self, stored: Iterable[Mapping[str, Any]]) -> int:
        """Append the rows the table lacks (rows other machines ran); returns how many."""
        stored = list(stored)
        if not stored:
            return 0
        added = 0
        with self.lock():  # workers of one machine importing at once append a row once
            have = {row_key(r) for r in self.rows()}
            for row in stored:
                if row_key(row) not in have:
                    append_row(self.path, row)
                    have.add(row_key(row))
                    added += 1
        return added

    def reusable(self, spec_hash: str, config: str, base: Mapping[str, Any]) -> dict[str, Any] | None:
        """The "ok" row of an identical run (same network, config, data, seed and profile) in another
        study's table of the same run directory, re-keyed to `base`; e.g. the paper configuration."""
        same = ("dataset", "degradation", "protocol", "fold", "seed", "profile")
        for path in sorted(self.path.parent.parent.glob("*/results.jsonl")):
            if path == self.path:
                continue
            for row in load_rows(path):
                if (row.get("status") == "ok" and row.get("spec_hash") == spec_hash and row.get("config") == config
                        and row.get("test_degraded_only") is not True and all(row.get(k) == base[k] for k in same)):
                    history = path.parent / row.get("history_path", "")
                    kept = {k: v for k, v in row.items() if k in _BY_NAME}  # columns an older kit wrote are dropped
                    return {**kept, **base, "reused_from": row["study"],
                            "history_path": str(history.resolve()) if row.get("history_path") else ""}
        return None


def load_table(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Rows of one or more results files as a DataFrame with at least `COLUMNS`; later duplicates of a key win."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows = [r for p in paths for r in load_rows(p)]
    frame = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.NA
    if "rung" not in frame.columns:
        frame["rung"] = ""
    frame["rung"] = frame["rung"].fillna("")
    if len(frame):
        keys = frame[list(KEY)].astype(object).fillna("").astype(str).agg("|".join, axis=1)
        frame = frame[~keys.duplicated(keep="last")].reset_index(drop=True)
    return frame


def jsonable(value: Any) -> Any:
    """JSON form of what `json.dumps` cannot write (numpy scalars, paths, …)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
