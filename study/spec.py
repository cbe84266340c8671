"""Frozen dataclass specs for an MK block and a network, their expansion into a tensor graph, and
loading/validation from TOML.

A block is data: a list of named tensor nodes (`conv`, `cat`, `norm`, `add`) read from the block
input `x`, plus the tensors merged by the block's 1×1 output convolution. The paper's wiring and
the ablation wirings (`none`, `residual`, `dense`) are generators of such graphs from a few knobs
(kernel set, widths, width multiplier); a spec file may also give the graph explicitly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from study.errors import SpecError
from study.ops import ALLOWED_OPS, OPS, lookup
from study.schema import Doc, coerce, from_mapping, unknown_key

#: The names of the op table `study.ops.OPS`, as a type (tests/test_ops.py checks that the two agree).
Op = Literal["conv", "cat", "norm", "add"]
Links = Literal["paper", "none", "residual", "dense"]

#: The paper's widths by position in the (ascending) kernel set; later positions reuse the last.
PAPER_WIDTHS = {
    "stage1_widths": (48, 24, 12),  # a3, a5, a7 on x
    "stage2_self_widths": (48, 24),  # conv3(n3), conv5(n3) in t
    "stage2_cross_widths": (36, 18),  # conv5(n35), conv7(n357) in u
    "stage3_width": 72,  # v = BN(conv3(nu))
}


@dataclass(frozen=True)
class NodeSpec:
    """One named tensor of a block graph.

    `conv`: one input, `kernel`×`kernel` "same" convolution to `width` channels, then activation.
    `cat`: channel concatenation of `inputs`. `norm`: normalisation of one input.
    `add`: sum of two inputs; the second is projected by a 1×1 convolution where channels differ.
    """

    name: Annotated[str, Doc("the tensor's name, read by later nodes' `inputs` and by `output` (letters, digits and _)")]
    op: Annotated[Op, Doc("`conv`: a kernel×kernel \"same\" convolution of one input to `width` channels, then the "
                          "activation; `cat`: channel concatenation of the inputs; `norm`: normalisation of one input; "
                          "`add`: the sum of two inputs, the second projected by a 1×1 convolution where channels differ")]
    inputs: Annotated[tuple[str, ...], Doc("the tensors it reads: `x` (the block input) or earlier nodes; one name may be "
                                           "written `input = \"x\"` or `inputs = \"x\"`")]
    kernel: Annotated[int, Doc("`conv` only: the kernel size (odd, ≥ 1)")] = 0
    width: Annotated[int, Doc("`conv` only: the output channels (≥ 1)")] = 0


@dataclass(frozen=True)
class MKBlockSpec:
    """A multi-kernel block: knobs that generate its graph (or an explicit graph) and its output stage."""

    kernels: Annotated[tuple[int, ...], Doc("the kernel sizes, odd and ascending without repeats; the first is the "
                                            "primary kernel (docs/paper.md §1)")] = (3, 5, 7)
    links: Annotated[Links, Doc("the wiring the knobs generate: `paper` (the paper's block), `none` (inception stages "
                                "stacked), `residual` (each stage adds its input), `dense` (each stage reads x and every "
                                "earlier stage)")] = "paper"
    stage1_widths: Annotated[tuple[int, ...], Doc(
        "channels of each kernel's stage-1 convolution, by position in `kernels` (later positions reuse the last); "
        "the stage widths of the none/residual/dense wirings; each ≥ 1")] = PAPER_WIDTHS["stage1_widths"]
    stage2_self_widths: Annotated[tuple[int, ...], Doc(
        "paper wiring: channels of the stage-2 convolutions of the first two kernels on the primary branch (≥ 1)")] = \
        PAPER_WIDTHS["stage2_self_widths"]
    stage2_cross_widths: Annotated[tuple[int, ...], Doc(
        "paper wiring: channels of the stage-2 convolutions on the normalised kernel prefixes (≥ 1)")] = \
        PAPER_WIDTHS["stage2_cross_widths"]
    stage3_width: Annotated[int, Doc("paper wiring: channels of the stage-3 convolution (≥ 1)")] = PAPER_WIDTHS["stage3_width"]
    stages: Annotated[int, Doc("stage count of the none/residual/dense wirings (≥ 1)")] = 3
    width_multiplier: Annotated[float, Doc("scales every width above (> 0; rounded, at least 1 channel)")] = 1.0
    out_channels: Annotated[int, Doc("channels of the block's 1×1 output convolution (≥ 1)")] = 24
    norm: Annotated[Literal["batch", "group", "none"], Doc("the normalisation of `norm` nodes and of the output")] = "batch"
    groups: Annotated[int, Doc("group count for norm = \"group\" (≥ 1, clipped to divide the channels)")] = 8
    norm_position: Annotated[Literal["after-act", "in-conv"], Doc(
        "`after-act`: the graph's `norm` nodes normalise (the paper's order); `in-conv`: every convolution normalises "
        "before its activation instead")] = "after-act"
    activation: Annotated[Literal["relu", "gelu", "silu"], Doc("the activation after every convolution")] = "relu"
    pool: Annotated[Literal["max", "avg", "conv", "none"], Doc(
        "the downsampling after the block: 2×2 max or average pooling, a stride-2 convolution, or none")] = "max"
    nodes: Annotated[tuple[NodeSpec, ...], Doc("an explicit graph (tables, see below); overrides the knobs above when "
                                               "given")] = ()
    output: Annotated[tuple[str, ...], Doc("the tensors merged by the 1×1 output convolution (explicit graphs "
                                           "only)")] = ()


@dataclass(frozen=True)
class HeadSpec:
    """The classifier: the paper's dense stack with dropout, or global-average-pool + linear."""

    kind: Annotated[Literal["dense", "gap"], Doc("`dense`: the paper's stack of dense layers with dropout; `gap`: "
                                                 "global average pooling, dropout, one linear layer")] = "dense"
    hidden: Annotated[tuple[int, ...], Doc("dense head: the hidden layers' widths, each ≥ 1 ([] = flatten + linear)")] = \
        (256, 128, 128, 64)
    dropout: Annotated[float, Doc("the dropout probability, in [0, 1)")] = 0.3


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: stacked MK blocks, a head, the input shape and the class count."""

    name: Annotated[str, Doc("the model's name in rows and the report", default="the file's name")] = "lrnet_paper"
    blocks: Annotated[tuple[MKBlockSpec, ...], Doc("the MK blocks, 1 to 5 (at most as many pooling blocks as the input size halves to 1)")] = (MKBlockSpec(),) * 3
    head: Annotated[HeadSpec, Doc("the classifier")] = HeadSpec()
    in_channels: Annotated[int, Doc("the input's channels (≥ 1)")] = 1
    input_size: Annotated[int, Doc("the input's height and width in pixels (≥ 1)")] = 28
    num_classes: Annotated[int, Doc("the classes the head predicts (≥ 1)")] = 10
    defaults: Annotated[Literal["pytorch", "keras"], Doc(
        "`keras`: the authors' Keras defaults (Glorot-uniform weights, zero biases, BatchNorm momentum 0.99 in Keras "
        "terms = 0.01 in PyTorch's, ε 1e-3); `pytorch`: PyTorch's. Initialisation and BN only: same cost")] = "pytorch"

    def digest(self) -> str:
        """A short hash of the resolved spec (same hash = same network)."""
        payload = dataclasses.asdict(dataclasses.replace(self, name=""))
        if self.defaults == "pytorch":  # the default leaves every digest as it was before the field existed
            payload.pop("defaults")
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- graph expansion


def _scaled(width: int, multiplier: float) -> int:
    return max(1, round(width * multiplier))


def _at(widths: tuple[int, ...], i: int) -> int:
    return widths[min(i, len(widths) - 1)]


def block_graph(spec: MKBlockSpec) -> tuple[tuple[NodeSpec, ...], tuple[str, ...]]:
    """The block's tensor graph (nodes, merged outputs): the explicit one or the one its knobs generate."""
    if spec.nodes:
        return spec.nodes, spec.output
    return WIRINGS[spec.links](spec)


