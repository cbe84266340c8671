"""The summary of a whole run: `reports/index.html` and `reports/contrasts.csv`.

Per study: its question (the spec's description), the profile it ran under (PROXY flagged), one row
per pre-registered contrast (Δ = variant − reference in accuracy points, 95% CI, MDE, verdict) with a
one-line answer, and what each variant cost (capacity-matched and raw). Then the studies of
`ablations/` that have no run yet, with the command that runs them.

Pure data: `summarise` reads a study (anything with `name`, `provenance` and `table`), the template
renders the result. Old run directories without the newer study.json fields still summarise.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from study import stats
from study.capacity import TOLERANCE
from study.report import display, tables
from study.report.contrasts import axes as contrast_axes
from study.report.contrasts import (
    by_axis,
    equivalence_margin,
    kind_of,
    once,
    ordered,
    scale_of,
)
from study.studies import list_studies, studies_folder

#: The study a plain `nox -s ablations` runs; it leads the summary and the CSV.
CONTRASTS_STUDY = "contrasts"
#: Columns of `reports/contrasts.csv`, in order. A "contrast" row is Δ at one scale (its rung, or the study's one
#: scale); a "transfer" row is the change of Δ from `low_rung` to `high_rung` (delta, CI and MDE of that change).
CSV_COLUMNS = ("study", "contrast", "kind", "scale", "rung", "n", "delta", "ci_low", "ci_high", "mde", "verdict",
               "low_rung", "high_rung", "delta_low", "delta_high", "per_doubling", "per_doubling_low",
               "per_doubling_high")
MINUS = "\u2212"
_FRAME_COLUMNS = ["study", "axis", "dataset", "degradation", "contrast", "kind", "scale", "rung", "variant", "reference",
                  "n", "n_variant", "n_reference", "paired", "delta", "ci_low", "ci_high", "mde", "verdict", "margin",
                  "answer"]
_TRANSFER_COLUMNS = ["study", "axis", "dataset", "degradation", "contrast", "kind", "variant", "reference", "n", "delta",
                     "ci_low", "ci_high", "ci_adj_low", "ci_adj_high", "mde", "verdict", "margin", "low_rung", "high_rung",
                     "delta_low", "delta_high", "per_doubling", "per_doubling_low", "per_doubling_high", "p_adjusted",
                     "p_equivalence_adjusted", "alpha_used", "answer"]


def run_command(name: str, profile: str = "quick") -> str:
    """The command that runs one study of `ablations/` (quick is the default profile, so it goes unsaid)."""
    return f"nox -s ablations -- --only {name}" + (f" --profile {profile}" if profile not in ("quick", "–", "") else "")


def is_proxy(study) -> bool:
    """Whether the study trained proxies (study.json, else any row flagged proxy)."""
    if "proxy" in study.provenance:
        return tables.truthy(study.provenance["proxy"])
    if "proxy" in study.table.columns:
        return bool(study.table["proxy"].map(tables.truthy).any())
    return False


def profile_line(study) -> str:
    """The one-line profile description, with PROXY in it when the study trained proxies."""
    prov = study.provenance
    line = prov.get("profile_description")
    if not isinstance(line, str) or not line.strip():
        configs = []
        if "train_config" in study.table.columns:
            configs = sorted({str(c) for c in study.table["train_config"].dropna() if isinstance(c, str) and c})
        if configs:
            line = " | ".join(configs)
        elif study.profile != "–":
            line = f"{study.profile} profile (no profile description recorded)"
        else:
            line = "not recorded"
    overrides = prov.get("profile_overrides")
    if isinstance(overrides, list) and overrides and "overrides" not in line:
        line += "; study overrides: " + ", ".join(map(str, overrides))
    cli = prov.get("cli_overrides")
    if isinstance(cli, list) and cli:  # `study run --set`: not in the study file, so say so
        line += "; overridden on the command line: --set " + ", --set ".join(map(str, cli))
    if is_proxy(study) and "PROXY" not in line:
        line = "PROXY · " + line
    return line


def compare_study(study) -> tuple[pd.DataFrame, list[str]]:
    """Every contrast of a grid study (one row each, `_FRAME_COLUMNS`) and notes on axes that could not be compared.

    Uses the study's equivalence margin; rows follow the spec's variant order, then the datasets' order.
    """
    frames, notes = [], []
    for axis, result in by_axis(study).items():
        if isinstance(result, str):
            notes.append(f"{axis}: {result}")
            continue
        frames.append(result)
    if not frames:
        return pd.DataFrame(columns=_FRAME_COLUMNS), notes
    result = pd.concat(frames, ignore_index=True)
    groups = result[["dataset", "degradation"]].astype(str).drop_duplicates()
    several_groups, several_axes = len(groups) > 1, len(frames) > 1
    records = []
    for r in result.to_dict("records"):
        where = _where(r)
        rung = "" if display.missing(r.get("rung")) else str(r.get("rung") or "")
        label = f"{r['variant']} {MINUS} {r['reference']}"
        if several_groups:
            label += f" · {where}"
        if rung:
            label += f" · at {rung}"
        if several_axes:
            label = f"{r['axis']}: {label}"
        records.append({
            "study": study.name, "axis": r["axis"], "dataset": r["dataset"], "degradation": r["degradation"],
            "contrast": label, "kind": "contrast", "scale": rung or scale_of(study), "rung": rung,
            "variant": r["variant"], "reference": r["reference"],
            "n": int(r["n_variant"]) if r["paired"] else int(min(r["n_variant"], r["n_reference"])),
            "n_variant": int(r["n_variant"]), "n_reference": int(r["n_reference"]), "paired": bool(r["paired"]),
            "delta": r["diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "mde": r["mde"],
            "verdict": str(r["verdict"]), "margin": r["margin"],
            "answer": answer(r, where if several_groups else "") + capacity_note(study, str(r["variant"]), str(r["reference"])),
        })
    return pd.DataFrame(records, columns=_FRAME_COLUMNS), notes


def _cost(study, label: str) -> dict[str, float]:
    """A variant's params and FLOPs as trained (study.json's variants, else the medians of its ok rows)."""
    variants = study.provenance.get("variants")
    info = variants.get(label) if isinstance(variants, dict) else None
    if isinstance(info, dict):
        return {k: number(info.get(k)) for k in ("params", "flops")}
    rows = study.table[(study.table["variant"].astype(str) == label) & (study.table["status"] == "ok")]
    return {k: float(pd.to_numeric(rows[k], errors="coerce").median()) if k in rows and len(rows) else math.nan
            for k in ("params", "flops")}


def capacity_note(study, variant: str, reference: str) -> str:
    """What a verdict must say when the networks compared differ in cost beyond the matching tolerance (matched on
    the other cost, or not matched): " Its params are 1.95× the reference's (FLOPs 1.00×).", else ""."""
    mine, theirs = _cost(study, variant), _cost(study, reference)
    ratios = {k: mine[k] / theirs[k] for k in ("params", "flops")
              if all(math.isfinite(x) and x > 0 for x in (mine[k], theirs[k]))}
    off = {k: r for k, r in ratios.items() if abs(r - 1) > TOLERANCE}
    if not off:
        return ""
    names = {"params": "params", "flops": "FLOPs"}
    shown = ", ".join(f"{names[k]} {r:.2f}×" for k, r in ratios.items())
    return (f" Not like for like: its {' and '.join(names[k] for k in off)} differ from {_object(reference)}'s "
            f"by more than ±{TOLERANCE:.0%} ({shown}), so the difference may be one of size, not design.")


def transfer_study(study) -> pd.DataFrame:
    """Every contrast of a ladder study from its lowest to its highest rung (`stats.transfer_axis`), one record each
    (`_TRANSFER_COLUMNS`) with a one-line answer; empty for a study without a ladder. Computed once per study."""
    return once(study, "transfer", lambda: _transfer_study(study))


def _transfer_study(study) -> pd.DataFrame:
    if not kind_of(study).contrasts or "rung" not in study.table.columns:
        return pd.DataFrame(columns=_TRANSFER_COLUMNS)
    margin = equivalence_margin(study.provenance)
    records = []
    for axis in contrast_axes(study):
        try:
            result = stats.transfer_axis(study.table, axis, margin=margin)
        except ValueError:
            continue
        for r in ordered(result, study, axis).to_dict("records") if len(result) else []:
            where = _where(r)
            records.append({
                "study": study.name, "axis": axis, "dataset": r["dataset"], "degradation": r["degradation"],
                "contrast": f"{r['variant']} {MINUS} {r['reference']}: {r['low_rung']} → {r['high_rung']}",
                "kind": "transfer", "variant": r["variant"], "reference": r["reference"], "n": int(r["n"]),
                "delta": r["change"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "ci_adj_low": r["ci_adj_low"],
                "ci_adj_high": r["ci_adj_high"], "mde": r["mde"], "verdict": r["verdict"], "margin": r["margin"],
                "low_rung": r["low_rung"], "high_rung": r["high_rung"], "delta_low": r["delta_low"],
                "delta_high": r["delta_high"], "per_doubling": r["per_doubling"], "per_doubling_low": r["per_doubling_low"],
                "per_doubling_high": r["per_doubling_high"], "p_adjusted": r["p_adjusted"],
                "p_equivalence_adjusted": r["p_equivalence_adjusted"], "alpha_used": r["alpha_used"],
                "answer": transfer_answer(r, where if len(result[["dataset", "degradation"]].drop_duplicates()) > 1 else ""),
            })
    return pd.DataFrame(records, columns=_TRANSFER_COLUMNS)


def transfer_answer(record: dict, where: str = "") -> str:
    """A transfer verdict in one sentence: how Δ moved from the lowest to the highest rung, and what that means."""
    variant, target = str(record["variant"]), _object(str(record["reference"]))
    on = f" on {where}" if where else ""
    moved = (f"Δ {_signed(record['delta_low'])} at {record['low_rung']} → {_signed(record['delta_high'])} at "
             f"{record['high_rung']}; change {_signed(record['change'])} "
             f"[95 % CI {_signed(record['ci_low'])}, {_signed(record['ci_high'])}], n = {record['n']} seeds")
    verdict = record["verdict"]
    if verdict == stats.HOLDS:
        return (f"{_subject(variant)} vs {target}{on} holds across rungs: its Δ changes by less than "
                f"±{record['margin']:g} points as the budget grows ({moved}).")
    if verdict == stats.SCALE_DEPENDENT:
        return (f"{_subject(variant)} vs {target}{on} is scale-dependent: its Δ moves by "
                f"{_signed(record['per_doubling'])} points per doubling [95 % CI {_signed(record['per_doubling_low'])}, "
                f"{_signed(record['per_doubling_high'])}] ({moved}): a verdict at one rung does not stand for the others.")
    if verdict == stats.INSUFFICIENT:
        return f"Insufficient data: {variant} vs {target}{on} needs two seeds with all four cells of both rungs."
    mde = "MDE not computable" if display.missing(record["mde"]) else f"MDE {record['mde']:.1f} pts"
    return (f"Inconclusive: the data cannot tell whether {variant} vs {target}{on} holds as the budget grows "
            f"({moved}; {mde}, margin ±{record['margin']:g}).")


def _where(record: dict) -> str:
    where = display.text(record.get("dataset"))
    degradation = record.get("degradation")
    if not display.missing(degradation) and str(degradation) != tables.CLEAN:
        where += f", {degradation}"
    return where


# --- one-line answers ----------------------------------------------------------------------------


def _signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", MINUS)


def _ci(record: dict) -> str:
    low, high, clipped = stats.clip_interval(record["ci_low"], record["ci_high"], tables.DIFFERENCE_BOUNDS)
    return f"[95 % CI {_signed(low)}, {_signed(high)}{', cut to ±100' if clipped else ''}]"


def _identifier(label: str) -> bool:
    """A code name such as "lrnet_paper" or "spec:{3}": never capitalised, never given an article."""
    word = label.split(" ")[0]
    return "_" in word or ":" in word


def _subject(label: str) -> str:
    return label[:1].upper() + label[1:] if label[:1].islower() and not _identifier(label) else label


def _object(label: str) -> str:
    """"paper block" reads "the paper block"; names like "lrnet_paper" or "{3,5,7}" stay as they are."""
    return f"the {label}" if label[:1].islower() and " " in label and not _identifier(label) else label


def answer(record: dict, where: str = "") -> str:
    """The contrast in one sentence, e.g. "No links is worse than the paper block by 4.1 points [95 % CI −6.0, −2.2]"."""
    variant, reference = str(record["variant"]), str(record["reference"])
    on = f" on {where}" if where else ""
    kind = tables.verdict_kind(record["verdict"])
    # the reference as the object of the sentence ("the paper block"), or a phrase given with the record
    target = record.get("reference_phrase") or _object(reference)
    diff = record["diff"]
    if kind in ("better", "worse"):
        small = (not display.missing(record.get("margin")) and -record["margin"] < record["ci_low"]
                 and record["ci_high"] < record["margin"])
        return (f"{_subject(variant)} is {kind} than {target}{on} by {abs(diff):.1f} points "
                f"{_ci(record)}" + (f": a real but small difference, its whole CI inside the ±{record['margin']:g}-point "
                                    "equivalence margin." if small else "."))
    if kind == "equivalent":
        return (f"{_subject(variant)} is equivalent to {target}{on} within ±{record['margin']:g} points "
                f"(Δ {_signed(diff)} {_ci(record)}).")
    if kind == "insufficient":
        return (f"Insufficient data: {variant} vs {target}{on} has fewer than 2 runs on a side "
                f"({record['n_variant']} vs {record['n_reference']}).")
    mde = "MDE not computable" if display.missing(record["mde"]) else \
        f"MDE {'> 100' if record['mde'] > 100 else format(record['mde'], '.1f')} pts"
    return (f"Inconclusive: the data cannot tell {variant} from {target}{on} "
            f"(Δ {_signed(diff)} {_ci(record)}; {mde}, equivalence margin ±{record['margin']:g}).")


def verdict_counts(verdicts: Iterable[str], margin: float | None = None) -> str:
    """ "1 better, 1 worse, 0 equivalent (±3 pts), 2 inconclusive (of 4 comparisons)"."""
    kinds = [tables.verdict_kind(v) for v in verdicts]
    equivalent = "equivalent" + (f" (±{margin:g} pts)" if margin is not None else "")
    text = (f"{kinds.count('better')} better, {kinds.count('worse')} worse, {kinds.count('equivalent')} {equivalent}, "
            f"{kinds.count('inconclusive')} inconclusive")
    if kinds.count("insufficient"):
        text += f", {kinds.count('insufficient')} with fewer than 2 runs on a side"
    return text + f" (of {len(kinds)} comparison{'s' if len(kinds) != 1 else ''})"


# --- costs ---------------------------------------------------------------------------------------

_COST_FIELDS = ("flops", "params", "raw_flops", "raw_params")


def costs(study) -> list[dict[str, str]]:
    """What each variant cost, matched and raw: from study.json "variants", else the medians of its rows."""
    variants = study.provenance.get("variants")
    records = []
    if isinstance(variants, dict) and variants:
        for label, info in variants.items():
            info = info if isinstance(info, dict) else {}
            records.append({"variant": str(label), **{k: info.get(k) for k in
                                                       ("network", "match", "width_multiplier", *_COST_FIELDS)}})
    else:
        rows = study.table[study.table["axis"].isin(contrast_axes(study))]
        rows = rows[rows["status"] == "ok"]
        for label, group in rows.groupby(rows["variant"].astype(str), sort=False):
            record = {"variant": label, "network": _first(group, "model"), "match": _first(group, "match"),
                      "width_multiplier": _first(group, "width_multiplier")}
            for key in _COST_FIELDS:
                values = pd.to_numeric(group[key], errors="coerce").dropna() if key in group else pd.Series(dtype=float)
                record[key] = float(values.median()) if len(values) else None
            records.append(record)
    out = []
    for r in records:
        if all(display.missing(number(r.get(k))) for k in _COST_FIELDS):
            continue
        match = str(r.get("match") or "")
        width = number(r.get("width_multiplier"))
        out.append({
            "variant": r["variant"], "network": display.text(r.get("network")),
            "match": {"flops": "FLOPs", "params": "params"}.get(match, match or "–"),
            "width": "–" if display.missing(width) else f"×{width:.3g}",
            "mflops": display.mega(number(r.get("flops"))), "params": display.count(number(r.get("params"))),
            "raw_mflops": display.mega(number(r.get("raw_flops"))),
            "raw_params": display.count(number(r.get("raw_params"))),
            "matched": bool(match),
        })
    return out


def _first(group: pd.DataFrame, column: str) -> Any:
    if column not in group.columns:
        return None
    values = group[column].dropna()
    return values.iloc[0] if len(values) else None


def number(value: Any) -> float:
    """A value as a float, nan when it is none."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


