"""The op table (`study.ops.OPS`): every op in it is a valid spec op and builds, runs and fast-paths like the
plain build; `study.spec.Op` names exactly its ops; an op not in it is one SpecError line everywhere (spec
validation, building, the forward pass, the fast path), never run as some other op."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import torch

from study import fast
from study.blocks import MKNet, network_complexity
from study.cli import main
from study.errors import SpecError
from study.models import build_model
from study.ops import ALLOWED_OPS, OPS
from study.spec import NetworkSpec, NodeSpec, Op, network_from_mapping, validate_network

KNOWN = "one of 'conv', 'cat', 'norm', 'add'"
#: A one-input conv node table as a spec file writes it (4 channels from the 1-channel image).
A = {"name": "a", "op": "conv", "input": "x", "kernel": 3, "width": 4}
#: For each op of the table, a node reading `x` (1 channel) and `a`, and the channels it makes.
SAMPLES = {
    "conv": ({"name": "n", "op": "conv", "input": "a", "kernel": 5, "width": 3}, 3),
    "cat": ({"name": "n", "op": "cat", "inputs": ["x", "a", "x"]}, 6),
    "norm": ({"name": "n", "op": "norm", "input": "a"}, 4),
    "add": ({"name": "n", "op": "add", "inputs": ["a", "x"]}, 4),  # the 1-channel x is projected to 4
}


def _network(*nodes: dict, output: tuple[str, ...] = ("n",)) -> dict:
    return {"blocks": 1, "input_size": 8, "head": {"hidden": [8]},
            "block": {"nodes": list(nodes), "output": list(output), "out_channels": 5}}


def test_the_op_literal_names_the_table_and_every_op_has_a_sample():
    assert typing.get_args(Op) == tuple(OPS)
    assert set(SAMPLES) == set(OPS), "give every op of the table a sample node here"
    assert ALLOWED_OPS == KNOWN


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_is_accepted_and_builds_runs_and_fast_paths_as_the_plain_build(name: str):
    node, channels = SAMPLES[name]
    spec = network_from_mapping(_network(A, node), "net.toml")
    assert spec.blocks[0].nodes[1].op == name
    torch.manual_seed(0)
    model = build_model(spec).double().eval()
    assert model.blocks[0].merge[0].in_channels == channels  # the table's channel rule, as built
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(fast.optimize(model, "train")(x), expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(fast.optimize(model, "infer", precision="fp32")(x), expected, rtol=0, atol=1e-12)


def test_an_unknown_op_in_a_spec_is_one_line_listing_the_table():
    with pytest.raises(SpecError) as info:
        network_from_mapping(_network(A, {"name": "n", "op": "pool", "input": "a"}), "net.toml")
    assert str(info.value) == f'net.toml: block.nodes[1].op: "pool" is not a valid choice; allowed: {KNOWN}'
    # a spec built in Python (not from TOML) gets the same line from validation
    spec = NetworkSpec(blocks=(dataclasses.replace(NetworkSpec().blocks[0], nodes=(NodeSpec("n", "pool", ("x",)),),
                                                   output=("n",)),))
    with pytest.raises(SpecError) as info:
        validate_network(spec, "net.toml")
    assert str(info.value) == f"net.toml: blocks[0].nodes[0].op: 'pool' is not a valid choice; allowed: {KNOWN}"


def test_an_unknown_op_in_a_spec_file_is_one_line_on_the_command_line(tmp_path: Path, capsys):
    path = tmp_path / "net.toml"
    path.write_text('[block]\noutput = ["n"]\nnodes = [{ name = "n", op = "pool", input = "x" }]\n')
    assert main(["profile", str(path), "--no-timing"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f'error: {path}: block.nodes[0].op: "pool" is not a valid choice; allowed: {KNOWN}']


def _with_unknown_op(spec: NetworkSpec) -> NetworkSpec:
    """`spec` with its add node renamed to an op the table lacks, past validation."""
    block = spec.blocks[0]
    nodes = tuple(dataclasses.replace(n, op="pool") if n.op == "add" else n for n in block.nodes)
    return dataclasses.replace(spec, blocks=(dataclasses.replace(block, nodes=nodes),))


def _is_unknown_op_error(info: pytest.ExceptionInfo) -> None:
    assert str(info.value) == f"graph op 'pool' is not in the op table (study.ops.OPS); allowed: {KNOWN}"


def test_building_or_costing_an_unknown_op_that_skipped_validation_is_an_error_not_an_add():
    bad = _with_unknown_op(network_from_mapping(_network(A, SAMPLES["add"][0])))
    for build in (lambda: MKNet(bad), lambda: build_model(bad), lambda: network_complexity(bad)):
        with pytest.raises(SpecError) as info:
            build()
        _is_unknown_op_error(info)


def test_running_or_fast_pathing_an_unknown_op_is_an_error_not_an_add():
    spec = network_from_mapping(_network(A, SAMPLES["add"][0]))
    torch.manual_seed(0)
    model = build_model(spec).eval()
    block = model.blocks[0]
    block.nodes = _with_unknown_op(spec).blocks[0].nodes  # the built block's graph, edited after building
    x = torch.rand(2, 1, 8, 8)
    for run in (lambda: model(x), lambda: fast.optimize(model, "train"), lambda: fast.optimize(model, "infer")):
        with pytest.raises(SpecError) as info:
            run()
        _is_unknown_op_error(info)
