"""`python -m study run`: run the ablation studies of ablations/*.toml through Optuna, then the report.

This is what `nox -s ablations` calls. Finished rows are never retrained: a re-run of a finished
study returns in seconds, and an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from study.commands import plan as plan_command
from study.commands.selection import (
    add_plan_arguments,
    add_selection_arguments,
    device,
    parse_seeds,
)
from study.errors import ERROR_FILE, KitError
from study.kinds.registry import get_kind
from study.logs import study_log
from study.progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study run`."""
    add_selection_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the plan (= `study plan`: cells, params/FLOPs, done/missing, "
                        "estimated time, search band rejections) and train nothing")
    parser.add_argument("--storage", help="shared Optuna storage URL, e.g. postgresql://user@host/db (default: a journal file per study)")
    parser.add_argument("--workers", type=int, help="worker processes on this machine, each with cores/N threads (default: "
                        "the profile's; quick uses 2 single-thread workers, which train the small proxy ~1.4× faster than one)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="report directory (default reports/)")
    parser.add_argument("--mde-target", type=float, default=3.0, help="MDE in points that stops --seeds auto (default 3; 0 = off)")
    parser.add_argument("--ci-target", type=float, default=1.0, help="target CI half-width in points for --seeds auto (default 1.0)")
    parser.add_argument("--budget-min", type=float, help="stop *starting* new trials after this many minutes (0 = none; "
                        "default: the profile's guard); a running trial always finishes its budget")
    parser.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    parser.add_argument("--track", choices=["tensorboard"], help="also write each trial's epoch metrics live to "
                        "runs/<study>/tensorboard/<cell>/ (needs pip install 'lrnet-study-kit[tensorboard]')")
    add_plan_arguments(parser.add_argument_group("--dry-run options"))


def run(args: argparse.Namespace) -> int:
    """Validate every study first, then run them one after the other and write the report; exit code
    EXIT_INCOMPLETE when the time guard stopped the run with cells missing."""
    if args.dry_run:
        return plan_command.run(args)
    from study import cells, tracking
    from study.data import locate
    from study.errors import EXIT_INCOMPLETE
    from study.overrides import parse_overrides
    from study.plan import select_studies
    from study.profiles import get_profile
    from study.train import check_device

    profile = get_profile(args.profile)
    tracking.enable(args.track)  # a missing package is one line before any training
    overrides = parse_overrides(args.overrides)
    specs = select_studies(args.only, args.all, overrides)  # a bad spec (or --set) fails before any training
    for dataset in sorted({d for s in specs for d in s.datasets_for(args.profile)}):
        cells.resolve_protocol(dataset)
        locate(dataset, "test")  # missing data is one line naming every place looked, before any training
    device_name = device(args.device)
    check_device(device_name)  # a bad or absent device is one line before any study starts
    if args.workers is not None and args.workers < 1:
        raise KitError("--workers must be ≥ 1")
    budget_min = args.budget_min if args.budget_min is not None else _guard_min(specs, profile.name)
    deadline = time.time() + 60 * budget_min if budget_min else 0.0
    contexts = []
    for spec in specs:
        seeds, adaptive = parse_seeds(args.seeds, tuple(range(spec.profiles[args.profile].seeds)))
        contexts.append((cells.Context(spec, args.profile, args.runs, device_name, seeds), adaptive))
    progress = Progress([c for c, _ in contexts])
    begin = time.time()
    errors: list[KitError] = []
    for i, (ctx, adaptive) in enumerate(contexts, start=1):
        with study_log(args.runs, ctx.spec.name):
            progress.start(i, ctx)
            _run_study(ctx, adaptive, args, progress, deadline, overrides, errors)
        progress.update()
    progress.close()
    print(f"ran {len(contexts)} studies in {time.time() - begin:.0f} s; results in {args.runs}/", file=sys.stderr)
    missing = {c.spec.name: cells.missing_cells(c) for c, _ in contexts}
    if any(missing.values()) and not errors:
        left = ", ".join(f"{name} {n}" for name, n in missing.items() if n)
        print(f"the {budget_min:g}-minute budget ran out before every cell ran (missing: {left}); "
              f"the report shows what is there; re-run the same command to continue (exit code {EXIT_INCOMPLETE})", file=sys.stderr)
    if not args.no_report:
        from study.report.build import build_reports

        try:
            build_reports(runs_dir=args.runs, out_dir=args.out, storage=args.storage)
            print(f"report: {args.out / 'index.html'}", file=sys.stderr)
        except KitError:
            if not errors:  # a study's own error is the one to report, not that it left no rows
                raise
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first = type(first)(f"{first} (and {len(errors) - 1} more studies failed)")
            first.exit_code = errors[0].exit_code
        raise first
    return EXIT_INCOMPLETE if any(missing.values()) else 0


#: The seeds `--seeds auto` starts with (its first look).
ADAPTIVE_MIN_SEEDS = 3


def _guard_min(specs, profile: str) -> float:
    """The run's time guard: the longest of the selected studies' guards under this profile (a study file may
    set its own, e.g. the Table I proxy's), none when any of them has none."""
    guards = [spec.profiles[profile].guard_min for spec in specs]
    return 0.0 if not guards or 0.0 in guards else max(guards)


def _run_study(ctx, adaptive: int, args: argparse.Namespace, progress: Progress, deadline: float, overrides,
               errors: list[KitError]) -> None:
    """Run one study to its end (adaptive seeds included); a KitError is kept in `errors`, not raised."""
    from study import search, tuning
    from study.overrides import as_arguments, describe

    search.write_study_json(ctx, cli_overrides=describe(overrides))
    while True:
        try:
            if not tuning.tune(ctx, args.storage, deadline):
                return  # the guard stopped the tuning stage: no cell may train without its tuned values
            workers = args.workers or ctx.profile_spec.workers  # the study's profile, its overrides included
            if workers > 1:
                _run_workers(ctx, args, progress, deadline, workers, as_arguments(overrides))
            else:
                search.run_worker(ctx, args.storage, on_trial=progress.update, deadline=deadline, requeue=True)
            get_kind(ctx.spec.kind).finish(ctx, deadline)  # e.g. a search confirms its best at more seeds
        except KitError as err:  # one broken study must not cost the others (or the report)
            errors.append(err)
            return
        decision = _adaptive_decision(ctx, adaptive, args, deadline)
        if decision is None or not decision.more_seeds:
            from study import stats

            extra = {"seeds_stop_reason": decision.reason, "ci_half_widths": decision.half_widths,
                     "sequential_alpha": stats.sequential_alpha(ADAPTIVE_MIN_SEEDS, adaptive)} if decision else {}
            search.write_study_json(ctx, finished=time.strftime("%Y-%m-%d %H:%M:%S"), cli_overrides=describe(overrides),
                                    **extra)
            _measure_costs(ctx, deadline, errors)
            return
        ctx.seeds = (*ctx.seeds, max(ctx.seeds) + 1)
        progress.refresh_total()


def _measure_costs(ctx, deadline: float, errors: list[KitError]) -> None:
    """Table II's costs of a study that trained the paper's baselines (`study.costs`), unless the guard has passed."""
    from study import costs
    from study.models import list_models

    resolved = [ctx.resolved(v.label).model for v in ctx.variants]
    if all(m.spec is not None for m in resolved) or (deadline and time.time() > deadline):
        return  # no baseline (a model without an MK spec) was trained: nothing for Table II to compare
    try:
        models = list(dict.fromkeys(m.name for m in resolved if m.name in list_models()))
        costs.measure(models, costs.costs_path(ctx.run_dir, ctx.spec.name),
                      batch=ctx.profile_spec.cost_batch, device=ctx.device)
    except KitError as err:
        errors.append(err)


def _adaptive_decision(ctx, adaptive: int, args: argparse.Namespace, deadline: float):
    """The seeds decision of an adaptive grid study (None when seeds are fixed)."""
    if not adaptive or not get_kind(ctx.spec.kind).adaptive_seeds or ctx.spec.reference() is None:
        return None
    from study import results, stats

    table = results.load_table(ctx.results_path)
    table = table[(table["status"] == "ok") & (table["profile"] == ctx.profile)]
    if ctx.rungs != ("",):  # a ladder: seeds are added for its largest rung's verdicts
        table = table[table["rung"] == ctx.rungs[-1]]
    groups = {}
    for label, rows in table.groupby("variant"):
        rows = rows.sort_values("seed")
        groups[label] = ((100 * rows["test_accuracy"].astype(float)).tolist(), rows["seed"].tolist())  # paired by seed
    reference = ctx.spec.reference().label
    if reference not in groups:
        return None
    return stats.seeds_decision(groups, reference, target_half_width=args.ci_target, max_seeds=adaptive,
                                min_seeds=ADAPTIVE_MIN_SEEDS, mde_target=args.mde_target or None,
                                margin=ctx.spec.equivalence_margin, alpha=stats.sequential_alpha(ADAPTIVE_MIN_SEEDS, adaptive),
                                budget_exhausted=bool(deadline and time.time() > deadline))


def worker_env(index: int, workers: int, gpus: int, cores: int) -> dict[str, str]:
    """The environment of worker `index` of `workers` on this machine: cores // workers torch threads, and
    with GPUs the GPU `index % gpus`, so more workers than GPUs share them round-robin (several small trials
    on one GPU when one trial cannot fill it)."""
    threads = str(max(1, cores // workers))
    env = dict(os.environ, OMP_NUM_THREADS=threads, STUDY_THREADS=threads, STUDY_WORKER_INDEX=str(index))
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    return env


def _run_workers(ctx, args: argparse.Namespace, progress: Progress, deadline: float, workers: int,
                 override_args: list[str]) -> None:
    """N worker processes on one study (one GPU each when GPUs exist); wait while showing progress."""
    import torch

    from study import search

    search.enqueue_missing(ctx, args.storage)  # once, here, so the workers find one seed-major queue
    gpus = torch.cuda.device_count() if ctx.device.startswith("cuda") else 0
    procs, error_files = [], []
    for w in range(workers):
        env = worker_env(w, workers, gpus, os.cpu_count() or 1)
        error_files.append(ctx.run_dir / ctx.spec.name / f".worker-{w}.error")
        error_files[-1].unlink(missing_ok=True)
        env[ERROR_FILE] = str(error_files[-1])
        if not progress.bar.disable and env.get("STUDY_VERBOSITY", "0") == "0":
            env["STUDY_VERBOSITY"] = "-1"  # the live bar owns the terminal; trial lines still reach run.log
        cmd = [sys.executable, "-m", "study", "worker", "--study", ctx.spec.path, "--profile", ctx.profile,
               "--runs", str(ctx.run_dir), "--device", ctx.device, "--seeds", ",".join(map(str, ctx.seeds))]
        if args.storage:
            cmd += ["--storage", args.storage]
        if deadline:
            cmd += ["--deadline", f"{deadline:.0f}"]
        cmd += override_args  # the workers load the study exactly as this run did
        if args.track:
            cmd += ["--track", args.track]
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(2)
            progress.update()
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: stop every worker before leaving (no orphan finishes the study)
        _stop(procs)
        raise
    failed = [p.returncode for p in procs if p.returncode]
    if failed:
        raise _worker_error(ctx, failed, len(procs), error_files)


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate the workers and wait for them (a worker that ignores SIGTERM for 30 s is killed)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _worker_error(ctx, codes: list[int], workers: int, error_files: list[Path]) -> KitError:
    """The first worker's own error line and exit code (e.g. 3 for corrupt data), else their exit codes."""
    for path in error_files:
        try:
            code, _, line = path.read_text(encoding="utf-8").strip().partition("\t")
        except OSError:
            continue
        err = KitError(f"{line} (from a worker of study {ctx.spec.name}; finished rows are kept)")
        err.exit_code = int(code) if code.isdigit() else 1
        return err
    return KitError(f"{len(codes)} of {workers} workers of study {ctx.spec.name} exited with errors "
                    f"(codes {codes}); finished rows are kept, re-run to resume")