# --- the whole run -------------------------------------------------------------------------------


def order(studies: list) -> list:
    """The contrasts study (by axis or name) first, then the others by name."""
    def key(s):
        lead = s.provenance.get("axis") == CONTRASTS_STUDY or s.name == CONTRASTS_STUDY
        return (not lead, s.name)

    return sorted(studies, key=key)


def summarise(study, link: str | None, siblings: Iterable = ()) -> dict[str, Any]:
    """Everything the index shows about one study; `siblings` (the run's other studies) may hold the ladder
    study that checks whether its verdicts hold at a larger scale."""
    prov, table = study.provenance, study.table
    kind = kind_of(study)
    margin = equivalence_margin(prov)
    frame, notes = compare_study(study) if len(table) else (pd.DataFrame(columns=_FRAME_COLUMNS), [])
    transfer = transfer_study(study) if len(table) else pd.DataFrame(columns=_TRANSFER_COLUMNS)
    findings = kind.findings(study) if not kind.contrasts and len(table) else []
    if not kind.contrasts and len(table):
        notes = [] if findings else [f"A {kind.name} study: no pre-registered contrasts; its page has the results."]
    elif not len(table):
        notes = ["No results yet."]
    elif frame.empty and not notes:
        notes = ["No ablation axis with ok rows in this study: nothing to compare."]
    notes = [*getattr(study, "problems", []), *notes]
    seeds = prov.get("seeds")
    datasets = prov.get("datasets")
    datasets = sorted(datasets) if isinstance(datasets, dict) and datasets else \
        tables.dataset_order(table["dataset"].dropna().astype(str))
    contrasts = [{
        "contrast": r["contrast"],
        "n": f"{r['n']}" if r["paired"] else f"{r['n_variant']} / {r['n_reference']} (unpaired)",
        "delta": display.pts(r["delta"], signed=True),
        "ci": display.difference_interval(r["ci_low"], r["ci_high"]),
        "mde": display.mde(r["mde"]), "verdict": r["verdict"], "scale": r["scale"],
        "kind": tables.verdict_kind(r["verdict"]), "css": display.verdict_class(r["verdict"], r["delta"], r["mde"]),
        "answer": r["answer"],
    } for r in frame.to_dict("records")]
    transfers = [{
        "contrast": r["contrast"], "n": str(r["n"]), "delta": display.pts(r["delta"], signed=True),
        "ci": display.difference_interval(r["ci_low"], r["ci_high"]),
        "ci_adj": display.difference_interval(r["ci_adj_low"], r["ci_adj_high"]),
        "per_doubling": display.pts(r["per_doubling"], signed=True), "mde": display.mde(r["mde"]),
        "verdict": r["verdict"], "kind": transfer_kind(r["verdict"]), "answer": r["answer"],
    } for r in transfer.to_dict("records")]
    return {
        "name": study.name, "anchor": "study-" + "".join(c if c.isalnum() else "-" for c in study.name),
        "link": link, "kind": kind.name, "compares": kind.contrasts,
        "description": str(prov.get("description") or "no description recorded (an older run)"),
        "profile": profile_line(study), "proxy": is_proxy(study),
        "ok": int((table["status"] == "ok").sum()), "total": len(table),
        "cells_total": display.text(prov.get("cells_total")), "updated": study.last_update,
        "datasets": ", ".join(map(str, datasets)) or "–",
        "seeds": f"{len(seeds)} ({', '.join(map(str, seeds))})" if isinstance(seeds, list) and seeds else
        display.text(table["seed"].nunique() if len(table) else None),
        "margin": f"{margin:g}", "margin_line": margin_line(study, frame) if len(frame) else "",
        "contrasts": contrasts, "notes": notes, "findings": findings,
        "transfers": transfers, "transfer_frame": transfer,
        "scale_check": scale_check(study, frame, siblings) if len(frame) and not len(transfer) else None,
        "clipped": any(c["ci"].endswith(display.CLIPPED) for c in contrasts),
        "counts": verdict_counts(frame["verdict"], margin) if len(frame) else "",
        "costs": costs(study) if len(table) or prov.get("variants") else [], "costs_csv": None,
        "frame": frame,
    }


