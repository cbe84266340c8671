"""Report figures: matplotlib/seaborn plots rendered to SVG bytes (Agg backend, no display needed).

Colours are fixed across the report: LR-Net and every axis's reference (the paper configuration)
are vermillion; other models take the remaining colour-blind-safe colours in a stable order.
"""

from __future__ import annotations

import functools
import io
import math
import warnings

import matplotlib

matplotlib.use("Agg")  # headless: the report runs in CI and over ssh

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from study import stats  # noqa: E402
from study.report.curves import METRIC_NAMES, MIN_POINTS, drawn_metrics  # noqa: E402
from study.report.tables import (  # noqa: E402
    LRNET,
    dataset_order,
    degradation_order,
    model_order,
    table_one_axes,
)

HIGHLIGHT = "#d55e00"
OTHER = "#0173b2"
#: Colour-blind-safe colours for the other models, without the oranges that read as the highlight.
_COLOURS = ["#0173b2", "#029e73", "#cc78bc", "#56b4e9", "#ca9161", "#949494", "#ece133", "#fbafe4"]
#: Text renders as paths, so the SVG looks the same everywhere and carries no text to inject.
_RC = {"svg.fonttype": "path", "font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
       "axes.spines.right": False, "svg.hashsalt": "study-report"}


def _styled(draw):
    """Draw under the report's matplotlib style (fonts and spines are read when artists are made)."""

    @functools.wraps(draw)
    def styled(*args, **kwargs):
        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)

    return styled


def model_palette(models) -> dict[str, str]:
    """A colour per model: LR-Net highlighted, the rest in a stable order."""
    others = [m for m in model_order(models) if m != LRNET]
    palette = {m: _COLOURS[i % len(_COLOURS)] for i, m in enumerate(others)}
    palette[LRNET] = HIGHLIGHT
    return palette


def curve_palette(names, highlighted: set[str]) -> dict[str, str]:
    """A colour per curve: the reference (or LR-Net) highlighted, the rest in a stable order."""
    ordered = model_order(names)
    others = [n for n in ordered if n not in highlighted]
    palette = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(others)}
    palette.update({n: HIGHLIGHT for n in ordered if n in highlighted})
    return palette


