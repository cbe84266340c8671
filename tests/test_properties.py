"""Properties that must hold for any input, checked by hypothesis: Holm's adjustment is monotone,
a comparison read the other way round is its mirror image (TOST included), and validating a
network spec ends in a spec or one SpecError, never another exception.

Skipped where hypothesis is not installed (it belongs to the `dev` extra).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from study import stats  # noqa: E402
from study.errors import SpecError  # noqa: E402
from study.spec import MKBlockSpec, NetworkSpec, network_from_mapping  # noqa: E402

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

p_values = st.lists(st.one_of(st.floats(0.0, 1.0), st.just(math.nan)), min_size=1, max_size=12)


@FAST
@given(p_values)
def test_holm_is_monotone_bounded_and_keeps_nans(p):
    adjusted = stats.holm(p)
    raw = np.array(p, dtype=float)
    out = np.array(adjusted, dtype=float)
    assert len(out) == len(raw)
    assert (np.isnan(out) == np.isnan(raw)).all()  # nan stays nan and is not a test
    ok = ~np.isnan(raw)
    m = int(ok.sum())
    assert (out[ok] >= raw[ok] - 1e-12).all() and (out[ok] <= 1.0).all()
    assert (out[ok] <= np.minimum(1.0, m * raw[ok]) + 1e-12).all()  # never beyond Bonferroni
    order = np.argsort(raw[ok], kind="stable")
    assert (np.diff(out[ok][order]) >= -1e-12).all()  # a smaller raw p never gets a larger adjusted p


@FAST
@given(p_values, st.floats(0.0, 1.0))
def test_holm_adjusted_p_never_falls_when_a_raw_p_rises(p, bump):
    i = 0
    if math.isnan(p[i]):
        return
    higher = [*p]
    higher[i] = max(p[i], bump)
    before, after = stats.holm(p), stats.holm(higher)
    assert after[i] >= before[i] - 1e-12


accuracies = st.lists(st.floats(50.0, 100.0, allow_nan=False), min_size=2, max_size=8)


@FAST
@given(accuracies, accuracies, st.booleans(), st.floats(0.5, 5.0))
def test_comparison_read_backwards_is_its_mirror_image(a, b, paired, margin):
    n = min(len(a), len(b)) if paired else None
    a, b = (a[:n], b[:n]) if paired else (a, b)
    seeds_a = list(range(len(a))) if paired else None
    seeds_b = list(range(len(b))) if paired else None
    forward = stats.compare(a, b, variant_seeds=seeds_a, reference_seeds=seeds_b, margin=margin)
    backward = stats.compare(b, a, variant_seeds=seeds_b, reference_seeds=seeds_a, margin=margin)
    assert forward.paired == backward.paired == paired
    assert forward.diff == pytest.approx(-backward.diff, abs=1e-9)
    if not math.isnan(forward.ci_low):
        assert (forward.ci_low, forward.ci_high) == pytest.approx((-backward.ci_high, -backward.ci_low), abs=1e-7)
    for field in ("p_value", "p_equivalence", "mde"):  # the t-test, the TOST and the MDE are symmetric
        f, g = getattr(forward, field), getattr(backward, field)
        assert (math.isnan(f) and math.isnan(g)) or f == pytest.approx(g, rel=1e-9, abs=1e-12), field
    swap = {"better": "worse", "worse": "better"}
    assert backward.verdict == swap.get(forward.verdict, forward.verdict)


@FAST
@given(st.floats(-10, 10), st.floats(0.01, 5), st.integers(1, 30), st.floats(0.1, 5))
def test_tost_is_symmetric_in_the_sign_and_falls_as_the_margin_grows(diff, se, df, margin):
    p = stats._tost_p(diff, se, df, margin)
    assert p == pytest.approx(stats._tost_p(-diff, se, df, margin), rel=1e-9, abs=1e-15)
    assert 0.0 <= p <= 1.0
    assert stats._tost_p(diff, se, df, margin * 2) <= p + 1e-12


# --- spec validation never crashes ---------------------------------------------------------------------

BLOCK_KEYS = [f for f in MKBlockSpec.__dataclass_fields__ if f not in ("nodes", "output")]
NETWORK_KEYS = [f for f in NetworkSpec.__dataclass_fields__ if f not in ("blocks", "head")]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["paper", "none", "dense", "residual", "batch", "max", "gap", "relu"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
block_tables = st.dictionaries(st.sampled_from(BLOCK_KEYS + ["kernel", "widht"]), values, max_size=5)
node_tables = st.dictionaries(st.sampled_from(["name", "op", "inputs", "kernel", "width", "extra"]), values, max_size=5)
documents = st.fixed_dictionaries({}, optional={
    "name": values, "in_channels": values, "input_size": values, "num_classes": values,
    "block": st.one_of(block_tables, values, block_tables.map(lambda t: {**t, "nodes": [{}], "output": ["x"]})),
    "blocks": st.one_of(st.integers(-2, 8), st.lists(block_tables, max_size=4), values),
    "head": st.one_of(st.dictionaries(st.sampled_from(["kind", "hidden", "dropout", "units"]), values, max_size=3), values),
    "nodes": st.lists(node_tables, max_size=3), "extra_key": values,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_network_spec_validation_gives_a_spec_or_one_spec_error(document):
    try:
        spec = network_from_mapping(document, "generated.toml")
    except SpecError as err:
        text = str(err)
        assert text and "\n" not in text and text.startswith("generated.toml")
    else:
        assert isinstance(spec, NetworkSpec) and 1 <= len(spec.blocks)
