"""The quick profile's promise: lrnet_paper on real Fashion-MNIST, >= 80% test accuracy within 3 minutes."""

from __future__ import annotations

from study.train import PROFILES, train


def test_quick_profile_wall_time_and_accuracy(benchmark, fashion_root):
    result = benchmark.pedantic(lambda: train("lrnet_paper", "fashion-mnist", cfg=PROFILES["quick"], seed=0),
                                rounds=1, iterations=1)
    benchmark.extra_info.update({k: result[k] for k in ("test_accuracy", "wall_s", "train_img_per_s", "infer_img_per_s")})
    assert result["test_accuracy"] >= 0.80
    assert result["wall_s"] <= 180, f"quick profile took {result['wall_s']:.0f} s (> 3 minutes)"
