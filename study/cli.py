"""Command-line entry point: `python -m study {profile,train,data,run,worker}`.

Each command lives in `study/commands/<name>.py` with `add_arguments(parser)` and `run(args) -> int`;
they are imported lazily so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from study.errors import KitError

COMMANDS = {
    "profile": "params, FLOPs, throughput and memory of a model or spec file",
    "train": "train one model on one dataset and record the result",
    "data": "list, fetch and check datasets",
    "run": "run the ablation studies of ablations/*.toml through Optuna",
    "worker": "join a shared study (e.g. PostgreSQL storage) as one more worker",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="python -m study", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"study.commands.{name}")
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, and turn a KitError into one line on stderr."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"study.commands.{args.command}")
    try:
        return int(module.run(args) or 0)
    except KitError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished results are kept; re-run the same command to resume", file=sys.stderr)
        return 130
