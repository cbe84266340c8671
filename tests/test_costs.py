"""Table II's protocol: every model profiled alike, each in its own process, and the table shows exactly what
`python -m study profile MODEL --json` measured; the speed claim treats a gap inside the noise as undecided."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from study import costs
from study.report import claims, tables
from study.results import load_rows

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_table_two_is_what_profile_json_measured_and_memory_is_each_models_own(tmp_path):
    path = tmp_path / "paper" / "costs.jsonl"
    # the larger model first: were memory a process-lifetime peak, the small one would inherit it
    assert costs.measure(["resnet18_scratch", "lrnet_half"], path, batch=2, repeats=1, settings=("stock",)) == 2
    assert costs.measure(["resnet18_scratch", "lrnet_half"], path, batch=2, repeats=1, settings=("stock",)) == 0
    rows = {r["model"]: r for r in load_rows(path)}
    assert rows["lrnet_half"]["peak_mem_mb"] < rows["resnet18_scratch"]["peak_mem_mb"]
    two = tables.table_two(pd.DataFrame(), pd.DataFrame(load_rows(path))).set_index("model")
    for model, row in rows.items():
        assert two.loc[model, "train_img_per_s"] == row["train_img_per_s"]
        assert two.loc[model, "peak_mem_mb"] == row["peak_mem_mb"] and two.loc[model, "source"] == "profiled alike"
    # the same command by hand gives the same counts (the speeds are the same function, measured again)
    proc = subprocess.run([sys.executable, "-m", "study", *rows["lrnet_half"]["command"].split()[2:]], cwd=REPO,
                          capture_output=True, text=True, check=True)
    again = json.loads(proc.stdout)
    assert (again["params"], again["flops"]) == (two.loc["lrnet_half", "params"], two.loc["lrnet_half", "flops"])


def test_the_speed_claim_calls_a_gap_inside_the_measured_spread_inconclusive():
    def claim(baseline_speed: float) -> str:
        frame = pd.DataFrame({"model": ["lrnet_paper", "vgg16_paper"], "params": [1e6, 1.5e7],
                              "train_img_per_s": [100.0, baseline_speed], "infer_img_per_s": [400.0, 100.0],
                              "spread_pct": [10.0, 5.0]})
        return next(c for c in claims.check_claims(pd.DataFrame(), frame, {"lrnet_paper", "vgg16_paper"})
                    if c.key == "speed").verdict

    assert claim(105.0) == claims.INCONCLUSIVE  # 0.95×: inside LR-Net's ±10 % spread
    assert claim(50.0) == claims.SUPPORTED
    assert claim(150.0) == claims.NOT_SUPPORTED
