"""The MK-block builder: one module that executes any block graph from `study.spec`, the network
that stacks them, and the analytic complexity of a block (cross-checked against fvcore in tests).
What each graph op builds, computes and costs is its entry in the op table (`study.ops.OPS`).
"""

from __future__ import annotations

import torch
from torch import nn

from study.ops import (
    REGISTRIES,
    BlockSettings,
    ConvAct,
    OpDef,
    conv_cost,
    lookup,
    make_norm,
    norm_cost,
)
from study.spec import HeadSpec, MKBlockSpec, NetworkSpec, NodeSpec, block_graph, graph_channels


def block_settings(spec: MKBlockSpec) -> BlockSettings:
    """The block-wide settings its nodes' modules and costs depend on."""
    in_conv = spec.norm_position == "in-conv" and spec.norm != "none"
    return BlockSettings(spec.norm, spec.groups, spec.activation, in_conv)


class MKBlock(nn.Module):
    """A multi-kernel block built from a graph of named tensors (see `study.spec.block_graph`).

    Each node's module (`study.ops.OPS`: its `build`) is registered under the node's name in its op's
    ModuleDict (`convs`, `norms`, `projections`), so a state dict reads like the paper's figure (`a3`,
    `a5`, `t3`, `u7`, …). `forward` evaluates the nodes in order, merges the `output` tensors with a
    1×1 convolution, normalises and pools.
    """

    def __init__(self, spec: MKBlockSpec, in_channels: int):
        super().__init__()
        self.spec = spec
        self.nodes, self.output = block_graph(spec)
        self.channels = graph_channels(self.nodes, in_channels)
        settings = block_settings(spec)
        in_conv = settings.in_conv
        for registry in REGISTRIES:
            setattr(self, registry, nn.ModuleDict())
        for node in self.nodes:  # in node order: the order modules draw their initial weights
            op = lookup(node.op)
            module = op.build(node, self.channels, settings)
            if module is not None:
                getattr(self, op.registry)[node.name] = module
        merged = sum(self.channels[name] for name in self.output)
        out = spec.out_channels
        if in_conv:
            self.merge = ConvAct(merged, out, 1, spec.activation, make_norm(spec.norm, out, spec.groups))
            self.merge_norm = nn.Identity()
        else:
            self.merge = ConvAct(merged, out, 1, spec.activation)
            self.merge_norm = make_norm(spec.norm, out, spec.groups)
        self.pool = {
            "max": lambda: nn.MaxPool2d(2),
            "avg": lambda: nn.AvgPool2d(2),
            "conv": lambda: nn.Conv2d(out, out, 2, stride=2),
            "none": nn.Identity,
        }[spec.pool]()
        self.out_channels = out

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every node of the graph in order; returns the tensors the output stage merges."""
        env = {"x": x}  # N x C x H x W
        for node in self.nodes:
            env[node.name] = self._node(node, env)
        return [env[name] for name in self.output]

    def _node(self, node: NodeSpec, env: dict[str, torch.Tensor]) -> torch.Tensor:
        op = lookup(node.op)
        return op.apply(self.node_module(node, op), [env[i] for i in node.inputs])

    def node_module(self, node: NodeSpec, op: OpDef) -> nn.Module | None:
        """The module built for `node` (of op `op`); None where its op built none (a cat, an add without projection)."""
        modules = getattr(self, op.registry) if op.registry else None
        return modules[node.name] if modules is not None and node.name in modules else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H x W -> N x out_channels x H/2 x W/2 (pooling on)."""
        merged = torch.cat(self._forward(x), 1)  # N x sum(output channels) x H x W
        return self.pool(self.merge_norm(self.merge(merged)))


