"""Width scaling and capacity matching: matched variants cost what the reference costs, and say so."""

from __future__ import annotations

import pytest

from study import capacity
from study.blocks import MKNet, network_complexity
from study.errors import SpecError
from study.measure import count_flops, count_params
from study.models import PAPER
from study.spec import replace_blocks
from study.studies import ABLATIONS, load_study


@pytest.mark.parametrize("changes", [{"kernels": (3,)}, {"links": "none"}, {"links": "dense"}, {"kernels": (1, 3, 5, 7, 9)},
                                     {"norm": "group"}, {"links": "residual"}])
def test_analytic_network_cost_equals_fvcore(changes):
    spec = capacity.scaled(replace_blocks(PAPER, **changes), 0.3)
    model = MKNet(spec)
    assert network_complexity(spec) == {"flops": count_flops(model)["flops"], "params": count_params(model)["params"]}


@pytest.mark.parametrize("match", ["flops", "params"])
@pytest.mark.parametrize("changes", [{"kernels": (3,)}, {"links": "none"}, {"kernels": (3, 5)}])
def test_matched_variant_is_within_five_percent_of_the_reference(match, changes):
    reference = capacity.scaled(PAPER, 0.25)
    variant = capacity.scaled(replace_blocks(PAPER, **changes), 0.25)
    out = capacity.matched(variant, reference, match)
    target = network_complexity(reference)[match]
    assert abs(network_complexity(out)[match] / target - 1) <= 0.05
    assert abs(network_complexity(variant)[match] / target - 1) > 0.05  # the raw variant was not matched
    assert out.blocks[0].kernels == variant.blocks[0].kernels and out.blocks[0].links == variant.blocks[0].links


def test_scaling_multiplies_every_blocks_width():
    spec = capacity.scaled(replace_blocks(PAPER, width_multiplier=0.5), 0.5)
    assert {b.width_multiplier for b in spec.blocks} == {0.25}
    assert capacity.scaled(PAPER, 1.0) is PAPER


def test_an_unmatchable_variant_is_one_line():
    # width does not change a 1-block network enough to reach 100x the paper's FLOPs
    with pytest.raises(SpecError, match=r"^x\.toml: match = 'flops': no width scale in \[1/64, 64\] reaches"):
        capacity.matched(capacity.scaled(PAPER, 1 / 64), capacity.scaled(PAPER, 64.0 * 64), "flops", "x.toml")
    with pytest.raises(SpecError, match="match: got 'macs'; allowed: flops, params"):
        capacity.matched(PAPER, PAPER, "macs")


def test_the_default_contrasts_are_flop_matched_under_every_profile():
    spec = load_study(ABLATIONS / "contrasts.toml")
    for profile, variants in spec.resolved.items():
        ref = variants["paper block"]
        assert ref.flops == ref.raw_flops  # the reference is never rescaled
        for label in ("single kernel {3} (FLOP-matched)", "no links (FLOP-matched)"):
            v = variants[label]
            assert v.variant.match == "flops"
            assert abs(v.flops / ref.flops - 1) <= 0.05, (profile, label)
            assert abs(v.raw_flops / ref.flops - 1) > 0.05  # unmatched, it would not have been within tolerance
    quick = spec.resolved["quick"]
    assert quick["paper block"].model.spec.blocks[0].width_multiplier == 0.25
    assert quick["paper block"].model.name == "lrnet_paper ×0.25"
    assert 0.79 < quick["single kernel {3} (FLOP-matched)"].model.spec.blocks[0].width_multiplier < 0.81
    assert spec.resolved["paper"]["paper block"].model.name == "lrnet_paper"
