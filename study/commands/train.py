"""`python -m study train NAME_OR_SPEC --dataset NAME`: one seeded training run, its result row on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from study.errors import KitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study train`."""
    parser.add_argument("model", help="registered model name or path to a .toml network spec")
    parser.add_argument("--dataset", required=True, help="mnist, fashion-mnist, kmnist or oracle-mnist")
    parser.add_argument("--profile", default="quick", help="quick (the study kit's CPU proxy, ~1 min) or paper (GPU-scale); default quick")
    parser.add_argument("--width", type=float, help="width multiplier of MK networks (default: the profile's; quick trains a ×0.25 proxy)")
    parser.add_argument("--degrade", help='degradation of every split, e.g. "lowres:14", "blur:1.0+noise:0.1"')
    parser.add_argument("--protocol", default="auto", choices=["auto", "val-split", "kfold-test"])
    parser.add_argument("--fold", type=int, default=0, help="test fold of the kfold-test protocol")
    parser.add_argument("--epochs", type=int, help="epoch cap (overrides the profile)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--train-subset", type=int, help="stratified subset of the training split (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", help="folder with <dataset>/<idx files>")
    parser.add_argument("--history", type=Path, help="write the per-epoch history CSV here")
    parser.add_argument("--json", action="store_true", help="print the finished result row as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Train, then print a summary (or the row as JSON); exit 1 if the run diverged."""
    import dataclasses

    from study.capacity import scaled, width_named
    from study.models import resolve_model
    from study.profiles import get_profile, with_training
    from study.train import Task, train

    profile = with_training(get_profile(args.profile), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            precision=args.precision, train_subset=args.train_subset)
    if args.width is not None:
        if not 0 < args.width <= 64:
            raise KitError(f"--width {args.width}: use a multiplier in (0, 64]")
        profile = dataclasses.replace(profile, width=args.width, overrides=(*profile.overrides, f"width={args.width:g}"))
    cfg = profile.train
    model = resolve_model(args.model)
    if model.spec is not None and profile.width != 1.0:  # the profile's proxy width applies to MK networks
        model = resolve_model(width_named(scaled(model.spec, profile.width), model.spec.name))
    task = Task(args.dataset, protocol=args.protocol, fold=args.fold, degrade=args.degrade, data_root=args.data_root)
    result = train(model, task, cfg=cfg, seed=args.seed, device=args.device, history_path=args.history,
                   progress=sys.stderr.isatty() or not args.json)
    result["train_config"] = profile.describe()
    if args.json:
        json.dump(result, sys.stdout, default=str)
        print()
    else:
        print(f"{result['model']} on {result['dataset']} ({result['protocol']}, seed {result['seed']}, {cfg.profile} profile): "
              f"{result['status']}, {result['stop_reason']}")
        if result["status"] == "ok":
            print(f"  test accuracy {100 * result['test_accuracy']:.2f}% (n={result['test_size']}), "
                  f"val accuracy {100 * result['val_accuracy']:.2f}% at epoch {result['best_epoch']}/{result['epochs']}")
        print(f"  train {result['train_img_per_s']:.0f} img/s, wall {result['wall_s']:.1f} s; {profile.describe()}")
    return 0 if result["status"] == "ok" else 1
