"""The default study's proxy: trials per hour on this machine, and its img/s against the full-width network.

`nox -s bench` runs it; nothing here is a test of correctness (accuracy is asserted in tests/test_train.py,
where it cannot depend on the clock).
"""

from __future__ import annotations

import dataclasses

from study.capacity import scaled
from study.models import PAPER
from study.profiles import PROFILES
from study.studies import ABLATIONS, load_study
from study.train import train


def test_default_proxy_trials_per_hour(benchmark, fashion_root):
    """One trial of each contrast variant under the quick profile (seed 0), end to end as a study runs it."""
    variants = load_study(ABLATIONS / "contrasts.toml").resolved["quick"]
    cfg = PROFILES["quick"].train
    walls: dict[str, float] = {}

    def trials() -> None:
        for label, resolved in variants.items():
            walls[label] = train(resolved.model, "fashion-mnist", cfg=cfg, seed=0)["wall_s"]

    benchmark.pedantic(trials, rounds=1, iterations=1)
    per_seed = sum(walls.values())
    benchmark.extra_info.update({"trial_wall_s": walls, "seconds_per_paired_seed": per_seed,
                                 "trials_per_hour": 3600 * len(walls) / per_seed})
    print(f"\ndefault proxy: {per_seed:.0f} s per paired seed of {len(walls)} trials, "
          f"{3600 * len(walls) / per_seed:.0f} trials per hour")


def test_proxy_img_per_s_against_the_full_width_network(benchmark, fashion_root):
    """Training img/s of the ×0.25 proxy and of the paper's full-width LR-Net, same config, 60 steps each."""
    cfg = dataclasses.replace(PROFILES["quick"].train, train_subset=60 * PROFILES["quick"].train.batch_size)
    speeds: dict[str, float] = {}

    def both() -> None:
        for name, spec in (("proxy x0.25", scaled(PAPER, PROFILES["quick"].width)), ("full width", PAPER)):
            result = train(spec, "fashion-mnist", cfg=cfg, seed=0)
            speeds[name] = result["train_img_per_s"]
            speeds[f"{name} infer"] = result["infer_img_per_s"]

    benchmark.pedantic(both, rounds=1, iterations=1)
    benchmark.extra_info.update(speeds)
    print(f"\ntrain img/s: proxy {speeds['proxy x0.25']:.0f}, full width {speeds['full width']:.0f} "
          f"({speeds['proxy x0.25'] / speeds['full width']:.1f}x)")