def _paper_wiring(spec: MKBlockSpec) -> tuple[tuple[NodeSpec, ...], tuple[str, ...]]:
    """docs/paper.md §1 generalised to any ascending kernel set k1 < k2 < … (k1 is the primary kernel).

    Stage 1: a_k = conv_k(x); prefixes p_j = cat[x, a_k1..a_kj] (j ≥ 2); n1 = BN(a_k1), np_j = BN(p_j).
    Stage 2: t = cat[x, conv_k(n1) for the first two kernels, n1]; u = cat[x, conv_kj(np_j) for j ≥ 2].
    Stage 3: v = BN(conv_k1(BN(u))). Output: cat[x, BN(t), n1, np_2.., BN(u), v] → 1×1 conv.
    With (3, 5, 7) this is exactly the paper's block.
    """
    ks, m = spec.kernels, spec.width_multiplier
    nodes: list[NodeSpec] = []
    a = [f"a{k}" for k in ks]
    for i, k in enumerate(ks):
        nodes.append(NodeSpec(a[i], "conv", ("x",), k, _scaled(_at(spec.stage1_widths, i), m)))
    prefixes = []
    for j in range(1, len(ks)):
        name = "s" + "".join(str(k) for k in ks[: j + 1])
        nodes.append(NodeSpec(name, "cat", ("x", *a[: j + 1])))
        prefixes.append(name)
    n1 = f"n{ks[0]}"
    nodes.append(NodeSpec(n1, "norm", (a[0],)))
    normed_prefixes = []
    for name in prefixes:
        nodes.append(NodeSpec("n" + name[1:], "norm", (name,)))
        normed_prefixes.append("n" + name[1:])
    t_parts = []
    for i, k in enumerate(ks[:2]):
        nodes.append(NodeSpec(f"t{k}", "conv", (n1,), k, _scaled(_at(spec.stage2_self_widths, i), m)))
        t_parts.append(f"t{k}")
    nodes.append(NodeSpec("t", "cat", ("x", *t_parts, n1)))
    u_parts = []
    for j, src in enumerate(normed_prefixes, start=1):
        k = ks[j]
        nodes.append(NodeSpec(f"u{k}", "conv", (src,), k, _scaled(_at(spec.stage2_cross_widths, j - 1), m)))
        u_parts.append(f"u{k}")
    nodes.append(NodeSpec("u", "cat", ("x", *u_parts)))
    nodes.append(NodeSpec("nt", "norm", ("t",)))
    nodes.append(NodeSpec("nu", "norm", ("u",)))
    nodes.append(NodeSpec(f"v{ks[0]}", "conv", ("nu",), ks[0], _scaled(spec.stage3_width, m)))
    nodes.append(NodeSpec("v", "norm", (f"v{ks[0]}",)))
    return tuple(nodes), ("x", "nt", n1, *normed_prefixes, "nu", "v")


