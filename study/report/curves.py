"""Training curves: per-epoch history CSVs of the main runs, averaged over seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CURVE_COLUMNS = ("val_acc", "train_loss")


def history_file(history_path, run_dir: Path) -> Path | None:
    """The history CSV a row points to (absolute, or relative to the study's run directory)."""
    if history_path is None or pd.isna(history_path) or not str(history_path).strip():
        return None
    path = Path(str(history_path))
    return path if path.is_absolute() else run_dir / path


def load_histories(rows: pd.DataFrame, run_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Every readable history of `rows` stacked (model, dataset, seed, epoch, ...), and the unreadable ones."""
    frames, missing = [], []
    for row in rows[["model", "dataset", "seed", "history_path"]].itertuples(index=False):
        path = history_file(row.history_path, run_dir)
        label = f"{row.model} / {row.dataset} / seed {row.seed}"
        if path is None:
            missing.append(f"{label}: no history recorded")
            continue
        if not path.exists():
            missing.append(f"{label}: {row.history_path} missing")
            continue
        try:
            history = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            missing.append(f"{label}: {path.name} unreadable ({type(err).__name__})")
            continue
        if "epoch" not in history.columns:
            missing.append(f"{label}: {path.name} has no epoch column")
            continue
        frames.append(history.assign(model=row.model, dataset=row.dataset, seed=row.seed))
    columns = ["model", "dataset", "seed", "epoch", *CURVE_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns), missing
    stacked = pd.concat(frames, ignore_index=True)
    for col in CURVE_COLUMNS:
        if col not in stacked.columns:
            stacked[col] = pd.NA
    return stacked[columns], missing


def mean_curves(histories: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and seed count per model, dataset and epoch (runs stopped early drop out of later epochs)."""
    numeric = histories.assign(**{c: pd.to_numeric(histories[c], errors="coerce") for c in CURVE_COLUMNS})
    grouped = numeric.groupby(["model", "dataset", "epoch"], sort=True)
    out = grouped.size().rename("n").to_frame()
    for col in CURVE_COLUMNS:
        out[f"{col}_mean"] = grouped[col].mean()
        out[f"{col}_sd"] = grouped[col].std(ddof=1)
    return out.reset_index()
