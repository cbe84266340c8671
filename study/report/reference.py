"""Reference measurements from other machines, committed under `results/`: what a lent GPU measured with
`study gpu` (`results/gpu/*.json`) outlives its session and is shown beside the CPU run's own numbers.

A rehearsal (`--tiny`) is never shown as a measurement; an unreadable file is named, not skipped silently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from study.report import display
from study.report.html import Note, frame_table

#: The committed GPU checks, relative to the directory the report runs from (as `runs/` is).
GPU_RESULTS = Path("results") / "gpu"
_HOW = "`nox -s gpu` on a GPU machine writes one (docs/gpu.md); commit its JSON under results/gpu/"


def load_gpu_checks(folder: Path) -> tuple[list[dict], list[str]]:
    """(the checks to show, oldest first; one line per file left out and why)."""
    checks, left_out = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            left_out.append(f"{path.name}: unreadable ({err})")
            continue
        if not (isinstance(doc, dict) and isinstance(doc.get("throughput"), list)
                and "device_name" in (doc.get("provenance") or {})):
            left_out.append(f"{path.name}: not a GPU check (no throughput rows or no provenance)")
            continue
        if doc.get("tiny"):
            left_out.append(f"{path.name}: a --tiny rehearsal on {doc['device']}, its numbers mean nothing")
            continue
        checks.append({**doc, "file": path.name})
    return checks, left_out


def gpu_frame(checks: list[dict], cpu: pd.DataFrame) -> pd.DataFrame:
    """One row per model and batch of every check, with the CPU fast-path rates of the same model from this
    run's Table II (`cpu`, NaN where it was not measured) and the GPU/CPU ratio of training."""
    rows = [{"model": r["model"], "batch": r["batch"], "train_img_per_s": r["train_img_per_s"],
             "infer_img_per_s": r["infer_img_per_s"], "device": c["provenance"]["device_name"],
             "measured": f"{c.get('started', '?')}, torch {c['provenance'].get('torch_version', '?')}, "
                         f"commit {c['provenance'].get('git_commit', '?')}"}
            for c in checks for r in c["throughput"]]
    frame = pd.DataFrame(rows, columns=["model", "batch", "train_img_per_s", "infer_img_per_s", "device", "measured"])
    rates = cpu.set_index("model") if len(cpu) else pd.DataFrame(columns=["train_img_per_s_fast", "infer_img_per_s_fast"])
    frame["cpu_train_img_per_s"] = frame["model"].map(rates["train_img_per_s_fast"]).astype(float)
    frame["cpu_infer_img_per_s"] = frame["model"].map(rates["infer_img_per_s_fast"]).astype(float)
    frame["train_ratio"] = frame["train_img_per_s"] / frame["cpu_train_img_per_s"]
    return frame


def gpu_blocks(folder: Path, cpu: pd.DataFrame) -> list:
    """The index's "Reference measurements from a GPU" blocks: a note when none is committed, else the
    throughput table beside the CPU and each check's time to accuracy."""
    checks, left_out = load_gpu_checks(folder)
    blocks: list = [Note(f"Left out of {folder}/:", "warn", left_out)] if left_out else []
    if not checks:
        return [*blocks, Note(f"No GPU measurement is committed yet ({folder}/): {_HOW}.", "info")]
    columns = {"model": ("model", display.text), "batch": ("batch", display.count),
               "train img/s": ("train_img_per_s", display.rate), "inference img/s": ("infer_img_per_s", display.rate),
               "CPU train img/s, fast": ("cpu_train_img_per_s", display.rate),
               "CPU inference img/s, fast": ("cpu_infer_img_per_s", display.rate),
               "train GPU/CPU": lambda r: f"{r['train_ratio']:.1f}×" if pd.notna(r["train_ratio"]) else "–",
               "device": ("device", display.text), "measured": ("measured", display.text)}
    blocks.append(frame_table(gpu_frame(checks, cpu), columns, caption=(
        f"Throughput measured by `study gpu` on a GPU (fast setting: bf16, channels_last, torch.compile), from "
        f"{folder}/; the CPU columns are this run's Table II fast-path rates of the same model (– where this run "
        "profiled none), measured at Table II's batch, which may differ from the GPU row's.")))
    for c in checks:
        t = c.get("time_to_accuracy")
        if t:
            blocks.append(Note(
                f"{c['file']}: {t['model']} on Fashion-MNIST, mean test accuracy {100 * t['mean_test_accuracy']:.2f} % over "
                f"{t['seeds']} of {t.get('seeds_planned', t['seeds'])} seeds, {t['mean_train_seconds']:.1f} s of training per seed: "
                f"{'reached' if t['reached'] else 'missed'} the {100 * t['target']:.1f} % target.", "info"))
        if c.get("skipped"):
            blocks.append(Note(f"{c['file']}: not measured (its budget ran out first): {', '.join(c['skipped'])}.", "warn"))
        if c.get("errors"):
            blocks.append(Note(f"{c['file']}: failed measurements:", "warn", c["errors"]))
    return blocks
