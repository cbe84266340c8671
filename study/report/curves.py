"""Training curves: the history CSVs of a study's runs, averaged over seeds per model or variant.

A history has a row every N optimizer steps and at each epoch's end (`step`, fractional `epoch`,
`epoch_end`, `train_loss`, `train_acc`, `val_loss`, `val_acc`, `lr`, `img_per_s`), so even a
one-epoch run draws a curve. Older histories have one row per epoch and no `step` column: a study
with any of those is drawn against epochs instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CURVE_COLUMNS = ("val_acc", "train_loss")
#: Fewest points a curve needs before it is worth drawing; fewer and the report leaves the section out.
MIN_POINTS = 3


def history_file(history_path, run_dir: Path) -> Path | None:
    """The history CSV a row points to (absolute, or relative to the study's run directory)."""
    if history_path is None or pd.isna(history_path) or not str(history_path).strip():
        return None
    path = Path(str(history_path))
    return path if path.is_absolute() else run_dir / path


def _read(path: Path | None, label: str, history_path) -> tuple[pd.DataFrame | None, str | None]:
    """One history, or why it could not be read."""
    if path is None:
        return None, f"{label}: no history recorded"
    if not path.exists():
        return None, f"{label}: {history_path} missing"
    try:
        history = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        return None, f"{label}: {path.name} unreadable ({type(err).__name__})"
    if "epoch" not in history.columns and "step" not in history.columns:
        return None, f"{label}: {path.name} has neither a step nor an epoch column"
    return history, None


def load_histories(rows: pd.DataFrame, run_dir: Path, label: str = "model") -> tuple[pd.DataFrame, list[str]]:
    """Every readable history of `rows` stacked (curve, dataset, seed, step, epoch, metrics), and the unreadable ones.

    `label` is the row column that names a curve ("model" for Table I studies, "variant" for ablations).
    """
    frames, missing = [], []
    for row in rows[[label, "dataset", "seed", "history_path"]].itertuples(index=False):
        name = getattr(row, label)
        history, problem = _read(history_file(row.history_path, run_dir), f"{name} / {row.dataset} / seed {row.seed}",
                                 row.history_path)
        if problem:
            missing.append(problem)
            continue
        frames.append(history.assign(curve=str(name), dataset=row.dataset, seed=row.seed))
    columns = ["curve", "dataset", "seed", "step", "epoch", *CURVE_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns), missing
    stacked = pd.concat(frames, ignore_index=True)
    for col in ("step", "epoch", *CURVE_COLUMNS):
        if col not in stacked.columns:
            stacked[col] = pd.NA
    return stacked[columns], missing


def x_axis(histories: pd.DataFrame) -> str:
    """"step" when every history has one (the per-N-steps log), else "epoch" (older, per-epoch histories)."""
    steps = pd.to_numeric(histories["step"], errors="coerce")
    return "step" if len(histories) and steps.notna().all() else "epoch"


def mean_curves(histories: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and seed count per curve, dataset and x (`x_axis`); runs stopped early drop out of later points.

    Columns: curve, dataset, x (its name in `x_name`), n, and `<metric>_mean` / `<metric>_sd` per metric.
    """
    x = x_axis(histories)
    numeric = histories.assign(**{c: pd.to_numeric(histories[c], errors="coerce")
                                  for c in (x, *CURVE_COLUMNS)}).dropna(subset=[x])
    grouped = numeric.groupby(["curve", "dataset", x], sort=True)
    out = grouped.size().rename("n").to_frame()
    for col in CURVE_COLUMNS:
        out[f"{col}_mean"] = grouped[col].mean()
        out[f"{col}_sd"] = grouped[col].std(ddof=1)
    return out.reset_index().rename(columns={x: "x"}).assign(x_name=x)


def drawable(curves: pd.DataFrame) -> pd.DataFrame:
    """The curves worth drawing: per curve, dataset and metric, at least `MIN_POINTS` points with a value."""
    keep = pd.Series(False, index=curves.index)
    for col in CURVE_COLUMNS:
        has = curves[f"{col}_mean"].notna()
        counts = has.groupby([curves["curve"], curves["dataset"]]).transform("sum")
        keep |= has & (counts >= MIN_POINTS)
    return curves[keep]


#: How each metric of a curve reads in titles and captions.
METRIC_NAMES = {"val_acc": "validation accuracy", "train_loss": "training loss"}


def drawn_metrics(curves: pd.DataFrame, dataset: str) -> list[str]:
    """The metrics of a dataset with at least one curve of `MIN_POINTS` points: the panels its figure has."""
    data = curves[curves["dataset"] == dataset]
    return [col for col in CURVE_COLUMNS
            if (data[f"{col}_mean"].notna().groupby(data["curve"]).sum() >= MIN_POINTS).any()]
