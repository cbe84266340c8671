"""Training and inference img/s of `lrnet_paper` (batch 128) and of the default study's proxy (the paper
network at the quick profile's width ×0.25, at its batch 32, with the process's threads and with one thread as
the study's workers run it): the plain fp32 eager build and plain bf16
autocast against the kit's fast setting (`study.fast`), in the same process, on the CPU. Run with `nox -s bench`.

Each benchmark records both settings' img/s (medians of several timed repeats, measured
alternately so a burst of load on a shared machine hits both) in `benchmark.extra_info`.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from study import fast
from study.capacity import scaled
from study.measure import time_inference, time_training
from study.models import PAPER, build_model
from study.profiles import PROFILES

_PROXY = scaled(PAPER, PROFILES["quick"].width)
#: name -> (network, batch, torch threads: None = the process's); "proxy_1_thread" is how the default study's two
#: single-thread workers train it
NETWORKS = {"lrnet_paper": (PAPER, 128, None), "proxy": (_PROXY, PROFILES["quick"].train.batch_size, None),
            "proxy_1_thread": (_PROXY, PROFILES["quick"].train.batch_size, 1)}
ROUNDS = 2  # alternating plain/fast rounds; each round times `repeats` × `steps` batches


def _settings(mode: str, spec) -> dict[str, tuple[torch.nn.Module, str]]:
    torch.manual_seed(0)
    plain = build_model(spec)
    precision, _, _ = fast.fast_setting("cpu")
    # plain_bf16 is bf16 autocast on the plain build: what the quick profile trained until the proxy took the fast path
    return {"plain_fp32": (plain, "fp32"), "plain_bf16": (plain, "bf16"), "fast": (fast.optimize(build_model(spec), mode), precision)}


def _compare(benchmark, mode: str, network: str) -> dict[str, float]:
    timer = time_training if mode == "train" else time_inference
    steps = {"train": dict(steps=1, warmup=1, repeats=3), "infer": dict(steps=2, warmup=1, repeats=3)}[mode]
    spec, batch, threads = NETWORKS[network]
    settings = _settings(mode, spec)
    rates: dict[str, list[float]] = {name: [] for name in settings}

    def one_round() -> None:
        for name, (model, precision) in settings.items():
            rates[name].append(timer(model, batch, precision=precision, **steps)["img_per_s"])

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
        benchmark.extra_info["threads"] = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    medians = {name: statistics.median(r) for name, r in rates.items()}
    benchmark.extra_info.update({f"{mode}_img_per_s_{name}": round(v, 1) for name, v in medians.items()})
    benchmark.extra_info[f"{mode}_speedup"] = round(medians["fast"] / medians["plain_fp32"], 2)
    benchmark.extra_info[f"{mode}_speedup_over_plain_bf16"] = round(medians["fast"] / medians["plain_bf16"], 2)
    benchmark.extra_info.update(network=network, batch=batch)
    return medians


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("mode", ["train", "infer"])
def test_fast_setting_beats_plain_fp32_eager(benchmark, mode, network):
    medians = _compare(benchmark, mode, network)
    if network == "lrnet_paper":  # the proxy's figures are recorded, not asserted: small convolutions may not gain
        assert medians["fast"] > medians["plain_fp32"], medians