def not_run(found: Iterable[str], available: Iterable[str] | None = None) -> list[dict[str, str]]:
    """Studies of `ablations/` with no run directory: name, question and the command that runs them."""
    names = list_studies() if available is None else list(available)
    found = set(found)
    return [{"name": name, "description": _toml_description(studies_folder() / f"{name}.toml"),
             "command": run_command(name)} for name in names if name not in found]


def _toml_description(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh).get("study", {})
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    return str(table.get("description", "")) if isinstance(table, dict) else ""


def contrasts_csv(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per contrast (per rung) of every grid study, the contrasts study first, then its transfer rows
    (`CSV_COLUMNS`)."""
    frames = [f for s in summaries if s["compares"] for f in (s["frame"], s["transfer_frame"]) if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(CSV_COLUMNS))
    out = pd.concat([f.reindex(columns=list(CSV_COLUMNS)) for f in frames], ignore_index=True)
    # Points to 1e-4: beyond any precision the data has, and free of float noise (0.07999999999999545).
    numbers = ["delta", "ci_low", "ci_high", "mde", "delta_low", "delta_high", "per_doubling", "per_doubling_low",
               "per_doubling_high"]
    out[numbers] = out[numbers].apply(pd.to_numeric, errors="coerce").round(4)
    return out


# --- does a verdict hold at a larger scale? ------------------------------------------------------


def margin_line(study, frame: pd.DataFrame) -> str:
    """The equivalence margin on both scales, with its reason: "±3 points (±16 % of the reference's error rate,
    18.6 %): <reason>"."""
    margin = equivalence_margin(study.provenance)
    rows = tables.ok_rows(study.table)
    reference = rows[rows["is_reference"].map(tables.truthy)] if "is_reference" in rows.columns else rows.iloc[0:0]
    accuracy = pd.to_numeric(reference.get("test_accuracy", pd.Series(dtype=float)), errors="coerce").mean() * 100
    line = f"±{margin:g} points"
    if math.isfinite(accuracy) and accuracy < 100:
        line += f" (±{100 * margin / (100 - accuracy):.0f} % of the reference's error rate, {100 - accuracy:.1f} %)"
    reason = study.provenance.get("margin_reason")
    return line + (f": {reason}" if isinstance(reason, str) and reason else ": no reason recorded in the study file")


