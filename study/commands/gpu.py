"""`python -m study gpu [--tiny]`: the one-command check of a GPU machine (see `study.gpu_check`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from study.errors import KitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study gpu`."""
    parser.add_argument("--tiny", action="store_true",
                        help="a rehearsal on the CPU in seconds (two models, batch 4, one seed of 256 images): "
                             "checks the check, its numbers mean nothing")
    parser.add_argument("--device", default="auto", help="cuda, cpu, or auto (cuda when visible; --tiny uses cpu)")
    parser.add_argument("--out", type=Path, default=Path("runs") / "gpu", help="folder for the JSON (default runs/gpu)")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding fashion-mnist/*-ubyte.gz")
    parser.add_argument("--seeds", type=int, help="seeds of the time-to-accuracy runs (default 5; --tiny 1)")
    parser.add_argument("--epochs", type=int, help="epochs of the time-to-accuracy schedule (default 10)")
    parser.add_argument("--augment", metavar="TEXT", help="training augmentation of the time-to-accuracy schedule, "
                        "e.g. flip:h+crop:2 (default none)")
    parser.add_argument("--budget-min", type=float, default=6.0, metavar="M",
                        help="start no measurement after M minutes (default 6: a 15-minute lease keeps room for a rerun; "
                             "0 = no limit); the JSON lists what was skipped")
    parser.add_argument("--bundle", type=Path, metavar="DIR",
                        help="instead of measuring: write into DIR what a lent GPU machine needs beside the repo "
                             "(wheels of the check's imports its image lacks, Fashion-MNIST) and print the command to run there")


def run(args: argparse.Namespace) -> int:
    """Run the check, print its summary and where the JSON went."""
    import dataclasses
    import functools
    import time

    import torch

    from study import gpu_check

    if args.bundle:
        print(gpu_check.bundle(args.bundle, args.data_root))
        return 0
    settings = gpu_check.TINY if args.tiny else gpu_check.CheckSettings()
    if (args.seeds or 1) < 1 or (args.epochs or 1) < 1:
        raise KitError("--seeds and --epochs must be ≥ 1")
    if args.augment:
        from study.data import parse_augment
        from study.errors import DataError

        try:  # a bad text is one line now, not after the throughput measurements
            parse_augment(args.augment)
        except DataError as err:
            raise KitError(f"--augment: {err}") from None
    tta = dataclasses.replace(settings.tta, epochs=args.epochs or settings.tta.epochs,
                              augment=settings.tta.augment if args.augment is None else args.augment)
    settings = dataclasses.replace(settings, seeds=args.seeds or settings.seeds, tta=tta)
    device = "cpu" if args.tiny else ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise KitError("--device cuda: no CUDA device is visible; use --tiny to rehearse the check on the CPU")
    if device == "cpu" and not args.tiny:
        raise KitError("no CUDA device is visible: the full check is for a GPU machine; `--tiny` rehearses it on the CPU")
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    if args.budget_min < 0:
        raise KitError(f"--budget-min {args.budget_min}: must be ≥ 0 (0 = no limit)")
    deadline = time.time() + 60 * args.budget_min if args.budget_min else None
    path = gpu_check.run_check(settings, device, args.out, args.data_root, deadline, functools.partial(print, flush=True))
    doc = json.loads(path.read_text())
    print("\n".join(gpu_check.summary_lines(doc)))
    print(f"saved {path}")
    if doc["errors"]:
        raise KitError(f"{len(doc['errors'])} measurement(s) of the GPU check failed (listed above and in {path}); "
                       "the others are saved")
    return 0
