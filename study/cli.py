"""Command-line entry point: `python -m study {profile,train,data,run,plan,worker,test,prune,gpu}`.

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
    "plan": "what `run` would do, training nothing: cells, params/FLOPs, done/missing, estimated time",
    "worker": "join a shared study (e.g. PostgreSQL storage) as one more worker",
    "test": "re-test a study's kept models on their test splits (optionally degraded)",
    "prune": "delete a study's checkpoints except each variant's best",
    "gpu": "the one-command check of a GPU machine: throughput, time to accuracy, the paper study's wall time",
}


EXIT_CODES = ("exit codes: 0 done; 1 an error the message says how to fix; 2 a bad spec, study file, --set or model "
              "name; 3 missing or corrupt data; 4 `run` stopped by its time guard with cells missing (re-run to "
              "continue); 130 interrupted")


def kit_version() -> str:
    """The installed kit's version (from its package metadata), or "unknown" when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("lrnet-study-kit")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="python -m study", description=__doc__.splitlines()[0], epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {kit_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log lines on stderr (-v: debug; -vv: Optuna's too); the log file always has info")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"study.commands.{name}")
        command = sub.add_parser(name, help=help_text, description=help_text, epilog=EXIT_CODES)
        module.add_arguments(command)
        # -v/-q after the command too (`study run -v`); SUPPRESS keeps the top-level count
        command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log lines")
        command.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS, help="fewer log lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, and turn a KitError into one line on stderr."""
    args = build_parser().parse_args(argv)
    from study.logs import configure

    configure(args.verbose - args.quiet)  # worker processes inherit it through STUDY_VERBOSITY
    module = importlib.import_module(f"study.commands.{args.command}")
    try:
        return int(module.run(args) or 0)
    except KitError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished results are kept; re-run the same command to resume", file=sys.stderr)
        return 130