def _stage(spec: MKBlockSpec, stage: int, source: str) -> tuple[list[NodeSpec], str]:
    """One inception stage on `source`: a conv per kernel, concatenated (unnormalised)."""
    nodes, parts = [], []
    for i, k in enumerate(spec.kernels):
        name = f"b{stage}_{k}x{k}"
        nodes.append(NodeSpec(name, "conv", (source,), k, _scaled(_at(spec.stage1_widths, i), spec.width_multiplier)))
        parts.append(name)
    nodes.append(NodeSpec(f"c{stage}", "cat", tuple(parts)))
    return nodes, f"c{stage}"


def _plain_wiring(spec: MKBlockSpec) -> tuple[tuple[NodeSpec, ...], tuple[str, ...]]:
    """links = "none": inception stages stacked with no skip or concatenation links."""
    nodes, h = [], "x"
    for s in range(1, spec.stages + 1):
        stage_nodes, cat = _stage(spec, s, h)
        nodes += [*stage_nodes, NodeSpec(f"h{s}", "norm", (cat,))]
        h = f"h{s}"
    return tuple(nodes), (h,)


def _residual_wiring(spec: MKBlockSpec) -> tuple[tuple[NodeSpec, ...], tuple[str, ...]]:
    """links = "residual": h_s = BN(stage(h_{s-1}) + h_{s-1}), 1×1 projection where channels differ."""
    nodes, h = [], "x"
    for s in range(1, spec.stages + 1):
        stage_nodes, cat = _stage(spec, s, h)
        nodes += [*stage_nodes, NodeSpec(f"r{s}", "add", (cat, h)), NodeSpec(f"h{s}", "norm", (f"r{s}",))]
        h = f"h{s}"
    return tuple(nodes), (h,)


def _dense_wiring(spec: MKBlockSpec) -> tuple[tuple[NodeSpec, ...], tuple[str, ...]]:
    """links = "dense": every stage sees the concatenation of x and all earlier stages."""
    nodes, seen = [], ["x"]
    for s in range(1, spec.stages + 1):
        source = seen[0]
        if len(seen) > 1:
            source = f"d{s}"
            nodes.append(NodeSpec(source, "cat", tuple(seen)))
        stage_nodes, cat = _stage(spec, s, source)
        nodes += [*stage_nodes, NodeSpec(f"h{s}", "norm", (cat,))]
        seen.append(f"h{s}")
    return tuple(nodes), tuple(seen)


