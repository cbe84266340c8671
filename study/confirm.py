"""A search's best point is never one seed's result: before a search (or Pareto) study's report names a best
point, its top candidates by validation accuracy are trained again at more seeds, and the report gives each one's
mean with its CI and the number of seeds behind it.

The candidates are the search's top `CONFIRM_TOP` trained trials (by validation accuracy, never test); each is
rebuilt from its sampled parameters (`optuna.trial.FixedTrial` through `objectives.sample_network`, so the same
network and learning rate) and trained at the next `CONFIRM_SEEDS - 1` seeds. Its rows share the candidate's
variant label; a re-run finds them done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import optuna

from study.cells import Context, row_base
from study.objectives import sample_network, train_row
from study.results import row_key

log = logging.getLogger(__name__)

CONFIRM_TOP = 3  # candidates re-trained
CONFIRM_SEEDS = 3  # seeds behind each candidate, the search's own run included


def candidates(ctx: Context) -> list[dict[str, Any]]:
    """The search's top trained trials of this profile by validation accuracy (its first seed's rows)."""
    rows = [r for r in ctx.table.rows() if r.get("status") == "ok" and r.get("search_params")
            and r.get("profile") == ctx.profile and r.get("seed") == ctx.seeds[0]]
    return sorted(rows, key=lambda r: -float(r.get("val_accuracy") or 0.0))[:CONFIRM_TOP]


def confirm(ctx: Context, deadline: float = 0.0) -> int:
    """Train the candidates at their missing seeds (none after `deadline`: the clock only stops starting work);
    returns how many rows were written."""
    written = 0
    for row in candidates(ctx):
        params = json.loads(row["search_params"])
        model, extra = sample_network(optuna.trial.FixedTrial(params, number=int(row["trial_number"])), ctx)
        for seed in range(ctx.seeds[0] + 1, ctx.seeds[0] + CONFIRM_SEEDS):
            base = row_base(ctx, row["variant"], False, row["dataset"], seed)
            if row_key(base) in ctx.table.finished():
                continue
            if deadline and time.time() > deadline:
                return written
            log.info("confirming search candidate %s at seed %d", row["variant"], seed)
            new, _ = train_row(ctx, None, base, model, cfg=dataclasses.replace(ctx.cfg, lr=extra["lr"]))
            new["search_params"] = row["search_params"]
            written += ctx.table.claim_and_write([new])
    return written
