"""`python -m study profile NAME_OR_SPEC`: params, FLOPs, per-block breakdown, throughput, memory."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from study.errors import KitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study profile`."""
    parser.add_argument("model", nargs="?", help="registered model name or path to a .toml network spec")
    parser.add_argument("--list", nargs="?", const="*", metavar="PATTERN", help="list registered models (wildcards allowed) and exit")
    parser.add_argument("--batch", type=int, default=128, help="batch size for throughput (default 128)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--fast", action="store_true", help="the kit's fastest correct setting for this device (see study.fast)")
    parser.add_argument("--no-timing", action="store_true", help="counts only: skip the throughput measurement")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _print_human(r: dict[str, Any]) -> None:
    print(f"{r['model']}: {r['params']:,} trainable parameters ({r['params_total']:,} total)")
    print(f"FLOPs per image: {r['flops']:,} ({r['flops'] / 1e6:.1f} M; {r['flop_convention']})")
    for block, flops in r["flops_by_block"].items():
        print(f"  {block:<8} {flops:>14,}  {100 * flops / max(r['flops'], 1):5.1f}%")
    if r["uncounted_ops"]:
        print(f"  ops without a FLOP handle (not counted): {r['uncounted_ops']}")
    if "train" in r:
        s = r["setting"]
        print(f"throughput ({s['precision']}, batch {r['train']['batch']}, channels_last={s['channels_last']}, compile={s['compile']}):")
        print(f"  train     {r['train_img_per_s']:8.1f} img/s   ({r['train'].get('ms_per_step', float('nan')):.1f} ms/step)")
        print(f"  inference {r['infer_img_per_s']:8.1f} img/s   ({r['inference'].get('ms_per_step', float('nan')):.1f} ms/step)")
        print(f"  peak memory {r['peak_mem_mb']:.0f} MiB")
    p = r["provenance"]
    print(f"torch {p['torch_version']} on {p['device']} ({p['device_name']}), {p['threads']} threads")


def run(args: argparse.Namespace) -> int:
    """Profile one model and print a summary or one JSON object."""
    if args.list is not None:
        from study.models import get_entry, list_models

        for name in list_models(args.list):
            print(f"{name:<24} {get_entry(name).description}")
        return 0
    if not args.model:
        raise KitError("profile: name a model or a .toml spec (or pass --list to see the registered ones)")
    from study.measure import profile_model

    result = profile_model(args.model, batch=args.batch, device=args.device, precision=args.precision,
                     channels_last=args.channels_last, compile=args.compile, fast=args.fast,
                     timing=not args.no_timing, repeats=args.repeats)
    if args.json:
        json.dump(result, sys.stdout, default=str)
        print()
    else:
        _print_human(result)
    return 0
