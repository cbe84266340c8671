"""A study's run directory, read for the report: its results table, provenance (`study.json`) and Optuna journal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from study.results import load_rows, load_table, read_rows, row_key
from study.stats import relative_margin, truthy


@dataclass
class StudyRun:
    """One study's run directory, read: results table, provenance and optional Optuna journal (or storage URL)."""

    name: str
    run_dir: Path
    table: pd.DataFrame
    provenance: dict
    journal: Path | None
    problems: list[str] = field(default_factory=list)
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)  # Table II's measurements (`study.costs`), if any
    storage_url: str | None = None  # an Optuna RDB (e.g. PostgreSQL) that may hold the study instead of the journal
    tuning: dict = field(default_factory=dict)  # tuning.json: the tuning stage's budget, points and choices per profile
    derived: dict = field(default_factory=dict, repr=False, compare=False)  # what is computed once per study (contrasts)

    @property
    def profile(self) -> str:
        """The study's profile, from study.json or else from its rows."""
        if self.provenance.get("profile"):
            return str(self.provenance["profile"])
        return ", ".join(sorted({str(p) for p in self.table["profile"].dropna()})) or "–"

    @property
    def last_update(self) -> str:
        """When the results file last changed (a running study keeps appending to it)."""
        results = self.run_dir / "results.jsonl"
        source = results if results.exists() else self.run_dir / "study.json"
        if not source.exists():
            return "–"
        return datetime.fromtimestamp(source.stat().st_mtime).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def find_studies(runs_dir: Path) -> list[Path]:
    """Study folders of a runs directory: those holding results.jsonl or study.json."""
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir()
                  if p.is_dir() and ((p / "results.jsonl").exists() or (p / "study.json").exists()))


def load_run(run_dir: Path, storage: str | None = None) -> StudyRun:
    """Read one study folder (its Optuna study from the journal, or from `storage` when given); an unreadable
    study.json is a problem noted in the report, not a crash."""
    problems, provenance = [], {}
    meta = run_dir / "study.json"
    if meta.exists():
        try:
            provenance = json.loads(meta.read_text(encoding="utf-8"))
            if not isinstance(provenance, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            problems.append(f"study.json could not be read ({err}); provenance below comes from the rows only.")
            provenance = {}
    journal = run_dir / "optuna.journal"
    costs = pd.DataFrame(load_rows(run_dir / "costs.jsonl"))
    tuning = {}
    if (run_dir / "tuning.json").exists():
        try:
            tuning = json.loads((run_dir / "tuning.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            problems.append(f"tuning.json could not be read ({err}); Table I's lr column still shows what each row used.")
    table = load_table(run_dir / "results.jsonl")
    problems += _table_problems(run_dir / "results.jsonl")
    if meta.exists() is False or "equivalence_margin" not in provenance:
        provenance, recovered = _recovered(provenance, table)
        if recovered:
            problems.append(f"study.json {'is missing' if not meta.exists() else 'lacks them'}: {recovered} recovered "
                            "from the rows, which record the study's settings.")
    provenance = _margin_in_points(provenance, table)
    return StudyRun(run_dir.name, run_dir, table, provenance, journal if journal.exists() else None, problems, costs,
                    storage, tuning)


def _margin_in_points(provenance: dict, table: pd.DataFrame) -> dict:
    """A margin given as a share of the reference's error rate, in points: from the reference's mean test accuracy."""
    share = provenance.get("equivalence_margin_relative")
    if not isinstance(share, (int, float)) or not share > 0 or not len(table):
        return provenance
    reference = table[(table["status"] == "ok") & table.get("is_reference", pd.Series(False, index=table.index)).map(truthy)]
    accuracy = pd.to_numeric(reference.get("test_accuracy"), errors="coerce").mean() * 100
    if not accuracy == accuracy:  # nan: no reference row yet
        return provenance
    margin = relative_margin(float(share), float(accuracy))
    return {**provenance, "equivalence_margin": margin, "margin_reason": (
        f"{share:.0%} of the reference's error rate ({100 - accuracy:.1f} %), as the study file asks"
        + (f"; {provenance['margin_reason']}" if provenance.get("margin_reason") else ""))}


def _table_problems(path: Path) -> list[str]:
    """What a reader must know about a results file: torn lines skipped, superseded rows left out."""
    rows, torn = read_rows(path)
    problems = []
    if torn:
        problems.append(f"results.jsonl: {torn} torn line{'s' if torn != 1 else ''} skipped (a write cut off by a kill or "
                        "a full disk); a re-run trains those cells again.")
    latest: dict[tuple, dict] = {}
    superseded = 0
    for row in rows:  # a finished row followed by a newer row of its cell (a failed try is no finding)
        key = row_key(row)
        superseded += key in latest and latest[key].get("status") != "failed"
        latest[key] = row
    if superseded:
        problems.append(f"results.jsonl: {superseded} superseded row{'s' if superseded != 1 else ''} (trained before the "
                        "study file or a --set changed the cell) kept in the file and left out: each cell shows its newest row.")
    return problems


def _recovered(provenance: dict, table: pd.DataFrame) -> tuple[dict, str]:
    """study.json's study-level settings the report needs, recovered from the rows that record them."""
    recovered = {}
    for key in ("equivalence_margin", "kind"):
        if key not in provenance and key in table.columns:
            values = table[key].dropna().unique()
            if len(values) == 1:
                recovered[key] = values[0].item() if hasattr(values[0], "item") else values[0]
    text = ", ".join(f"{k} {v}" for k, v in recovered.items())
    return {**provenance, **recovered}, text
