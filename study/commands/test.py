"""`python -m study test --study NAME`: re-test a study's kept models on their test splits (optionally degraded).

Without `--degrade` each row's own test is repeated (its protocol, fold, seed, precision and fast-eval
path), so a CPU row's `test_accuracy` comes back exactly; the exit code is 1 when one does not.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from study.errors import KitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study test`."""
    parser.add_argument("--study", required=True, help="study name (a folder under --runs)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="run directory (default runs/)")
    parser.add_argument("--variant", action="append", help="only this variant label (repeatable)")
    parser.add_argument("--seed", type=int, action="append", help="only this seed (repeatable)")
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    parser.add_argument("--degrade", action="append", metavar="TEXT",
                        help='test the clean rows\' models on a degraded test split, e.g. "blur:1.0" (repeatable)')
    parser.add_argument("--device", default="cpu", help="cpu (reproduces CPU rows exactly) or cuda[:i]")
    parser.add_argument("--json", action="store_true", help="print one JSON object per re-test")


def selected_rows(runs: Path, study: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The study's finished rows that keep a checkpoint, filtered by --variant/--seed/--dataset."""
    from study import results

    path = results.results_path(runs, study)
    if not path.exists():
        raise KitError(f"{path}: no results for study {study!r} (run it first, or check --runs)")
    rows = [r for r in results.ResultsTable(path).finished().values() if r.get("status") == "ok"
            and (not args.variant or r["variant"] in args.variant) and (not args.seed or r["seed"] in args.seed)
            and (not args.dataset or r["dataset"] in args.dataset)]
    kept = [r for r in rows if r.get("checkpoint")]
    if not kept:
        raise KitError(f"study {study}: none of its {len(rows)} selected finished rows keeps a checkpoint "
                       "(the profile's keep_weights was off, or the selection is empty)")
    return kept


def run(args: argparse.Namespace) -> int:
    """Re-test each selected row; print accuracy per row (or JSON lines); exit 1 when a row's test is not reproduced."""
    rows = selected_rows(args.runs, args.study, args)
    jobs = [(r, None) for r in rows] if not args.degrade else \
        [(r, d) for r in rows if not r.get("test_degraded_only") for d in args.degrade]
    records = [_retest_one(args, row, degrade) for row, degrade in jobs]
    differs = sum(r["reproduced"] is False for r in records)
    for record in records:
        print(json.dumps(record) if args.json else _line(record))
    if differs:
        print(f"{differs} of {len(jobs)} re-tests differ from their rows (a row trained on another device or "
              "thread count may differ in the last digits)", file=sys.stderr)
    return 1 if differs else 0


def _retest_one(args: argparse.Namespace, row: dict[str, Any], degrade: str | None) -> dict[str, Any]:
    """One re-test as a record; a pruned checkpoint is recorded as gone (test_accuracy None), not an error."""
    from study.checkpoints import checkpoint_file, retest

    record = {"study": row["study"], "variant": row["variant"], "dataset": row["dataset"], "seed": row["seed"],
              "degradation": degrade or row["degradation"], "test_accuracy": None, "test_loss": None,
              "row_test_accuracy": None if degrade else row.get("test_accuracy"), "reproduced": None,
              "checkpoint": row["checkpoint"], "pruned": not checkpoint_file(args.runs, row).exists()}
    if record["pruned"]:
        return record
    result = retest(args.runs, row, degrade, args.device)
    record.update(test_accuracy=result["accuracy"], test_loss=result["loss"],
                  reproduced=None if degrade else _same(result["accuracy"], row.get("test_accuracy")))
    return record


def _line(record: dict[str, Any]) -> str:
    head = f"{record['variant']} {record['dataset']} seed {record['seed']} {record['degradation']}: "
    if record["pruned"]:
        return head + f"checkpoint {record['checkpoint']} was pruned"
    text = head + f"test accuracy {100 * record['test_accuracy']:.2f}%"
    if record["row_test_accuracy"] is None:
        return text
    return text + f" (row {100 * float(record['row_test_accuracy']):.2f}%, {'same' if record['reproduced'] else 'DIFFERS'})"


def _same(accuracy: float, recorded: Any) -> bool:
    return recorded is not None and not (isinstance(recorded, float) and math.isnan(recorded)) and accuracy == float(recorded)
