"""The ops of a block graph in one table, `OPS`: for each op, the inputs it takes, the channels it makes,
the module an `MKBlock` builds for it, how it computes, what it costs and which `study.fast` rewrite it gets.

Why one table: `study.spec` (validation, channel counts), `study.blocks` (modules, forward pass, analytic
cost) and `study.fast` (the fast path) all need these facts. Kept together, adding an op is one entry here
plus its name in `study.spec.Op` (tests/test_ops.py checks that the two agree), and a name that is not in
the table is an error everywhere (`lookup`) instead of being run as some other op.

The modules the builders make (`ConvAct`, `make_norm`) and their costs live here too, so this module
imports only torch and `study.errors`, and `study.spec` imports it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import nn

from study.errors import SpecError

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def make_norm(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """Batch, group (group count clipped to divide `channels`) or no normalisation."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        g = max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)
        return nn.GroupNorm(g, channels)
    return nn.Identity()


class ConvAct(nn.Sequential):
    """A "same" convolution followed by its activation; with `norm` the norm sits between (conv-norm-act)."""

    def __init__(self, cin: int, cout: int, kernel: int, activation: str, norm: nn.Module | None = None):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=norm is None)]
        if norm is not None:
            layers.append(norm)
        layers.append(_ACTIVATIONS[activation]())
        super().__init__(*layers)


#: Inference FLOPs per element of each norm kind: eval-mode BN folds to a scale and shift (2); GroupNorm
#: computes its statistics at inference too (fvcore: 5 with affine).
NORM_FLOPS = {"batch": 2, "group": 5, "none": 0}


def norm_cost(kind: str, channels: int) -> tuple[int, int]:
    """(FLOPs per pixel, parameters) of `make_norm(kind, channels)` at inference, in the kit's FLOP convention."""
    return NORM_FLOPS[kind] * channels, 2 * channels if kind != "none" else 0


def conv_cost(cin: int, cout: int, kernel: int, bias: bool) -> tuple[int, int]:
    """(FLOPs per pixel, parameters) of a "same" convolution: one FLOP per multiply-add, biases free."""
    macs = cin * cout * kernel * kernel
    return macs, macs + (cout if bias else 0)


class Node(Protocol):
    """What an op reads of a graph node (a `study.spec.NodeSpec`)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    kernel: int
    width: int


@dataclass(frozen=True)
class BlockSettings:
    """The block-wide settings (of an `MKBlockSpec`) that a node's module and cost depend on."""

    norm: str  # "batch", "group" or "none"
    groups: int
    activation: str
    in_conv: bool  # a norm inside every conv (conv-norm-act); the graph's norm nodes are then identities


#: How `study.fast` rewrites an op. "fuse": a one-input "same" convolution, stacked with the other
#: convolutions of its input into one (the node is a channel slice of the stacked output); "view": a
#: concatenation, a slice (no copy) where its inputs are adjacent slices of one tensor. An op without a
#: rewrite runs its `apply` on its inputs there as well.
Rewrite = Literal["fuse", "view"]


@dataclass(frozen=True)
class OpDef:
    """Everything the kit knows about one graph op."""

    name: str
    arity: int | None  # the exact input count; None: one or more
    sized: bool  # reads the node's `kernel` and `width`
    channels: Callable[[Node, Mapping[str, int]], int]  # the node's channels, from every earlier tensor's
    #: the `MKBlock` ModuleDict (state-dict prefix) that holds the modules `build` makes; None: it makes none
    registry: str | None
    build: Callable[[Node, Mapping[str, int], BlockSettings], nn.Module | None]
    apply: Callable[[nn.Module | None, Sequence[torch.Tensor]], torch.Tensor]  # (its module, its inputs) -> output
    cost: Callable[[Node, Mapping[str, int], BlockSettings], tuple[int, int]]  # (FLOPs per pixel, parameters)
    rewrite: Rewrite | None

    def input_problem(self, count: int) -> tuple[str, str] | None:
        """(problem, allowed) when a node of this op has `count` inputs it cannot take; else None."""
        if self.arity is None:
            return (f"{self.name} of nothing", "one or more tensor names") if count == 0 else None
        if count != self.arity:
            return f"{self.name} takes {self.arity} input(s), got {count}", f"exactly {self.arity}"
        return None

    def size_problem(self, node: Node) -> tuple[str, str, str] | None:
        """(field, problem, allowed) for a bad `kernel` or `width` of a node that reads them; else None."""
        if not self.sized:
            return None
        if node.kernel < 1 or node.kernel % 2 == 0:
            return "kernel", f"kernel {node.kernel} is even or not positive", "odd sizes ≥ 1"
        if node.width < 1:
            return "width", f"width {node.width}", "an integer ≥ 1"
        return None


