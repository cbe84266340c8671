"""The measured figures of the last saved benchmark run beside the previous run's: `python tests/bench/figures.py [STORAGE]`.

`nox -s bench` saves every run as JSON under `.benchmarks/<machine>/NNNN_*.json` (pytest-benchmark's
`--benchmark-autosave`); the figures that matter (img/s, trials per hour, speed-ups, seconds per trial)
sit in each benchmark's `extra_info`, which pytest-benchmark's own table does not show. This prints
them, with each benchmark's median time, and the change against the previous saved run of this machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def saved_runs(storage: Path) -> list[Path]:
    """Saved runs, oldest first, of the machine folder that holds the newest run."""
    runs = sorted(storage.glob("*/[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: (p.stat().st_mtime, p.name))
    if not runs:
        return []
    folder = runs[-1].parent
    return sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.json"))


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = float(value)


def figures(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """benchmark name → {figure: value}: every number in its extra_info (nested keys dotted) and its median seconds."""
    out: dict[str, dict[str, float]] = {}
    for bench in run.get("benchmarks", []):
        values: dict[str, float] = {}
        _flatten("", bench.get("extra_info", {}), values)
        median = bench.get("stats", {}).get("median")
        if isinstance(median, (int, float)):
            values["median_s"] = float(median)
        out[bench.get("fullname", bench.get("name", "?"))] = values
    return out


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def compare_lines(current: dict[str, dict[str, float]], previous: dict[str, dict[str, float]] | None) -> list[str]:
    """One line per figure: its value and, where the previous run has it, the previous value and the change."""
    lines = []
    for name, values in current.items():
        lines.append(name)
        before = (previous or {}).get(name, {})
        for key, value in values.items():
            line = f"    {key:<42} {_number(value):>12}"
            if key in before:
                old = before[key]
                change = f", {100 * (value - old) / old:+.1f} %" if old else ""
                line += f"   (was {_number(old)}{change})"
            elif previous is not None:
                line += "   (new)"
            lines.append(line)
    return lines


def report(storage: Path) -> str:
    """The text `nox -s bench` prints after the benchmarks."""
    runs = saved_runs(storage)
    if not runs:
        return f"no saved benchmark runs in {storage}\n"
    current = figures(json.loads(runs[-1].read_text()))
    previous = figures(json.loads(runs[-2].read_text())) if len(runs) > 1 else None
    head = f"benchmark figures of {runs[-1].name}" + (f" against {runs[-2].name}" if previous is not None
                                                       else " (no previous saved run to compare with)")
    return "\n".join([head, *compare_lines(current, previous)]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(report(Path(sys.argv[1] if len(sys.argv) > 1 else ".benchmarks")))