#: Each link type (`Links`) → the function that wires its block graph (tests/test_specs.py checks the two agree).
WIRINGS = {"paper": _paper_wiring, "none": _plain_wiring, "residual": _residual_wiring, "dense": _dense_wiring}


def graph_channels(nodes: tuple[NodeSpec, ...], in_channels: int) -> dict[str, int]:
    """Channel count of every tensor of a block graph whose input `x` has `in_channels`."""
    ch = {"x": in_channels}
    for node in nodes:
        ch[node.name] = lookup(node.op).channels(node, ch)
    return ch


# --------------------------------------------------------------------------- validation

MAX_BLOCKS = 5


def validate_network(spec: NetworkSpec, where: str = "spec") -> NetworkSpec:
    """Check everything typing cannot: kernels, widths, graph references, block count, map size."""

    def fail(key: str, problem: str, allowed: str) -> typing.NoReturn:
        raise SpecError.at(where, key, problem, allowed)

    if not 1 <= len(spec.blocks) <= MAX_BLOCKS:
        fail("blocks", f"{len(spec.blocks)} blocks", f"1 to {MAX_BLOCKS} MK blocks")
    for key, value in (("in_channels", spec.in_channels), ("num_classes", spec.num_classes), ("input_size", spec.input_size)):
        if value < 1:
            fail(key, f"{value} is not positive", "an integer ≥ 1")
    size = spec.input_size
    for b, block in enumerate(spec.blocks):
        at = f"blocks[{b}]"
        if not block.kernels and not block.nodes:
            fail(f"{at}.kernels", "empty kernel set", "one or more odd kernel sizes, e.g. [3, 5, 7]")
        for k in block.kernels:
            if k < 1 or k % 2 == 0:
                fail(f"{at}.kernels", f"kernel {k} is {'even' if k > 0 else 'not positive'}", "odd sizes ≥ 1 (1, 3, 5, 7, 9, …)")
        if list(block.kernels) != sorted(set(block.kernels)):
            fail(f"{at}.kernels", f"{list(block.kernels)} is not ascending without repeats", f"e.g. {sorted(set(block.kernels))}")
        for key in ("stage1_widths", "stage2_self_widths", "stage2_cross_widths"):
            widths = getattr(block, key)
            if not widths or min(widths) < 1:
                fail(f"{at}.{key}", f"{list(widths)} has a zero or negative width", "a list of integers ≥ 1")
        for key in ("stage3_width", "out_channels", "stages", "groups"):
            if getattr(block, key) < 1:
                fail(f"{at}.{key}", f"{getattr(block, key)} is not positive", "an integer ≥ 1")
        if not (block.width_multiplier > 0 and math.isfinite(block.width_multiplier)):
            fail(f"{at}.width_multiplier", f"{block.width_multiplier} is not positive and finite", "a number > 0, e.g. 0.5, 1, 2")
        _validate_graph(block, at, fail)
        if block.pool != "none":
            size //= 2
            if size < 1:
                fail(f"{at}.pool", f"the {spec.input_size}×{spec.input_size} input is pooled to nothing by block {b + 1}",
                     f"at most {_max_pooled_blocks(spec.input_size)} pooling blocks for this input size")
    if spec.head.kind == "dense" and min(spec.head.hidden, default=1) < 1:
        fail("head.hidden", f"{list(spec.head.hidden)} has a zero width", "a list of integers ≥ 1")
    if not 0 <= spec.head.dropout < 1:
        fail("head.dropout", f"{spec.head.dropout} is outside [0, 1)", "a probability in [0, 1)")
    return spec


def _max_pooled_blocks(size: int) -> int:
    n = 0
    while size // 2 >= 1:
        size //= 2
        n += 1
    return n


def _validate_graph(block: MKBlockSpec, at: str, fail) -> None:
    if block.nodes and not block.output:
        fail(f"{at}.output", "an explicit graph needs output tensors", "names of nodes (or \"x\") to merge")
    nodes, output = block_graph(block)
    known = {"x"}
    for i, node in enumerate(nodes):
        key = f"{at}.nodes[{i}]"
        if not node.name.isidentifier():
            fail(f"{key}.name", f"{node.name!r} is not a plain name", "letters, digits and _ (not starting with a digit)")
        if node.name in known:
            fail(f"{key}.name", f"tensor {node.name!r} is defined twice", "unique names other than \"x\"")
        op = OPS.get(node.op) if isinstance(node.op, str) else None
        if op is None:
            fail(f"{key}.op", f"{node.op!r} is not a valid choice", ALLOWED_OPS)
        problem = op.input_problem(len(node.inputs))
        if problem:
            fail(f"{key}.inputs", *problem)
        for name in node.inputs:
            if name not in known:
                fail(f"{key}.inputs", f"tensor {name!r} does not exist (yet)", _names(known))
        bad_size = op.size_problem(node)
        if bad_size:
            field, *problem = bad_size
            fail(f"{key}.{field}", *problem)
        known.add(node.name)
    for name in output:
        if name not in known:
            fail(f"{at}.output", f"tensor {name!r} does not exist", _names(known))


