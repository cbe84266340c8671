"""`python -m study plan` (= `study run --dry-run`): the cells a run would train, their cost, what is done,
the estimated time of the rest, and for searches the share of sampled specs the bands reject. Nothing trains."""

from __future__ import annotations

import argparse
import json
import sys

from study.commands.selection import (
    add_plan_arguments,
    add_selection_arguments,
    device,
    parse_seeds,
)
from study.errors import KitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study plan` (its study selection options are `study run`'s: `study.commands.selection`)."""
    add_selection_arguments(parser)
    add_plan_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the plan of the selected studies."""
    from study import cells, plan, search
    from study.overrides import parse_overrides
    from study.profiles import get_profile

    get_profile(args.profile)
    if args.samples < 0:
        raise KitError("--samples must be ≥ 0")
    specs = plan.select_studies(args.only, args.all, parse_overrides(args.overrides))
    device_name = device(args.device)
    plans = []
    for spec in specs:
        search.check_profile(spec, args.profile)
        seeds, _ = parse_seeds(args.seeds, tuple(range(spec.profiles[args.profile].seeds)))
        ctx = cells.Context(spec, args.profile, args.runs, device_name, seeds, commit="plan")
        plans.append(plan.study_plan(ctx, samples=args.samples, profile=not args.no_profiling))
    if args.json:
        print(json.dumps(plan.as_json(plans), indent=2))
    else:
        sys.stdout.write(format_plans(plans))
    return 0


def _count(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value:,}"


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _seeds(seeds: list[int]) -> str:
    return ",".join(map(str, seeds)) or "-"


def format_plans(plans) -> str:
    """The human-readable plan: one table per study, one line per variant × dataset with its seeds."""
    lines = []
    for p in plans:
        lines.append(f"study {p.study} ({p.kind}, profile {p.profile}): "
                     + (f"{p.trials_done}/{p.trials} trials done" if p.by_trials
                        else f"{len(p.cells) - p.missing}/{len(p.cells)} cells done")
                     + f", ~{_duration(p.remaining_s)} left" * bool(p.missing))
        for label, count in p.stale.items():  # first: what an edit of the study file made stale
            lines.append(f"  ! {label}: {count} stale cell{'s' if count != 1 else ''}: its rows trained another network or "
                         "training config than the study file says now; run trains them again (the old rows are kept, "
                         "superseded)")
        if p.by_trials:
            lines += _search_lines(p)
        else:
            lines += _grid_lines(p)
        if sum(p.tuning.values()):
            lines.append(f"  + first {sum(p.tuning.values())} tuning runs ({', '.join(f'{v} {n}' for v, n in p.tuning.items() if n)}), "
                         "each costing about one cell of its variant (counted in the time left)")
        lines.append("")
    total = sum(p.remaining_s for p in plans)
    missing = sum(p.missing for p in plans)
    lines.append(f"{missing} cells/trials to run in {len(plans)} studies, ~{_duration(total)} in one process "
                 "(workers divide it); nothing was trained" if missing else "every cell is done; nothing to run")
    return "\n".join(lines) + "\n"


def _grid_lines(p) -> list[str]:
    header = f"  {'variant':<24} {'dataset':<14} {'params':>8} {'FLOPs':>8}  {'done seeds':<12} {'missing seeds':<14} per cell"
    out = [header]
    groups: dict[tuple[str, str, str], list] = {}
    for c in p.cells:
        groups.setdefault((c.rung, c.variant, c.dataset), []).append(c)
    rungs = p.rungs
    for (rung, variant, dataset), cells in groups.items():
        if rung and rung in rungs:
            entry = rungs.pop(rung)
            out.append(f"  rung {rung}: {entry['cells'] - entry['missing']}/{entry['cells']} cells done"
                       + f", ~{_duration(entry['remaining_s'])} left" * bool(entry["missing"]))
        done = [c.seed for c in cells if c.done]
        missing = [c.seed for c in cells if not c.done]
        seconds, source = p.seconds.get(cells[0].estimate_key, (0.0, ""))
        estimate = f"{_duration(seconds)} ({source})" if missing else ""
        levels = f" ×{len(cells[0].levels)} levels" if len(cells[0].levels) > 1 else ""
        out.append(f"  {variant[:24]:<24} {dataset[:14]:<14} {_count(cells[0].params):>8} {_count(cells[0].flops):>8}  "
                   f"{_seeds(done):<12} {_seeds(missing):<14} {estimate}{levels}")
    return out


def _search_lines(p) -> list[str]:
    out = []
    if p.band_samples:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(p.band_reasons.items()))
        out.append(f"  FLOPs/params bands reject {p.band_rejected}/{p.band_samples} "
                   f"({100 * p.band_rejected / p.band_samples:.0f} %) of specs drawn uniformly from the space"
                   + (f" ({why})" if why else ""))
    if p.missing:
        seconds, source = p.seconds.get("trial", (0.0, ""))
        out.append(f"  {p.missing} trials to run, {_duration(seconds)} per trained trial ({source})")
    return out
