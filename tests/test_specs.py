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
from pathlib import Path

import pytest

from study.cli import main
from study.errors import KitError, SpecError, UnknownModelError
from study.models import PAPER, get_entry
from study.spec import (
    HeadSpec,
    MKBlockSpec,
    NetworkSpec,
    NodeSpec,
    block_graph,
    load_network,
    network_from_mapping,
    replace_blocks,
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