def transfer_kind(verdict: str) -> str:
    """The badge class of a transfer verdict: holds reads as agreement, scale-dependent as a warning."""
    return {stats.HOLDS: "equivalent", stats.SCALE_DEPENDENT: "worse"}.get(verdict, tables.verdict_kind(verdict))


def scale_check(study, frame: pd.DataFrame, siblings: Iterable) -> dict[str, Any]:
    """For a study measured at one scale: the transfer verdicts of the run's ladder study on the same axis and
    variants, or else the one command that checks them (with its estimated time)."""
    variants = set(frame["variant"].astype(str))
    axis = study.provenance.get("axis") or (frame["axis"].iloc[0] if len(frame) else "")
    for other in siblings:
        if other is study or other.provenance.get("axis") != axis or not len(other.table):
            continue
        transfer = transfer_study(other)
        transfer = transfer[transfer["variant"].astype(str).isin(variants)]
        if len(transfer):
            by_variant = {r["variant"]: r for r in transfer.to_dict("records")}
            return {"study": other.name, "verdicts": [
                {"contrast": r["contrast"], "verdict": r["verdict"], "kind": transfer_kind(r["verdict"]),
                 "answer": r["answer"]} for r in by_variant.values()]}
    ladder = ladder_study_for(str(axis), study.profile)
    if ladder is None:
        return {"study": None, "verdicts": [], "command": None}
    name, minutes = ladder
    return {"study": name, "verdicts": [], "command": run_command(name, study.profile),
            "minutes": minutes}


def ladder_study_for(axis: str, profile: str) -> tuple[str, str] | None:
    """The study of `ablations/` whose ladder checks an axis under a profile, and its expected time as its file
    states it (`[study] expected_min`)."""
    for name in list_studies():
        try:
            with (studies_folder() / f"{name}.toml").open("rb") as fh:
                doc = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError):
            continue
        table, profiles = doc.get("study", {}), doc.get("profiles", {})
        if (isinstance(table, dict) and table.get("axis") == axis and isinstance(profiles, dict)
                and isinstance(profiles.get(profile), dict) and profiles[profile].get("rungs")):
            minutes = table.get("expected_min", {})
            minutes = minutes.get(profile) if isinstance(minutes, dict) else None
            return name, f"~{minutes:g} min" if isinstance(minutes, (int, float)) else "see its file for the expected time"
    return None
