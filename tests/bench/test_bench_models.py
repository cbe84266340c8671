"""Training and inference img/s of `lrnet_paper`: the plain fp32 build against the kit's fast setting
(`study.fast`), batch 128 on the CPU. Run with `pytest tests/bench --benchmark-only`.

Each benchmark records both settings' img/s (medians of several timed repeats, measured
alternately so a burst of load on a shared machine hits both) in `benchmark.extra_info`.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from study import fast
from study.measure import time_inference, time_training
from study.models import build_model

BATCH = 128
ROUNDS = 2  # alternating plain/fast rounds; each round times `repeats` × `steps` batches


def _settings(mode: str) -> dict[str, tuple[torch.nn.Module, str]]:
    torch.manual_seed(0)
    plain = build_model("lrnet_paper")
    precision, _, _ = fast.fast_setting("cpu")
    return {"plain_fp32": (plain, "fp32"), "fast": (fast.optimize(build_model("lrnet_paper"), mode), precision)}


def _compare(benchmark, mode: str) -> dict[str, float]:
    timer = time_training if mode == "train" else time_inference
    steps = {"train": dict(steps=1, warmup=1, repeats=3), "infer": dict(steps=2, warmup=1, repeats=3)}[mode]
    settings = _settings(mode)
    rates: dict[str, list[float]] = {name: [] for name in settings}

    def one_round() -> None:
        for name, (model, precision) in settings.items():
            rates[name].append(timer(model, BATCH, precision=precision, **steps)["img_per_s"])

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    medians = {name: statistics.median(r) for name, r in rates.items()}
    benchmark.extra_info.update({f"{mode}_img_per_s_{name}": round(v, 1) for name, v in medians.items()})
    benchmark.extra_info[f"{mode}_speedup"] = round(medians["fast"] / medians["plain_fp32"], 2)
    benchmark.extra_info["threads"] = torch.get_num_threads()
    return medians


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_lrnet_paper_fast_setting_beats_plain(benchmark, mode):
    medians = _compare(benchmark, mode)
    assert medians["fast"] > medians["plain_fp32"], medians
