"""What `study run` and `study plan` select alike: which studies, profile, seeds, overrides, run directory and
device, as command-line options and their parsing (both commands import it; neither imports the other's)."""

from __future__ import annotations

import argparse
from pathlib import Path

from study.errors import KitError


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """Which studies, profile, seeds, overrides and run directory: shared by `study run` and `study plan`."""
    parser.add_argument("--profile", default="quick", help="quick (a powered proxy for 2 CPU cores) or paper (full scale, GPU)")
    parser.add_argument("--only", help="comma-separated study names or files (default: the studies marked default_run = true)")
    parser.add_argument("--all", action="store_true", help="every study of ablations/ (each file states its expected run time)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a study file's key for this run, e.g. --set profiles.quick.seeds=10 "
                             "--set variants.0.block.kernels=[3,5] (repeatable; applies to every selected study; "
                             "recorded in runs/<study>/study.json)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="run directory (default runs/)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    parser.add_argument("--seeds", help='seed count or "auto[:MAX]" (add paired seeds until every contrast is decided or its '
                        'MDE ≤ --mde-target, or every CI half-width ≤ --ci-target)')


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """Options only a plan has (`study plan`, and `study run --dry-run`)."""
    parser.add_argument("--samples", type=int, default=200,
                        help="specs drawn from a search space to measure the share its bands reject (default 200; 0 = skip)")
    parser.add_argument("--no-profiling", action="store_true",
                        help="do not time a few training steps where no finished rows give a rate (estimate shows ?)")
    parser.add_argument("--json", action="store_true", help="print the plan as one JSON object")


def device(text: str) -> str:
    """`--device`: cpu, cuda, or auto (cuda when torch sees one). torch is imported here, when a command runs, so
    that `--help` and argument errors stay fast."""
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return text


def parse_seeds(text: str | None, default: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """`--seeds`: (initial seeds, adaptive max or 0)."""
    if not text:
        return default, 0
    if text.startswith("auto"):
        _, _, cap = text.partition(":")
        if cap and not cap.isdigit():
            raise KitError(f'--seeds {text}: use "auto" or "auto:MAX" with an integer MAX, e.g. auto:10')
        return tuple(range(max(3, min(len(default), int(cap or 10))))), int(cap or 10)
    if not text.isdigit() or int(text) < 1:
        raise KitError(f'--seeds {text}: use a seed count ≥ 1 or "auto[:MAX]"')
    return tuple(range(int(text))), 0
