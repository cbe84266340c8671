"""Where a page's numbers came from: the command, commit, profile and machine, for every page's footer.

Read from study.json (written by the run) and, for older runs without it, from the rows themselves.
"""

from __future__ import annotations

from pathlib import Path

from study.report import summary
from study.studies import ABLATIONS


def _rows_value(study, column: str) -> str:
    """The distinct values of a results column, or a dash."""
    if column not in study.table.columns:
        return "–"
    values = sorted({str(v) for v in study.table[column].dropna() if str(v)})
    return ", ".join(values) or "–"


def study_command(study) -> str:
    """The command that ran the study: as recorded in study.json, else the one that runs it again."""
    recorded = study.provenance.get("command")
    if isinstance(recorded, str) and recorded.strip():
        return recorded
    profile = str(study.provenance.get("profile") or study.profile)
    spec = study.provenance.get("spec_file")
    # recorded as given on the command line (relative or absolute): a file in some ablations/ folder runs by name
    if isinstance(spec, str) and spec and Path(spec).parent.name not in ("ablations", ABLATIONS.name):
        return summary.run_command(spec, profile)  # a study file outside ablations/ runs by its path
    return summary.run_command(str(study.provenance.get("study") or study.name), profile)


def commit(study) -> str:
    """The kit's git commit the study ran at."""
    return str(study.provenance.get("git_commit") or _rows_value(study, "git_commit"))


def machine(study) -> str:
    """The machine: host (when recorded), device, torch and python versions."""
    prov = study.provenance
    parts = [str(prov[k]) for k in ("machine", "host", "hostname") if prov.get(k)]
    parts.append(str(prov.get("device") or _rows_value(study, "device")))
    if prov.get("device_name"):
        parts.append(f"{prov['device_name']}" + (f", {prov['threads']} threads" if prov.get("threads") else ""))
    torch = prov.get("torch_version") or _rows_value(study, "torch_version")
    parts.append(f"torch {torch}")
    if prov.get("python"):
        parts.append(f"python {prov['python']}")
    return " · ".join(parts)


def study_footer(study) -> list[tuple[str, str]]:
    """The footer of a study's page: how to reproduce every table and figure on it."""
    return [
        ("command", study_command(study)),
        ("rebuild", f"python -m study.report --study {study.name}"),
        ("commit", commit(study)),
        ("profile", summary.profile_line(study)),
        ("machine", machine(study)),
    ]


def run_footer(studies: list) -> list[tuple[str, str]]:
    """The footer of the run's summary: the commands, commits, profiles and machines of every study in it."""
    def joined(values) -> str:
        return "; ".join(dict.fromkeys(values)) or "–"

    return [
        ("command", joined(study_command(s) for s in studies) if studies else "nox -s ablations"),  # as each ran, --set included
        ("rebuild", "python -m study.report"),
        ("commit", joined(commit(s) for s in studies)),
        ("profile", joined(f"{s.name}: {s.profile}" for s in studies)),
        ("machine", joined(machine(s) for s in studies)),
    ]