def to_svg(fig: Figure) -> bytes:
    """The figure as standalone SVG bytes (and the figure released)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _panels(n: int, width: float = 4.2, height: float = 3.4, max_columns: int = 3) -> tuple[Figure, list]:
    """A figure with n panels wrapped into rows of at most `max_columns`."""
    columns = min(n, max_columns)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _ci_errorbar(ax, x: float, values: np.ndarray, colour: str) -> None:
    """Mean with its 95% t-interval as an error bar."""
    mean, low, high, _ = stats.mean_ci(values)
    if math.isnan(mean):
        return
    low, high, _ = stats.clip_interval(low, high)  # accuracy points: the bar never leaves [0, 100]
    yerr = None if math.isnan(low) else [[mean - low], [high - mean]]
    ax.errorbar([x], [mean], yerr=yerr, fmt="o", color=colour, markersize=6, capsize=4, lw=1.6, zorder=3)


@_styled
def ablation_figure(points: pd.DataFrame, axis: str, xlabel: str | None = None) -> Figure:
    """Accuracy per variant of one axis (seeds as dots, mean ± 95% CI), one panel per dataset/degradation."""
    points = points.assign(panel=_panel_names(points))
    panels = list(dict.fromkeys(points["panel"]))
    fig, axes = _panels(len(panels))
    variants = list(dict.fromkeys(points["variant"].astype(str)))
    reference = set(points.loc[points["is_reference"], "variant"].astype(str))
    colours = {v: HIGHLIGHT if v in reference else OTHER for v in variants}
    for ax, panel in zip(axes, panels, strict=True):
        data = points[points["panel"] == panel].assign(variant=lambda d: d["variant"].astype(str))
        sns.stripplot(data=data, x="variant", y="value", hue="variant", order=variants, palette=colours,
                      ax=ax, size=3.5, alpha=0.45, jitter=0.15, legend=False)
        for i, variant in enumerate(variants):
            _ci_errorbar(ax, i, data.loc[data["variant"] == variant, "value"].to_numpy(), colours[variant])
        ref_values = data.loc[data["variant"].isin(reference), "value"]
        if len(ref_values):
            ax.axhline(ref_values.mean(), color=HIGHLIGHT, lw=0.8, ls="--", zorder=1)
        ax.set_title(panel)
        ax.set_xlabel(xlabel or f"{axis} variant (reference in vermillion)")
        ax.set_ylabel("test accuracy (%)")
        _rotate_if_crowded(ax, variants)
    return fig


def _panel_names(points: pd.DataFrame) -> pd.Series:
    """Panel titles: the dataset, plus the degradation when it is not clean."""
    degraded = points["degradation"].fillna("none") != "none"
    return points["dataset"].astype(str).where(~degraded, points["dataset"].astype(str) + " · " +
                                               points["degradation"].astype(str))


def _rotate_if_crowded(ax, labels) -> None:
    if len(labels) > 4 or max((len(str(v)) for v in labels), default=0) > 10:
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")


@_styled
def curves_figure(curves: pd.DataFrame, dataset: str, palette: dict[str, str]) -> Figure:
    """Validation accuracy and training loss for one dataset, mean ± 1 SD over seeds, against steps (or epochs).

    `curves` is `curves.mean_curves` output. A curve with fewer than `curves.MIN_POINTS` values of a metric is
    left out of that metric's panel, and a panel without any curve is not drawn (e.g. validation logged only
    at the end of a one-epoch run).
    """
    data = curves[curves["dataset"] == dataset]
    x_name = "optimizer step" if len(data) and data["x_name"].iloc[0] == "step" else "epoch"
    metrics = drawn_metrics(curves, dataset)
    fig, axes = _panels(max(len(metrics), 1), width=5.2, height=3.4)
    for ax, col in zip(axes, metrics, strict=False):
        for name in model_order(data["curve"]):
            points = data[data["curve"] == name].sort_values("x").dropna(subset=[f"{col}_mean"])
            if len(points) < MIN_POINTS:
                continue
            colour, width = palette.get(name, OTHER), 1.6 if palette.get(name) == HIGHLIGHT else 1.1
            mean, sd = points[f"{col}_mean"].astype(float), points[f"{col}_sd"].astype(float).fillna(0)
            scale = 100.0 if col == "val_acc" and mean.max() <= 1.0 else 1.0
            ax.plot(points["x"], mean * scale, color=colour, lw=width, marker="o" if len(points) < 12 else None,
                    ms=3, label=f"{name} (n={int(points['n'].max())})")
            ax.fill_between(points["x"], (mean - sd) * scale, (mean + sd) * scale, color=colour, alpha=0.18, lw=0)
        unit = " (%)" if col == "val_acc" else ""
        ax.set(title=f"{dataset}: {METRIC_NAMES[col]}", xlabel=x_name, ylabel=METRIC_NAMES[col] + unit)
        ax.legend(fontsize=7, frameon=False)
    return fig


@_styled
def pareto_figure(points: pd.DataFrame, palette: dict[str, str]) -> Figure:
    """Accuracy vs FLOPs per dataset, the Pareto front drawn as a step line and its points named."""
    datasets = dataset_order(points["dataset"])
    fig, axes = _panels(len(datasets), width=4.6, height=3.6)
    for ax, dataset in zip(axes, datasets, strict=True):
        data = points[points["dataset"] == dataset]
        named = data["axis"].isin(table_one_axes(points))  # Table I's models in their colours, the rest grey
        colours = [palette.get(m, OTHER) if n else "#9a9a9a" for m, n in zip(data["model"], named, strict=True)]
        ax.scatter(data["flops"] / 1e6, data["accuracy"], c=colours, s=18, alpha=0.75, lw=0, zorder=2)
        front = data[data["on_front"]].sort_values("flops")
        ax.step(front["flops"] / 1e6, front["accuracy"], where="post", color=HIGHLIGHT, lw=1.2, zorder=3,
                label="Pareto front")
        ax.scatter(front["flops"] / 1e6, front["accuracy"], facecolors="none", edgecolors=HIGHLIGHT, s=46,
                   lw=1.2, zorder=4)
        for row in _labelled(front, table_one_axes(points)).itertuples():
            ax.annotate(str(row.network), (row.flops / 1e6, row.accuracy), fontsize=7, xytext=(4, -10),
                        textcoords="offset points")
        if data["flops"].min() > 0 and data["flops"].max() / data["flops"].min() > 20:
            ax.set_xscale("log")
        for model in model_order(data.loc[named, "model"]):
            ax.scatter([], [], color=palette.get(model, OTHER), s=18, label=model)
        if (~named).any():
            ax.scatter([], [], color="#9a9a9a", s=18, label="ablation / search variants")
        ax.set(title=dataset, xlabel="MFLOPs per image (1 multiply-add = 1 FLOP)", ylabel="test accuracy (%)")
        ax.legend(fontsize=7, frameon=False, loc="best")
    return fig


def _kind(degradation: str) -> str:
    """The degradation without its levels ("blur:1.0+noise:0.2" → "blur+noise"), "none" for clean."""
    return "+".join(part.partition(":")[0] for part in str(degradation).split("+"))


def _labelled(front: pd.DataFrame, named_axes: set[str]) -> pd.DataFrame:
    """Front points worth naming on the plot: the Table I models, the cheapest and the most accurate.

    Naming every point of a 1,000-trial front makes an unreadable smear; the table below names them all.
    """
    keep = front["axis"].isin(named_axes) | (front.index == front["flops"].idxmin()) | (
        front.index == front["accuracy"].idxmax())
    return front[keep]


@_styled
def robustness_figure(robust: pd.DataFrame, palette: dict[str, str]) -> Figure:
    """Accuracy vs degradation per model (mean ± 95% CI), one panel per dataset.

    Each kind of degradation is its own line starting from clean data, so levels of one kind are
    joined but blur is never joined to noise.
    """
    datasets = dataset_order(robust["dataset"])
    levels = degradation_order(robust["degradation"])
    kinds = list(dict.fromkeys(_kind(d) for d in levels if d != "none"))
    models = model_order(robust["model"])
    fig, axes = _panels(len(datasets), width=max(4.8, 0.9 * len(levels) + 2), height=3.6)
    offsets = np.linspace(-0.12, 0.12, len(models)) if len(models) > 1 else [0.0]
    for ax, dataset in zip(axes, datasets, strict=True):
        data = robust[robust["dataset"] == dataset]
        for offset, model in zip(offsets, models, strict=True):
            curve = data[data["model"] == model].set_index("degradation")
            colour, width = palette.get(model, OTHER), 1.6 if model == LRNET else 1.1
            for kind in kinds:
                line = [d for d in levels if d in curve.index and (d == "none" or _kind(d) == kind)]
                x = [levels.index(d) + offset for d in line]
                ax.plot(x, curve.loc[line, "mean"], color=colour, lw=width, alpha=0.9)
            x = [levels.index(d) + offset for d in curve.index]
            low = (curve["mean"] - curve["ci_low"]).fillna(0).to_numpy(dtype=float)
            high = (curve["ci_high"] - curve["mean"]).fillna(0).to_numpy(dtype=float)
            ax.errorbar(x, curve["mean"].to_numpy(dtype=float), yerr=[low, high], fmt="o", ms=4, capsize=3,
                        color=colour, lw=width, label=model)
        ax.set_xticks(range(len(levels)), levels)
        _rotate_if_crowded(ax, levels)
        ax.set(title=dataset, xlabel="degradation (lines join levels of one kind to clean data)",
               ylabel="test accuracy (%)")
    axes[0].legend(fontsize=7, frameon=False)
    return fig


def optuna_figures(study, params: list[str], importances: bool = True) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """Optimisation history, importances (unless `importances` is False) and parallel coordinates over `params`
    (and Optuna's Pareto front when multi-objective) as (name, title, svg); plus a note per plot not drawn."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    multi = len(study.directions) > 1
    target = {"target": (lambda t: t.values[0]), "target_name": "accuracy"} if multi else {}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    plots = [("optuna_history", "Optimisation history", lambda: ovm.plot_optimization_history(study, **target))]
    notes = []
    if len(complete) >= 2 and params:
        if importances:
            plots.append(("optuna_importances", "Parameter importances (PED-ANOVA) over the searched parameters",
                          lambda: ovm.plot_param_importances(study, params=params, **target)))
        plots.append(("optuna_parallel", "Parallel coordinates of the searched parameters",
                      lambda: ovm.plot_parallel_coordinate(study, params=params, **target)))
    else:
        notes.append(f"Parameter importances and parallel coordinates need at least 2 completed trials; "
                     f"the study has {len(complete)}.")
    if multi:
        plots.append(("optuna_pareto", "Optuna's Pareto front", lambda: ovm.plot_pareto_front(study)))
    figures = []
    for name, title, draw in plots:
        try:
            with warnings.catch_warnings(), matplotlib.rc_context(_RC):
                warnings.simplefilter("ignore")  # optuna marks these plots experimental on every call
                ax = draw()
            fig = np.ravel(ax)[0].figure
            fig.set_size_inches(7.5, 4.2)
            figures.append((name, title, to_svg(fig)))
        except Exception as err:  # noqa: BLE001  (a failed plot is a note in the report, not a crash)
            plt.close("all")
            notes.append(f"{title} could not be drawn: {type(err).__name__}: {err}".splitlines()[0])
    return figures, notes


@_styled
def transfer_figure(contrasts: pd.DataFrame, variant: str, margin: float) -> Figure:
    """Δ of one contrast (variant − reference) with its 95 % CI at each rung, against the rung's training images
    on a log axis: a flat line is a verdict that holds as the budget grows, a slope one that depends on it."""
    rows = contrasts[contrasts["variant"].astype(str) == variant].sort_values("budget_images")
    fig, ax = plt.subplots(figsize=(4.6, 3.2), layout="constrained")
    x = rows["budget_images"].astype(float).to_numpy()
    delta = rows["diff"].astype(float).to_numpy()
    low, high = rows["ci_low"].astype(float).to_numpy(), rows["ci_high"].astype(float).to_numpy()
    ax.axhspan(-margin, margin, color="#949494", alpha=0.15, lw=0, label=f"±{margin:g} pts (equivalence margin)")
    ax.axhline(0, color="#949494", lw=0.8)
    ax.errorbar(x, delta, yerr=[delta - low, high - delta], fmt="o-", color=OTHER, capsize=3, label="Δ, 95 % CI")
    ax.set_xscale("log", base=2)
    labels = [str(r) for r in rows["rung"]]
    suffixes = {label.rpartition(", ")[2] for label in labels}
    if len(suffixes) == 1:  # one width on every rung: the budget alone tells them apart
        labels = [label.rpartition(", ")[0] or label for label in labels]
    ax.set_xticks(x, labels)
    ax.minorticks_off()
    ax.set_xlabel("rung (training budget, log scale)")
    ax.set_ylabel(f"Δ {variant[:28]} − reference (pts)")
    ax.legend(loc="best", fontsize=7, frameon=False)
    return fig
