"""Spec files: every bad file of `tests/bad_specs/` fails with exit code 2 and ONE line naming the file
and the problem (no traceback); every file of `ablations/` loads; digests and `replace_blocks`.

Each bad file starts with `# expect: <substring of the error line>`. To add a case, drop a file in
`tests/bad_specs/` (network specs) or `tests/bad_specs/studies/` (study files); nothing else to edit.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from study.cli import main
from study.errors import KitError, SpecError, UnknownModelError
from study.models import PAPER, get_entry
from study.ops import OPS
from study.spec import (
    HeadSpec,
    MKBlockSpec,
    NetworkSpec,
    NodeSpec,
    block_graph,
    from_mapping,
    load_network,
    network_from_mapping,
    replace_blocks,
    unknown_key,
    validate_network,
)
from study.studies import ABLATIONS, load_study, variant_network

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "bad_specs"
BAD_SPECS = sorted(BAD.glob("*.toml"))
BAD_STUDIES = sorted((BAD / "studies").glob("*.toml"))
SPEC_FILES = sorted((ABLATIONS / "specs").glob("*.toml"))
STUDY_FILES = sorted(ABLATIONS.glob("*.toml"))


def _expected(path: Path) -> str:
    """The substring the error line must contain, from the file's first line."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: the first line must be `# expect: <substring of the error>`"
    return first.removeprefix("# expect: ").strip()


def _one_error_line(stderr: str, path: Path) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert str(path) in lines[0], f"the error does not name the file: {lines[0]}"
    return lines[0]


# --------------------------------------------------------------------------- bad network specs


def test_bad_spec_corpus():
    assert len(BAD_SPECS) >= 24
    for path in BAD_SPECS + BAD_STUDIES:
        _expected(path)


@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_bad_spec_fails_with_one_line(path: Path, capsys):
    expected = _expected(path)
    try:
        code = main(["profile", str(path), "--no-timing"])
    except Exception as err:  # what the user would see as a traceback
        pytest.fail(f"{path.name}: uncaught {type(err).__name__}: {err} (a user would get a traceback, not one line)")
    out, err = capsys.readouterr()
    line = _one_error_line(err, path)
    assert code == 2, line
    assert expected in line, f"expected {expected!r} in the error line:\n{line}"
    assert out == ""
    with pytest.raises(SpecError):
        load_network(path)


