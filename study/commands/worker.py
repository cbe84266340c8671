"""`python -m study worker --study NAME`: join a study (local journal or shared RDB storage) as one worker."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from study.errors import KitError
from study.logs import study_log


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study worker`."""
    parser.add_argument("--study", required=True, help="study name (ablations/<name>.toml) or path to a study TOML")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--storage", help="shared Optuna storage URL, e.g. postgresql://user@host/db")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="run directory shared by the workers (default runs/)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the profile's)")
    parser.add_argument("--deadline", type=float, default=0.0,
                        help="Unix time after which no new trial starts (a running trial always finishes)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a study file's key, as `study run --set` (the run passes its own to its workers)")
    parser.add_argument("--track", choices=["tensorboard"], help="write each trial's epoch metrics live to "
                        "runs/<study>/tensorboard/<cell>/ (as `study run --track`)")
    parser.add_argument("--export", action="store_true",
                        help="train nothing: copy the rows every worker stored in --storage into --runs (then "
                             "`python -m study.report` builds the report on a machine that shares only the storage)")


def run(args: argparse.Namespace) -> int:
    """Work until every cell of the study has a row."""
    import torch

    from study import cells, search, storage, tracking
    from study.overrides import parse_overrides
    from study.results import results_path
    from study.studies import load_study, study_path

    if os.environ.get("STUDY_THREADS"):
        torch.set_num_threads(int(os.environ["STUDY_THREADS"]))
    spec = load_study(study_path(args.study), parse_overrides(args.overrides))
    if args.export:
        if not args.storage:
            raise KitError("--export copies rows from a shared storage: give --storage URL too")
        added = storage.export_rows(args.storage, spec.name, args.runs)
        print(f"{added} new rows in {results_path(args.runs, spec.name)}", file=sys.stderr)
        return 0
    search.check_profile(spec, args.profile)
    tracking.enable(args.track)
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else tuple(range(spec.profiles[args.profile].seeds))
    ctx = cells.Context(spec, args.profile, args.runs, args.device, seeds,
                        worker=os.environ.get(search.WORKER_ENV) or storage.owner())  # its own search sampler seed
    with study_log(args.runs, spec.name):
        from study import tuning

        if tuning.tune(ctx, args.storage, args.deadline):  # reads the tuned values (or helps finish the tuning)
            search.run_worker(ctx, args.storage, deadline=args.deadline)
    return 0