def _names(known: set[str]) -> str:
    return "one of " + ", ".join(sorted(known))


# --------------------------------------------------------------------------- TOML loading


_NETWORK_KEYS = ("name", "blocks", "block", "head", "in_channels", "input_size", "num_classes", "defaults")


def network_from_mapping(data: Mapping[str, Any], where: str = "spec") -> NetworkSpec:
    """A NetworkSpec from a TOML document.

    `block` is a table applied to every block and `blocks` either a count (repeat `block`) or a list
    of tables, each overriding `block` for that position.
    """
    data = dict(data)
    for key in data:
        if key not in _NETWORK_KEYS:
            raise unknown_key(where, key, _NETWORK_KEYS)
    base = data.pop("block", {})
    if not isinstance(base, dict):
        raise SpecError.at(where, "block", f"got {json.dumps(base)}", "a table of MK-block settings")
    blocks = data.pop("blocks", 3)
    if isinstance(blocks, bool) or not isinstance(blocks, (int, list)):
        raise SpecError.at(where, "blocks", f"got {json.dumps(blocks)}", f"a block count (1 to {MAX_BLOCKS}) or a list of block tables")
    if isinstance(blocks, int):
        if not 1 <= blocks <= MAX_BLOCKS:
            raise SpecError.at(where, "blocks", f"{blocks} blocks", f"1 to {MAX_BLOCKS} MK blocks")
        blocks = [{}] * blocks
    built = []
    for i, override in enumerate(blocks):
        if not isinstance(override, dict):
            raise SpecError.at(where, f"blocks[{i}]", f"got {json.dumps(override)}", "a table of MK-block settings")
        merged = {**base, **override}
        if isinstance(merged.get("nodes"), list):  # anything else is the reader's type error
            merged["nodes"] = [_node_table(n, f"blocks[{i}].nodes[{j}]", where) for j, n in enumerate(merged["nodes"])]
        built.append(from_mapping(MKBlockSpec, merged, where, prefix=f"blocks[{i}]." if override else "block."))
    head = coerce(data.pop("head", {}), HeadSpec, "head", where)
    spec = from_mapping(NetworkSpec, data, where)
    return validate_network(dataclasses.replace(spec, blocks=tuple(built), head=head), where)


def _node_table(node: Any, key: str, where: str) -> dict:
    if not isinstance(node, dict):
        raise SpecError.at(where, key, f"got {json.dumps(node)}", "a table {name, op, inputs, kernel, width}")
    if isinstance(node.get("inputs"), str):  # `input = "x"` reads better for one-input nodes
        node = {**node, "inputs": [node["inputs"]]}
    if "input" in node:
        node = {k: v for k, v in node.items() if k != "input"} | {"inputs": [node["input"]]}
    missing = [k for k in ("name", "op", "inputs") if k not in node]
    if missing:
        raise SpecError.at(where, key, f"missing {', '.join(missing)}", "a table {name, op, inputs, kernel, width}")
    return node


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing or unparsable file is one SpecError line (`what` says what belongs there)."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found; allowed: {what}") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a file; allowed: {what}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (not UTF-8); allowed: {what} in TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err}); allowed: TOML 1.0") from None


def load_network(path: str | Path) -> NetworkSpec:
    """Load and validate a network spec from a TOML file (the file name is the default model name)."""
    path = Path(path)
    data = read_toml(path, "a path to a .toml network spec (see ablations/specs/) or a registered model name")
    data.setdefault("name", path.stem)
    return network_from_mapping(data, str(path))


def replace_blocks(spec: NetworkSpec, **changes: Any) -> NetworkSpec:
    """The same network with `changes` applied to every block (the ablation primitive)."""
    return dataclasses.replace(spec, blocks=tuple(dataclasses.replace(b, **changes) for b in spec.blocks))

