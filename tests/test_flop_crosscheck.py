"""An independent FLOP check: for every registered model, fvcore (the report's counter), torch's dispatch-level
`FlopCounterMode` (halved to multiply-adds) and, for MK networks, the kit's analytic count.

Tolerance (docs/flops.md): the dispatch counter counts convolutions and matrix products only; fvcore's count of
exactly those ops must equal it (0 difference), and fvcore's remainder (norms, pooling, additions, upsampling)
must stay under 2 % of its total. The analytic count must equal fvcore's total exactly.
"""

from __future__ import annotations

import pytest
import torch

from study.blocks import network_complexity
from study.measure import DISPATCH, count_flops, dispatch_flops, flop_analysis
from study.models import list_models, resolve_model

MATRIX_OPS = ("conv", "linear", "addmm", "matmul", "bmm", "einsum")
REMAINDER = 0.02


@pytest.mark.parametrize("name", list_models())
def test_fvcore_agrees_with_torchs_dispatch_counter_and_the_analytic_count(name):
    resolved = resolve_model(name)
    model = resolved.build(resolved.spec.num_classes if resolved.spec else 10).eval()
    by_op = flop_analysis(model, torch.zeros(resolved.input_shape)).by_operator()
    total = count_flops(model, resolved.input_shape)["flops"]
    matrix = sum(v for k, v in by_op.items() if k in MATRIX_OPS)
    assert dispatch_flops(model, resolved.input_shape) == matrix
    assert 0 <= total - matrix <= REMAINDER * total, {k: v for k, v in by_op.items() if k not in MATRIX_OPS}
    if resolved.spec is not None:
        assert network_complexity(resolved.spec)["flops"] == total


def test_where_fvcore_fails_the_dispatch_counter_counts_and_says_so(monkeypatch, caplog):
    import study.measure

    def broken(*args, **kwargs):
        raise RuntimeError("tracing failed: an op TorchScript cannot trace")

    monkeypatch.setattr(study.measure, "flop_analysis", broken)
    model = resolve_model("lrnet_half").build(10)
    with caplog.at_level("WARNING"):
        counted = count_flops(model)
    assert counted["flops_counter"] == DISPATCH and counted["flops"] == dispatch_flops(model)
    (record,) = [r for r in caplog.records if "fvcore could not count" in r.getMessage()]
    assert "tracing failed" in record.getMessage() and "\n" not in record.getMessage()