def make_head(spec: HeadSpec, channels: int, size: int, num_classes: int) -> nn.Sequential:
    """The paper's dense stack (flatten, Linear-ReLU-Dropout per hidden width) or GAP + linear."""
    if spec.kind == "gap":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(spec.dropout), nn.Linear(channels, num_classes))
    layers: list[nn.Module] = [nn.Flatten()]
    width = channels * size * size
    for hidden in spec.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(spec.dropout)]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class MKNet(nn.Module):
    """Stacked MK blocks and a head, built from a `NetworkSpec`."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        blocks, channels, size = [], spec.in_channels, spec.input_size
        for block_spec in spec.blocks:
            block = MKBlock(block_spec, channels)
            blocks.append(block)
            channels = block.out_channels
            size = size // 2 if block_spec.pool != "none" else size
        self.blocks = nn.Sequential(*blocks)
        self.head = make_head(spec.head, channels, size, spec.num_classes)
        if spec.defaults == "keras":
            keras_defaults(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x S x S -> N x num_classes logits."""
        return self.head(self.blocks(x))


#: Keras's BatchNormalization defaults: momentum 0.99 (the weight of the old running average; PyTorch's
#: `momentum` is the weight of the new batch, so 0.01) and epsilon 1e-3 (PyTorch: 1e-5).
KERAS_BN_MOMENTUM, KERAS_BN_EPS = 0.01, 1e-3


def keras_defaults(model: nn.Module) -> nn.Module:
    """Give a module Keras's defaults in place: Glorot-uniform conv and dense weights, zero biases, Keras BN."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum, module.eps = KERAS_BN_MOMENTUM, KERAS_BN_EPS
    return model


def block_complexity(spec: MKBlockSpec, in_channels: int, size: int) -> dict[str, int]:
    """Analytic inference cost of one block at `size`×`size` input, in the kit's FLOP convention.

    One multiply-add = one FLOP (fvcore's convention); convolution biases are free; an eval-mode
    affine norm costs 2 per element; an addition 1 per element; a k×k pooling window k·k per output
    element; activations and concatenations 0. Returns {"flops", "params"}.
    """
    nodes, output = block_graph(spec)
    ch = graph_channels(nodes, in_channels)
    settings = block_settings(spec)
    hw = size * size
    out = spec.out_channels
    costs = [lookup(node.op).cost(node, ch, settings) for node in nodes]  # (FLOPs per pixel, params)
    costs.append(conv_cost(sum(ch[n] for n in output), out, 1, bias=not settings.in_conv))  # the merge
    costs.append(norm_cost(spec.norm, out))  # its norm, in the conv or after it
    flops = hw * sum(f for f, _ in costs)
    params = sum(p for _, p in costs)
    pooled = (size // 2) ** 2 * out
    if spec.pool in ("max", "avg"):
        flops += pooled * 4
    elif spec.pool == "conv":
        flops += pooled * out * 4
        params += out * out * 4 + out
    return {"flops": flops, "params": params}


def activation_elements(spec: NetworkSpec) -> int:
    """Tensor elements one image's forward pass creates in the MK blocks (every node's output, the merge
    and the pooled output): what training keeps for the backward pass, per image, before any allocation."""
    total = 0
    channels, size = spec.in_channels, spec.input_size
    for block in spec.blocks:
        nodes, _ = block_graph(block)
        ch = graph_channels(nodes, channels)
        total += size * size * (sum(ch[n.name] for n in nodes) + block.out_channels)
        channels = block.out_channels
        size = size // 2 if block.pool != "none" else size
        total += size * size * channels
    return total


def network_complexity(spec: NetworkSpec) -> dict[str, int]:
    """Analytic inference cost of a whole MK network (blocks and head), in the kit's FLOP convention.

    Equal to fvcore's count (a test checks it); computed without building the network, so the
    capacity matching of study variants can search widths in microseconds.
    """
    flops = params = 0
    channels, size = spec.in_channels, spec.input_size
    for block in spec.blocks:
        cost = block_complexity(block, channels, size)
        flops, params = flops + cost["flops"], params + cost["params"]
        channels = block.out_channels
        size = size // 2 if block.pool != "none" else size
    head = spec.head
    width = channels if head.kind == "gap" else channels * size * size
    if head.kind == "gap":
        flops += channels * size * size  # the global average: one add per input element
    for out in (*(head.hidden if head.kind == "dense" else ()), spec.num_classes):
        flops += width * out
        params += width * out + out
        width = out
    return {"flops": flops, "params": params}
