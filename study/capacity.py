"""Width scaling and capacity matching of MK networks.

A profile's proxy scales every MK network's widths (`scaled`); an ablation variant that changes
the block (a single kernel, no links) also changes its size, so a variant may ask to be matched
to the reference's FLOPs or params (`matched`): its widths are scaled until its analytic cost is
within a tolerance of the reference's. The comparison then speaks about the architecture, not
about capacity. Costs are the analytic `network_complexity` (equal to fvcore's count).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

from study.blocks import activation_elements, network_complexity
from study.errors import SpecError
from study.spec import NetworkSpec

Match = Literal["flops", "params"]
MATCHES: tuple[str, ...] = ("flops", "params")
TOLERANCE = 0.05  # a matched variant is within ±5 % of the reference's cost
#: The largest network the kit builds unless STUDY_MAX_PARAMS / STUDY_MAX_FLOPS say otherwise: ~100×
#: the paper's parameters and ~1000× its FLOPs. A typo (a width ×1e4) is refused before any allocation.
MAX_PARAMS = 100_000_000
MAX_FLOPS = 300_000_000_000
#: Elements of the tensors one training image creates (~25× the paper network's 1.18 M): at batch 128 in
#: fp32 that is ~15 GB, so a 28×28 input typed as 2800 is refused, not swapped to death.
MAX_ACTIVATIONS = 30_000_000


def check_size(spec: NetworkSpec, where: str = "spec") -> None:
    """Refuse, from the analytic counts and before anything is allocated, a network past the size limits."""
    cost = {**network_complexity(spec), "activations": activation_elements(spec)}
    for key, env, default in (("params", "STUDY_MAX_PARAMS", MAX_PARAMS), ("flops", "STUDY_MAX_FLOPS", MAX_FLOPS),
                              ("activations", "STUDY_MAX_ACTIVATIONS", MAX_ACTIVATIONS)):
        limit = _limit(env, default)
        if cost[key] > limit:
            what = "activation elements per image" if key == "activations" else key
            raise SpecError(f"{where}: the network has {cost[key]:,} {what}, over the limit of {limit:,}; allowed: "
                            f"smaller widths, blocks or inputs (or raise the limit with {env}=N)")


def _limit(env: str, default: int) -> int:
    text = os.environ.get(env, "")
    return int(float(text)) if text.replace(".", "", 1).replace("e", "", 1).isdigit() else default


def scaled(spec: NetworkSpec, factor: float) -> NetworkSpec:
    """The network with every block's width multiplier multiplied by `factor` (1.0: unchanged)."""
    if factor == 1.0:
        return spec
    blocks = tuple(dataclasses.replace(b, width_multiplier=round(b.width_multiplier * factor, 6)) for b in spec.blocks)
    return dataclasses.replace(spec, blocks=blocks)


def width_named(spec: NetworkSpec, base_name: str | None = None) -> NetworkSpec:
    """The network renamed "name ×w" after its width: a proxy or matched network is not the one named."""
    return dataclasses.replace(spec, name=f"{base_name or spec.name} ×{spec.blocks[0].width_multiplier:.3g}")


def matched(spec: NetworkSpec, reference: NetworkSpec, match: Match, where: str = "spec",
            tolerance: float = TOLERANCE) -> NetworkSpec:
    """`spec` with its widths scaled so its `match` cost is as close as it gets to the reference's.

    Widths are integers, so the cost is a step function of the scale: a bisection brackets the
    target, a scan of its neighbourhood finds the nearest step, and a result outside ±`tolerance`
    is a one-line SpecError.
    """
    if match not in MATCHES:
        raise SpecError.at(where, "match", f"got {match!r}", ', '.join(MATCHES))
    target = network_complexity(reference)[match]

    def cost(factor: float) -> int:
        return network_complexity(scaled(spec, factor))[match]

    low, high = 1 / 64, 64.0
    if not cost(low) <= target <= cost(high):
        raise SpecError(f"{where}: match = {match!r}: no width scale in [1/64, 64] reaches the reference's "
                        f"{target:,} {match}; allowed: a variant whose {match} grow with its widths")
    for _ in range(60):
        mid = (low * high) ** 0.5
        low, high = (mid, high) if cost(mid) < target else (low, mid)
    # integer widths round at different scales per stage, so the cost is not monotone near the
    # target: look at the neighbourhood of the bisection's answer for the nearest step
    candidates = [low * 1.5 ** (i / 200) for i in range(-200, 201)]
    best = min(candidates, key=lambda f: (abs(cost(f) - target), abs(f - low)))
    error = cost(best) / target - 1
    if abs(error) > tolerance:
        raise SpecError(f"{where}: match = {match!r}: the nearest width scale ×{best:.3f} gives {cost(best):,} {match}, "
                        f"{error:+.1%} from the reference's {target:,}; allowed: variants matchable within ±{tolerance:.0%}")
    return scaled(spec, best)