# --------------------------------------------------------------------------- conv: kernel×kernel "same", then activation


def _conv_build(node: Node, ch: Mapping[str, int], s: BlockSettings) -> nn.Module:
    norm = make_norm(s.norm, node.width, s.groups) if s.in_conv else None
    return ConvAct(ch[node.inputs[0]], node.width, node.kernel, s.activation, norm)


def _conv_cost(node: Node, ch: Mapping[str, int], s: BlockSettings) -> tuple[int, int]:
    flops, params = conv_cost(ch[node.inputs[0]], node.width, node.kernel, bias=not s.in_conv)
    if s.in_conv:
        norm_flops, norm_params = norm_cost(s.norm, node.width)
        flops, params = flops + norm_flops, params + norm_params
    return flops, params


def _unary(module: nn.Module | None, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return module(xs[0])


# --------------------------------------------------------------------------- cat: channel concatenation


def _concat(module: nn.Module | None, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat(list(xs), 1)


def _free(node: Node, ch: Mapping[str, int], s: BlockSettings) -> tuple[int, int]:
    return 0, 0


# --------------------------------------------------------------------------- norm: the block's norm of one input


def _norm_kind(s: BlockSettings) -> str:
    # in-conv placement already normalised every conv; the graph's norm nodes become identities
    return "none" if s.in_conv else s.norm


def _norm_build(node: Node, ch: Mapping[str, int], s: BlockSettings) -> nn.Module:
    return make_norm(_norm_kind(s), ch[node.name], s.groups)


def _norm_cost(node: Node, ch: Mapping[str, int], s: BlockSettings) -> tuple[int, int]:
    return norm_cost(_norm_kind(s), ch[node.name])


# --------------------------------------------------------------------------- add: sum of two, the second projected 1×1 where channels differ


def _add_build(node: Node, ch: Mapping[str, int], s: BlockSettings) -> nn.Module | None:
    skip = ch[node.inputs[1]]
    return nn.Conv2d(skip, ch[node.name], 1) if skip != ch[node.name] else None


def _add(module: nn.Module | None, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    skip = xs[1] if module is None else module(xs[1])
    return xs[0] + skip


def _add_cost(node: Node, ch: Mapping[str, int], s: BlockSettings) -> tuple[int, int]:
    skip, out = ch[node.inputs[1]], ch[node.name]
    flops, params = conv_cost(skip, out, 1, bias=True) if skip != out else (0, 0)
    return flops + out, params  # one addition per output element


def _first(node: Node, ch: Mapping[str, int]) -> int:
    return ch[node.inputs[0]]


#: The ops, in the order of `study.spec.Op`. The order of their registries fixes `MKBlock`'s
#: ModuleDicts, hence its state-dict and parameter order.
OPS: dict[str, OpDef] = {op.name: op for op in (
    OpDef("conv", arity=1, sized=True, channels=lambda node, ch: node.width, registry="convs",
          build=_conv_build, apply=_unary, cost=_conv_cost, rewrite="fuse"),
    OpDef("cat", arity=None, sized=False, channels=lambda node, ch: sum(ch[i] for i in node.inputs), registry=None,
          build=lambda node, ch, s: None, apply=_concat, cost=_free, rewrite="view"),
    OpDef("norm", arity=1, sized=False, channels=_first, registry="norms",
          build=_norm_build, apply=_unary, cost=_norm_cost, rewrite=None),
    OpDef("add", arity=2, sized=False, channels=_first, registry="projections",
          build=_add_build, apply=_add, cost=_add_cost, rewrite=None),
)}

#: `MKBlock`'s ModuleDicts, in the table's order.
REGISTRIES: tuple[str, ...] = tuple(dict.fromkeys(op.registry for op in OPS.values() if op.registry))

#: The allowed-part of an unknown op's error line (the same words as a spec file's bad `op` value).
ALLOWED_OPS = "one of " + ", ".join(repr(name) for name in OPS)


def lookup(name: str) -> OpDef:
    """The table's entry for `name`; any other name is a SpecError naming it and the known ops."""
    op = OPS.get(name) if isinstance(name, str) else None
    if op is None:
        raise SpecError(f"graph op {name!r} is not in the op table (study.ops.OPS); allowed: {ALLOWED_OPS}")
    return op
