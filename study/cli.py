"""Command-line entry point: `python -m study {profile,train,data,run,plan,worker,test,prune,gpu}`.

Each command lives in `study/commands/<name>.py` with `add_arguments(parser)` and `run(args) -> int`;
they are imported lazily so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
from pathlib import Path

from study.errors import ERROR_FILE, KitError, Stopped

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
    "init": "copy the example studies and network specs into a working folder (DIR/ablations/)",
}


EXIT_CODES = ("exit codes: 0 done; 1 an error the message says how to fix; 2 a bad spec, study file, --set or model "
              "name; 3 missing or corrupt data; 4 `run` stopped by its time guard with cells missing (re-run to "
              "continue); 130 interrupted; 129/143 stopped by SIGHUP/SIGTERM")


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
    parser.add_argument("--studies", type=Path, help="the folder of study files (default: ./ablations when it exists, "
                        "else the examples the kit ships; also $STUDY_STUDIES)")
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
    if args.studies:  # an environment variable, so `study run`'s worker processes look in the same folder
        from study.studies import STUDIES_ENV

        os.environ[STUDIES_ENV] = str(args.studies.resolve())
    from study.logs import configure

    configure(args.verbose - args.quiet)  # worker processes inherit it through STUDY_VERBOSITY
    module = importlib.import_module(f"study.commands.{args.command}")
    _stop_on_signals()
    try:
        return int(module.run(args) or 0)
    except KitError as err:
        return _failed(str(err), err.exit_code)
    except OSError as err:  # a full disk or a read-only folder: the path, the cause, the fix; nothing finished is lost
        return _failed(os_error_line(err), 1)
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", None)
        what = f"stopped by {signal.Signals(signum).name}" if signum else "interrupted"
        print(f"{what}: finished results are kept; re-run the same command to resume", file=sys.stderr)
        return 128 + signum if signum else 130


def _failed(line: str, code: int) -> int:
    """Print the one error line; a worker also leaves it for its parent (which prints the first worker's)."""
    print(f"error: {line}", file=sys.stderr)
    if os.environ.get(ERROR_FILE):
        try:
            with open(os.environ[ERROR_FILE], "w", encoding="utf-8") as fh:
                fh.write(f"{code}\t{line}\n")
        except OSError:
            pass  # a full disk: the parent still reports the exit code
    return code


def os_error_line(err: OSError) -> str:
    """One line for a failed write or read of the kit's files: which file, why, and what to do."""
    where = err.filename or "a file of the run"
    fixes = {errno.ENOSPC: "free disk space (or pass --runs on another disk)", errno.EDQUOT: "free disk space",
             errno.EROFS: "the folder is read-only: pass --runs DIR on a writable disk",
             errno.EACCES: "no permission to write there: pass --runs DIR you own"}
    fix = fixes.get(err.errno, "check the path")
    return f"{where}: {err.strerror or err}; {fix}, then re-run the same command: finished rows are kept"


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop a command like Ctrl-C does (a `study run` stops its workers first)."""
    def stop(signum, frame):
        raise Stopped(signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
