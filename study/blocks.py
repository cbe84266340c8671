"""The MK-block builder: one module that executes any block graph from `study.spec`, the network
that stacks them, and the analytic complexity of a block (cross-checked against fvcore in tests).
"""

from __future__ import annotations

import torch
from torch import nn

from study.spec import HeadSpec, MKBlockSpec, NetworkSpec, NodeSpec, block_graph, graph_channels

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


class MKBlock(nn.Module):
    """A multi-kernel block built from a graph of named tensors (see `study.spec.block_graph`).

    Convolutions are registered under their node names (`a3`, `a5`, `t3`, `u7`, …) so a state dict
    reads like the paper's figure. `forward` evaluates the nodes in order, merges the `output`
    tensors with a 1×1 convolution, normalises and pools.
    """

    def __init__(self, spec: MKBlockSpec, in_channels: int):
        super().__init__()
        self.spec = spec
        self.nodes, self.output = block_graph(spec)
        self.channels = graph_channels(self.nodes, in_channels)
        in_conv = spec.norm_position == "in-conv" and spec.norm != "none"
        self.convs = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for node in self.nodes:
            if node.op == "conv":
                norm = make_norm(spec.norm, node.width, spec.groups) if in_conv else None
                self.convs[node.name] = ConvAct(self.channels[node.inputs[0]], node.width, node.kernel, spec.activation, norm)
            elif node.op == "norm":
                # in-conv placement already normalised every conv; the graph's norm nodes become identities
                kind = "none" if in_conv else spec.norm
                self.norms[node.name] = make_norm(kind, self.channels[node.name], spec.groups)
            elif node.op == "add" and self.channels[node.inputs[1]] != self.channels[node.name]:
                self.projections[node.name] = nn.Conv2d(self.channels[node.inputs[1]], self.channels[node.name], 1)
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
        if node.op == "conv":
            return self.convs[node.name](env[node.inputs[0]])
        if node.op == "cat":
            return torch.cat([env[i] for i in node.inputs], 1)
        if node.op == "norm":
            return self.norms[node.name](env[node.inputs[0]])
        skip = env[node.inputs[1]]
        if node.name in self.projections:
            skip = self.projections[node.name](skip)
        return env[node.inputs[0]] + skip

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
    in_conv = spec.norm_position == "in-conv" and spec.norm != "none"
    # eval-mode BN folds to a scale and shift (2/element); GroupNorm computes its statistics at
    # inference too (fvcore: 5/element with affine)
    norm_cost = {"batch": 2, "group": 5, "none": 0}[spec.norm]
    hw = size * size
    flops = params = 0

    def conv(cin: int, cout: int, k: int, bias: bool) -> None:
        nonlocal flops, params
        flops += hw * cin * cout * k * k
        params += cin * cout * k * k + (cout if bias else 0)

    def norm(c: int) -> None:
        nonlocal flops, params
        flops += norm_cost * hw * c
        params += 2 * c if spec.norm != "none" else 0

    for node in nodes:
        if node.op == "conv":
            conv(ch[node.inputs[0]], node.width, node.kernel, bias=not in_conv)
            if in_conv:
                norm(node.width)
        elif node.op == "norm" and not in_conv:
            norm(ch[node.name])
        elif node.op == "add":
            if ch[node.inputs[1]] != ch[node.name]:
                conv(ch[node.inputs[1]], ch[node.name], 1, bias=True)
            flops += hw * ch[node.name]
    out = spec.out_channels
    conv(sum(ch[n] for n in output), out, 1, bias=not in_conv)
    norm(out)
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