@pytest.mark.parametrize("name", ["unknown_top_key", "graph_unknown_tensor", "invalid_toml"])
def test_bad_spec_in_a_real_process(name: str):
    path = BAD / f"{name}.toml"
    proc = subprocess.run([sys.executable, "-m", "study", "profile", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    line = _one_error_line(proc.stderr, path)
    assert proc.returncode == 2, line
    assert _expected(path) in line
    assert proc.stdout == ""


# --------------------------------------------------------------------------- bad study files


@pytest.mark.parametrize("path", BAD_STUDIES, ids=[p.stem for p in BAD_STUDIES])
def test_bad_study_fails_with_one_line(path: Path):
    with pytest.raises((SpecError, UnknownModelError)) as info:
        load_study(path)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in message
    assert _expected(path) in message, f"expected {_expected(path)!r} in:\n{message}"
    assert str(path) in message, f"the error does not name the study file: {message}"


def test_bad_study_stops_study_run_before_training(tmp_path: Path):
    path = BAD / "studies" / "bad_block_override.toml"
    proc = subprocess.run([sys.executable, "-m", "study", "run", "--only", str(path), "--no-report",
                           "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "reports")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    line = _one_error_line(proc.stderr, path)
    assert proc.returncode == 2, line
    assert _expected(path) in line
    assert not (tmp_path / "runs").exists(), "a run directory was created before the study was validated"


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_network_spec_file_loads(path: Path):
    spec = load_network(path)
    assert isinstance(spec, NetworkSpec)
    assert spec.name == path.stem
    assert validate_network(spec) is spec


@pytest.mark.parametrize("path", STUDY_FILES, ids=[p.stem for p in STUDY_FILES])
def test_every_study_file_loads(path: Path):
    study = load_study(path)
    assert study.kind in ("grid", "robustness", "search")
    assert study.kind == "search" or study.variants
    for variant in study.variants:
        network = variant_network(study, variant)
        if isinstance(network, NetworkSpec):
            validate_network(network)
        else:
            get_entry(network)


def test_paper_spec_file_is_the_registered_spec():
    registered = get_entry("lrnet_paper").spec
    assert load_network(ABLATIONS / "specs" / "lrnet_paper.toml") == registered
    graph = load_network(ABLATIONS / "specs" / "lrnet_paper_graph.toml")
    assert all(block_graph(b) == block_graph(registered.blocks[0]) for b in graph.blocks)
    assert graph.head == registered.head


def test_network_from_mapping_block_defaults_and_overrides():
    spec = network_from_mapping({
        "block": {"kernels": [3, 5], "out_channels": 16},
        "blocks": [{}, {"kernels": [3]}, {"pool": "none"}],
        "head": {"kind": "gap", "dropout": 0.0},
    })
    assert [b.kernels for b in spec.blocks] == [(3, 5), (3,), (3, 5)]
    assert [b.out_channels for b in spec.blocks] == [16, 16, 16]
    assert [b.pool for b in spec.blocks] == ["max", "max", "none"]
    assert spec.head == HeadSpec(kind="gap", dropout=0.0)
    assert network_from_mapping({"blocks": 2}).blocks == (MKBlockSpec(),) * 2


def test_node_input_shorthand():
    spec = network_from_mapping({"blocks": 1, "block": {"output": ["a"], "nodes": [
        {"name": "a", "op": "conv", "input": "x", "kernel": 3, "width": 4}]}})
    assert spec.blocks[0].nodes == (NodeSpec("a", "conv", ("x",), 3, 4),)


# --------------------------------------------------------------------------- the whole error line

#: A one-input conv node table as a spec file writes it.
A = {"name": "a", "op": "conv", "input": "x", "kernel": 3, "width": 4}
ALLOWED_NODE = "allowed: a table {name, op, inputs, kernel, width}"


def _graph(*nodes, output=("a",)) -> dict:
    return {"blocks": 1, "block": {"nodes": list(nodes), "output": list(output)}}


@pytest.mark.parametrize("document, line", [
    # top level: the count, the positive integers, the `block` and `blocks` shapes, unknown keys
    ({"blocks": 6}, "blocks: 6 blocks; allowed: 1 to 5 MK blocks"),
    ({"blocks": [{}] * 6}, "blocks: 6 blocks; allowed: 1 to 5 MK blocks"),
    ({"in_channels": 0}, "in_channels: 0 is not positive; allowed: an integer ≥ 1"),
    ({"num_classes": -1}, "num_classes: -1 is not positive; allowed: an integer ≥ 1"),
    ({"input_size": 0}, "input_size: 0 is not positive; allowed: an integer ≥ 1"),
    ({"name": 5}, "name: got 5; allowed: a string"),
    ({"block": 3}, "block: got 3; allowed: a table of MK-block settings"),
    ({"block": [3]}, "block: got [3]; allowed: a table of MK-block settings"),
    ({"blocks": [{}, 3]}, "blocks[1]: got 3; allowed: a table of MK-block settings"),
    ({"blocks": [{}, "gap"]}, 'blocks[1]: got "gap"; allowed: a table of MK-block settings'),
    ({"zzzz": 1}, "zzzz: unknown key; allowed: name, blocks, block, head, in_channels, input_size, num_classes, defaults"),
    ({"head": {"zzzz": 1}}, "head.zzzz: unknown key; allowed: kind, hidden, dropout"),
    # a per-block override names its position, a shared [block] setting names `block`
    ({"blocks": [{}, {"kernels": "3"}]}, 'blocks[1].kernels: got "3"; allowed: a list of integers'),
    ({"block": {"kernels": "3"}, "blocks": [{}]}, 'block.kernels: got "3"; allowed: a list of integers'),
    # block knobs
    ({"block": {"kernels": []}}, "blocks[0].kernels: empty kernel set; allowed: one or more odd kernel sizes, e.g. [3, 5, 7]"),
    ({"block": {"kernels": [3, 4]}}, "blocks[0].kernels: kernel 4 is even; allowed: odd sizes ≥ 1 (1, 3, 5, 7, 9, …)"),
    ({"block": {"kernels": [-1, 3]}}, "blocks[0].kernels: kernel -1 is not positive; allowed: odd sizes ≥ 1 (1, 3, 5, 7, 9, …)"),
    ({"block": {"kernels": [7, 3, 5]}}, "blocks[0].kernels: [7, 3, 5] is not ascending without repeats; allowed: e.g. [3, 5, 7]"),
    ({"block": {"stage2_self_widths": [0]}},
     "blocks[0].stage2_self_widths: [0] has a zero or negative width; allowed: a list of integers ≥ 1"),
    ({"block": {"stage2_cross_widths": [36, -2]}},
     "blocks[0].stage2_cross_widths: [36, -2] has a zero or negative width; allowed: a list of integers ≥ 1"),
    ({"block": {"stages": 0}}, "blocks[0].stages: 0 is not positive; allowed: an integer ≥ 1"),
    ({"blocks": [{}, {"out_channels": -4}]}, "blocks[1].out_channels: -4 is not positive; allowed: an integer ≥ 1"),
    ({"block": {"width_multiplier": 0}},
     "blocks[0].width_multiplier: 0.0 is not positive and finite; allowed: a number > 0, e.g. 0.5, 1, 2"),
    # pooling depth: 28 → 14 → 7 → 3 → 1 allows 4 pooling blocks, 2 → 1 one, 1 none
    ({"blocks": 5}, "blocks[4].pool: the 28×28 input is pooled to nothing by block 5; "
                    "allowed: at most 4 pooling blocks for this input size"),
    ({"blocks": 2, "input_size": 2}, "blocks[1].pool: the 2×2 input is pooled to nothing by block 2; "
                                     "allowed: at most 1 pooling blocks for this input size"),
    ({"blocks": 1, "input_size": 1}, "blocks[0].pool: the 1×1 input is pooled to nothing by block 1; "
                                     "allowed: at most 0 pooling blocks for this input size"),
    ({"blocks": [{"pool": "none"}, {}, {}], "input_size": 3},
     "blocks[2].pool: the 3×3 input is pooled to nothing by block 3; allowed: at most 1 pooling blocks for this input size"),
    # head
    ({"head": {"hidden": [64, 0]}}, "head.hidden: [64, 0] has a zero width; allowed: a list of integers ≥ 1"),
    ({"head": {"dropout": 1}}, "head.dropout: 1.0 is outside [0, 1); allowed: a probability in [0, 1)"),
    # explicit graphs
    ({"blocks": 1, "block": {"nodes": [A]}},
     'blocks[0].output: an explicit graph needs output tensors; allowed: names of nodes (or "x") to merge'),
    (_graph(A | {"name": "3a"}), "blocks[0].nodes[0].name: '3a' is not a plain name; "
                                 "allowed: letters, digits and _ (not starting with a digit)"),
    (_graph(A, A), 'blocks[0].nodes[1].name: tensor \'a\' is defined twice; allowed: unique names other than "x"'),
    (_graph(A, {"name": "n", "op": "norm", "inputs": ["x", "a"]}),
     "blocks[0].nodes[1].inputs: norm takes 1 input(s), got 2; allowed: exactly 1"),
    (_graph(A, {"name": "r", "op": "add", "input": "a"}), "blocks[0].nodes[1].inputs: add takes 2 input(s), got 1; allowed: exactly 2"),
    (_graph({"name": "c", "op": "cat", "inputs": []}), "blocks[0].nodes[0].inputs: cat of nothing; allowed: one or more tensor names"),
    (_graph(A, {"name": "c", "op": "cat", "inputs": ["a", "b"]}),
     "blocks[0].nodes[1].inputs: tensor 'b' does not exist (yet); allowed: one of a, x"),
    (_graph(A | {"kernel": 4}), "blocks[0].nodes[0].kernel: kernel 4 is even or not positive; allowed: odd sizes ≥ 1"),
    (_graph(A | {"width": 0}), "blocks[0].nodes[0].width: width 0; allowed: an integer ≥ 1"),
    (_graph(A, output=("x", "zz")), "blocks[0].output: tensor 'zz' does not exist; allowed: one of a, x"),
    # node tables
    (_graph("a"), f'blocks[0].nodes[0]: got "a"; {ALLOWED_NODE}'),
    (_graph({"name": "a"}), f"blocks[0].nodes[0]: missing op, inputs; {ALLOWED_NODE}"),
    (_graph({"op": "conv"}), f"blocks[0].nodes[0]: missing name, inputs; {ALLOWED_NODE}"),
])
def test_a_bad_value_is_one_line_naming_file_key_problem_and_what_is_allowed(document: dict, line: str):
    with pytest.raises(SpecError) as info:
        network_from_mapping(document, "net.toml")
    assert str(info.value) == f"net.toml: {line}"


def test_the_location_defaults_to_spec():
    for build in (lambda: network_from_mapping({"num_classes": 0}), lambda: validate_network(NetworkSpec(num_classes=0))):
        with pytest.raises(SpecError) as info:
            build()
        assert str(info.value) == "spec: num_classes: 0 is not positive; allowed: an integer ≥ 1"
    with pytest.raises(SpecError) as info:
        from_mapping(HeadSpec, {"dropuot": 0.5})
    assert str(info.value) == "spec: dropuot: unknown key (did you mean 'dropout'?); allowed: kind, hidden, dropout"


def test_unknown_key_lists_a_set_sorted_and_a_sequence_in_order():
    keys = {"variants", "axis", "name", "kind", "base", "datasets", "search", "profiles", "order"}
    error = unknown_key("s.toml", "profiles.fast.serach", keys)
    assert str(error) == ("s.toml: profiles.fast.serach: unknown key (did you mean 'search'?); "
                          "allowed: axis, base, datasets, kind, name, order, profiles, search, variants")
    error = unknown_key("s.toml", "qqq", ("zeta", "alpha"))
    assert str(error) == "s.toml: qqq: unknown key; allowed: zeta, alpha"


def test_boundary_values_are_accepted():
    ones = {"stage1_widths": [1], "stage2_self_widths": [1], "stage2_cross_widths": [1], "stage3_width": 1,
            "out_channels": 1, "stages": 1, "groups": 1, "kernels": [1, 3], "width_multiplier": 1e-3}
    spec = network_from_mapping({"blocks": 1, "block": ones, "in_channels": 1, "num_classes": 1, "input_size": 2,
                                 "head": {"hidden": [1], "dropout": 0.0}})
    block = spec.blocks[0]
    assert (block.stage1_widths, block.stage2_self_widths, block.stage2_cross_widths) == ((1,), (1,), (1,))
    assert (block.stage3_width, block.out_channels, block.stages, block.groups) == (1, 1, 1, 1)
    assert (block.kernels, block.width_multiplier) == ((1, 3), 1e-3)
    assert (spec.in_channels, spec.num_classes, spec.input_size) == (1, 1, 2)
    assert spec.head == HeadSpec(hidden=(1,), dropout=0.0)
    # five blocks (the most) that do not pool fit any input; a count or a list of tables
    for document in ({"blocks": 5, "block": {"pool": "none"}}, {"blocks": [{"pool": "none"}] * 5}):
        assert network_from_mapping(document).blocks == (MKBlockSpec(pool="none"),) * 5
    # 32 → 16 → 8 → 4 → 2 → 1: five pooling blocks
    assert len(network_from_mapping({"blocks": 5, "input_size": 32}).blocks) == 5
    # a dense head with no hidden layers is a flatten + linear classifier
    assert network_from_mapping({"head": {"hidden": []}}).head == HeadSpec(hidden=())
    # no `blocks`: three paper blocks
    assert network_from_mapping({}).blocks == (MKBlockSpec(),) * 3


def test_node_inputs_may_be_one_name():
    spec = network_from_mapping(_graph({"name": "a", "op": "conv", "inputs": "x", "kernel": 5, "width": 2},
                                       {"name": "n", "op": "norm", "inputs": "a"}, output=("x", "n")))
    assert spec.blocks[0].nodes == (NodeSpec("a", "conv", ("x",), 5, 2), NodeSpec("n", "norm", ("a",)))
    assert spec.blocks[0].output == ("x", "n")


def test_file_name_is_the_default_model_name(tmp_path: Path):
    path = tmp_path / "tiny_net.toml"
    path.write_text("blocks = 1\n")
    assert load_network(path).name == "tiny_net"


def test_missing_spec_file(tmp_path: Path):
    with pytest.raises(SpecError, match="file not found"):
        load_network(tmp_path / "nope.toml")


# --------------------------------------------------------------------------- digest and replace_blocks

#: One changed value per MKBlockSpec field: the digest must see every knob.
BLOCK_CHANGES = {
    "kernels": (3, 5),
    "links": "dense",
    "stage1_widths": (32, 24, 12),
    "stage2_self_widths": (48, 16),
    "stage2_cross_widths": (36, 12),
    "stage3_width": 64,
    "stages": 2,
    "width_multiplier": 0.5,
    "out_channels": 32,
    "norm": "group",
    "groups": 4,
    "norm_position": "in-conv",
    "activation": "gelu",
    "pool": "avg",
    "nodes": (NodeSpec("a", "conv", ("x",), 3, 8),),
    "output": ("x",),
}


def test_block_changes_cover_every_knob():
    assert set(BLOCK_CHANGES) == {f.name for f in dataclasses.fields(MKBlockSpec)}


def test_digest_is_stable():
    again = load_network(ABLATIONS / "specs" / "lrnet_paper.toml")
    assert PAPER.digest() == again.digest() == dataclasses.replace(PAPER, name="renamed").digest()
    assert len(PAPER.digest()) == 12 and int(PAPER.digest(), 16) >= 0
    # the same in a fresh interpreter with another hash seed: nothing in it depends on set/dict order
    code = "from study.spec import NetworkSpec; print(NetworkSpec().digest())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert proc.stdout.strip() == PAPER.digest(), proc.stderr


def test_digest_changes_with_every_block_knob():
    digests = {"base": PAPER.digest()}
    for key, value in BLOCK_CHANGES.items():
        digests[key] = replace_blocks(PAPER, **{key: value}).digest()
    one_block = dataclasses.replace(PAPER, blocks=(PAPER.blocks[0], dataclasses.replace(PAPER.blocks[1], stages=2), PAPER.blocks[2]))
    digests["one block only"] = one_block.digest()
    for key, value in {"in_channels": 3, "input_size": 32, "num_classes": 5, "blocks": PAPER.blocks[:2],
                       "head": HeadSpec(dropout=0.2)}.items():
        digests[key] = dataclasses.replace(PAPER, **{key: value}).digest()
    same = {d for d in digests.values() if list(digests.values()).count(d) > 1}
    assert not same, f"changes with the same digest: {[k for k, d in digests.items() if d in same]}"


def test_replace_blocks():
    changed = replace_blocks(PAPER, kernels=(3, 5), width_multiplier=0.5)
    assert all(b.kernels == (3, 5) and b.width_multiplier == 0.5 for b in changed.blocks)
    assert all(b.links == "paper" and b.out_channels == 24 for b in changed.blocks)
    assert len(changed.blocks) == len(PAPER.blocks)
    assert (changed.head, changed.name, changed.input_size) == (PAPER.head, PAPER.name, PAPER.input_size)
    assert PAPER.blocks == (MKBlockSpec(),) * 3, "the original spec must be untouched"
    assert replace_blocks(PAPER) == PAPER
    residual = replace_blocks(PAPER, links="residual")
    assert residual.blocks == (MKBlockSpec(links="residual"),) * 3
    assert residual == dataclasses.replace(get_entry("lrnet_residual").spec, name=PAPER.name)
    with pytest.raises(TypeError):
        replace_blocks(PAPER, kernel_size=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.blocks[0].kernels = (7,)  # type: ignore[misc]


def test_kit_errors_are_exit_code_2_for_specs():
    assert SpecError.exit_code == UnknownModelError.exit_code == 2
    assert issubclass(SpecError, KitError) and issubclass(UnknownModelError, KitError)


@pytest.mark.parametrize("content, message", [
    (b"[block]\nwidth_multiplier = 10000.0\n", "params, over the limit of 100,000,000; allowed: smaller widths, blocks"),
    (b"input_size = 600\n", "activation elements per image, over the limit of 30,000,000"),
    (bytes(range(128, 256)) * 3, "not a text file (not UTF-8)"),
])
def test_a_typo_sized_or_binary_spec_is_one_line_before_any_allocation(tmp_path: Path, capsys, content: bytes, message: str):
    path = tmp_path / "typo.toml"
    path.write_bytes(content)
    assert main(["profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_the_size_limit_can_be_raised(monkeypatch):
    from study.capacity import check_size, scaled

    big = scaled(PAPER, 30.0)  # 610 M params, 208 GFLOPs
    with pytest.raises(SpecError, match="STUDY_MAX_PARAMS=N"):
        check_size(big)
    monkeypatch.setenv("STUDY_MAX_PARAMS", "1e9")
    with pytest.raises(SpecError, match="STUDY_MAX_ACTIVATIONS=N"):  # 30 × the paper's 1.18 M elements per image
        check_size(big)
    monkeypatch.setenv("STUDY_MAX_ACTIVATIONS", "1e9")
    check_size(big)


def test_every_link_type_has_a_wiring():
    # a link type is one name in spec.Links and one wiring in spec.WIRINGS (docs/architecture.md, "A new link type")
    from study import spec

    assert set(typing.get_args(spec.Links)) == set(spec.WIRINGS)
    for links in typing.get_args(spec.Links):
        nodes, output = spec.block_graph(dataclasses.replace(MKBlockSpec(), links=links))
        assert nodes and output and {n.op for n in nodes} <= set(OPS)
