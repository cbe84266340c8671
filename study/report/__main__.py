"""`python -m study.report [--study NAME] [--runs DIR] [--out DIR] [--storage URL] [--gpu-results DIR]`: write the HTML report of each study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.errors import KitError


def build_parser() -> argparse.ArgumentParser:
    """The report command's parser."""
    parser = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.split(": ", 1)[1])
    parser.add_argument("--study", help="only this study (a folder name under --runs); default: every study")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="run directory (default: runs/)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default: reports/)")
    parser.add_argument("--storage", help="Optuna storage URL of the run (e.g. postgresql://user@host/db): a search "
                        "study's Optuna section is read from it (default: runs/<study>/optuna.journal)")
    parser.add_argument("--gpu-results", type=Path, default=Path("results") / "gpu",
                        help="committed GPU checks shown beside the CPU's numbers (default: results/gpu/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build the reports; a user error is one line on stderr and a non-zero exit code."""
    args = build_parser().parse_args(argv)
    try:
        # Imported here so `--help` answers without loading matplotlib, seaborn and optuna.
        from study.report.build import build_reports

        for page in build_reports(args.runs, args.out, args.study, storage=args.storage, gpu_results=args.gpu_results):
            print(page)
    except KitError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
