"""`python -m study prune --study NAME [--keep N]`: delete a study's checkpoints except each variant's best.

A variant × dataset × profile keeps the checkpoints of its N rows with the best validation accuracy
(default 1); every other checkpoint of the study folder (and any file no row names) is deleted with the
network description beside it. The result rows are unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study prune`."""
    parser.add_argument("--study", required=True, help="study name (a folder under --runs)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="run directory (default runs/)")
    parser.add_argument("--keep", type=int, default=1, help="checkpoints kept per variant × dataset, best validation "
                        "accuracy first (default 1; 0 deletes all)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")


def run(args: argparse.Namespace) -> int:
    """Prune and print what went (and how many bytes)."""
    from study.checkpoints import prune

    doomed = prune(args.runs, args.study, args.keep, dry_run=True)
    size = sum(p.stat().st_size for p in doomed if p.exists())
    if not args.dry_run:
        prune(args.runs, args.study, args.keep)
    for path in doomed:
        print(path)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(doomed)} checkpoints ({size / 2**20:.1f} MiB) of study {args.study}; kept the best {args.keep} "
          "per variant × dataset")
    return 0
