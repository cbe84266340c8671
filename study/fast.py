"""The kit's fastest correct setting per device (`fast_setting`), and `optimize`: an MKNet rewritten to compute
the same function faster.

Why: the plain build runs every small convolution separately and in NCHW, copies every concatenation,
and (under autocast) recasts its weights on every call; on these odd channel counts oneDNN is faster in
channels_last, and on thin inputs per-call overhead dominates. The rewrites (`FastMKBlock`) remove that
work: same-input convolutions fused into one with zero-padded, stacked kernels (where that adds little
arithmetic); concatenations of a fused output's members as channel slices; every block tensor
channels_last; for inference, an eval-mode copy with weights pre-cast to bf16 once. Which graph op gets
which rewrite is its entry in the op table (`study.ops.OPS`, `rewrite`).

"The same function": every rewrite is exact in real arithmetic and tested against the plain build
(outputs and gradients, train and eval mode: tests/test_fast.py); the bf16 setting is the
`torch.autocast(dtype=torch.bfloat16)` version of the plain build. The measurements behind each choice,
and the rewrites tried and not used: docs/performance.md ("The fast path's rewrites").
"""

from __future__ import annotations

import copy
import ctypes
import functools

import torch
from torch import nn
from torch.nn import functional as F

from study.blocks import MKBlock, MKNet
from study.ops import lookup

#: a conv group is fused when the stacked kernel costs at most this many times the separate ones
_FUSE_FLOP_RATIO = 1.25
#: ... or when its input is thinner than this (per-call overhead dominates the arithmetic)
_THIN_INPUT = 16
_FORMAT = torch.channels_last


def fast_setting(device: str) -> tuple[str, bool, bool]:
    """(precision, channels_last, compile) that `study profile --fast` and `--fast` training use.

    On the CPU: bf16 autocast; channels_last is applied per op inside `optimize` (the whole-model
    `.to(channels_last)` is slower), and torch.compile is off (it slowed training on 2 cores).
    On CUDA: bf16, channels_last and torch.compile (tensor cores prefer NHWC; compile fuses the
    elementwise BN/ReLU/cat traffic that dominates a small network on a GPU).
    """
    return ("bf16", False, False) if torch.device(device).type == "cpu" else ("bf16", True, True)


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc mallopt parameters


@functools.cache
def tune_allocator() -> bool:
    """Keep freed tensor memory in glibc's heap instead of handing it back to the OS after every step.

    On the CPU PyTorch allocates through glibc malloc, which by default mmaps each large activation
    and unmaps it when freed, so every training step pays page faults for its activations (the high
    `sys` time of a CPU run). Raising the mmap threshold to its maximum (32 MiB) and the trim
    threshold and top pad keeps those pages mapped (the gain: docs/performance.md). Process-wide; it
    changes speed, never results.
    Returns whether it applied (False off glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return all(libc.mallopt(param, value) == 1 for param, value in (
            (_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 2**30)))
    except (OSError, AttributeError):
        return False


def optimize(model: nn.Module, mode: str, precision: str | None = None) -> nn.Module:
    """The model rewritten for `mode` ("train" or "infer"), computing the same function.

    "train" returns a module that shares the original's parameters and buffers (training it trains
    the original). "infer" returns an eval-mode copy; with `precision` "bf16" (the default on the
    CPU and CUDA, from `fast_setting`) its conv/linear weights are pre-cast to bf16. Models that are
    not MKNets are returned unchanged.
    """
    if mode not in ("train", "infer"):
        raise ValueError(f"optimize: mode {mode!r}; allowed: 'train' or 'infer'")
    if not isinstance(model, MKNet):
        return model
    if mode == "train":
        return FastMKNet(model, frozen=False)
    if precision is None:
        precision = fast_setting(str(next(model.parameters()).device))[0]
    infer = copy.deepcopy(model).eval()
    for p in infer.parameters():
        p.requires_grad_(False)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if dtype is not None:  # pre-cast convolutions and linears once, as autocast would on every call
        for m in infer.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.to(dtype)
    return FastMKNet(infer, frozen=True, dtype=dtype).eval()


def _plain_conv(module: nn.Module) -> tuple[nn.Conv2d, nn.Module] | None:
    """(conv, activation) of a ConvAct without an in-conv norm; None for anything else."""
    if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], nn.Conv2d):
        conv = module[0]
        if conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding == (
                conv.kernel_size[0] // 2, conv.kernel_size[1] // 2) and conv.padding_mode == "zeros":
            return conv, module[1]
    return None


class FusedConv(nn.Module):
    """Same-input "same" convolutions as one convolution with zero-padded, stacked kernels."""

    def __init__(self, convs: list[nn.Conv2d], activation: nn.Module, frozen: bool):
        super().__init__()
        self.members = nn.ModuleList(convs)  # the original modules: parameters stay shared
        self.activation = activation
        self.kernel = max(c.kernel_size[0] for c in convs)
        self.widths = [c.out_channels for c in convs]
        self.frozen = frozen
        if frozen:  # inference copy: build the stacked kernel once, in the compute dtype
            with torch.no_grad():
                weight, bias = self._stacked()
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stacked kernel, made from the original parameters (so gradients reach them)."""
        weights = []
        for c in self.members:
            p = (self.kernel - c.kernel_size[0]) // 2
            weights.append(F.pad(c.weight, (p, p, p, p)) if p else c.weight)
        weight = torch.cat(weights, 0) if len(weights) > 1 else weights[0]
        if all(c.bias is None for c in self.members):
            return weight, None
        biases = [c.bias if c.bias is not None else c.weight.new_zeros(c.out_channels) for c in self.members]
        return weight, torch.cat(biases) if len(biases) > 1 else biases[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H x W -> N x sum(widths) x H x W, the members' activated outputs side by side."""
        weight, bias = (self.weight, self.bias) if self.frozen else self._stacked()
        return self.activation(F.conv2d(x, weight, bias, padding=self.kernel // 2))


def _worth_fusing(convs: list[nn.Conv2d]) -> bool:
    """Whether stacking these same-input convolutions saves time (the thresholds: docs/performance.md)."""
    if len(convs) < 2:
        return len(convs) == 1
    kmax = max(c.kernel_size[0] for c in convs)
    separate = sum(c.out_channels * c.kernel_size[0] ** 2 for c in convs)
    stacked = sum(c.out_channels for c in convs) * kmax ** 2
    return convs[0].in_channels < _THIN_INPUT or stacked <= _FUSE_FLOP_RATIO * separate


class FastMKBlock(nn.Module):
    """An MKBlock's graph executed with fused convolutions, slice-views for concatenations, channels_last."""

    def __init__(self, block: MKBlock, frozen: bool):
        super().__init__()
        self.block = block  # the original: its norms, merge, pool and (shared) conv parameters
        self.groups = nn.ModuleDict()  # first member's name -> FusedConv
        self.group_of: dict[str, tuple[str, int]] = {}  # conv node -> (group, channel offset)
        by_input: dict[tuple[str, str], list] = {}
        for node in block.nodes:
            op = lookup(node.op)
            if op.rewrite != "fuse":
                continue
            plain = _plain_conv(block.node_module(node, op))
            if plain is None:  # in-conv norm: run the original module (its BN needs its own stats)
                continue
            key = (node.inputs[0], type(plain[1]).__name__)
            by_input.setdefault(key, []).append((node.name, *plain))
        for members in by_input.values():
            convs = [m[1] for m in members]
            chunks = [members] if _worth_fusing(convs) else [[m] for m in members]
            for chunk in chunks:
                head = chunk[0][0]
                self.groups[head] = FusedConv([m[1] for m in chunk], chunk[0][2], frozen)
                offset = 0
                for name, conv, _ in chunk:
                    self.group_of[name] = (head, offset)
                    offset += conv.out_channels
        self.merge_fused = None
        if frozen and _plain_conv(block.merge) is not None:
            self.merge_fused = FusedConv([block.merge[0]], block.merge[1], True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H x W -> the block's output (channels_last), the same values as `MKBlock.forward`."""
        block = self.block
        x = _channels_last(x)
        # env holds (base tensor, start, stop) channel ranges, so slices of one fused output can be merged
        env: dict[str, tuple[torch.Tensor, int, int]] = {"x": (x, 0, x.shape[1])}
        computed: dict[str, torch.Tensor] = {}
        for node in block.nodes:
            op = lookup(node.op)  # its `rewrite` says how this path runs it
            if node.name in self.group_of:  # "fuse": its channels of the group's stacked convolution
                head, offset = self.group_of[node.name]
                if head not in computed:
                    computed[head] = self.groups[head](_value(env[node.inputs[0]]))
                env[node.name] = (computed[head], offset, offset + node.width)
            elif op.rewrite == "view":
                env[node.name] = _cat([env[i] for i in node.inputs])
            else:  # no rewrite (or a conv with its own norm, not fused): the op itself
                out = op.apply(block.node_module(node, op), [_value(env[i]) for i in node.inputs])
                env[node.name] = (out, 0, out.shape[1])
        merged = _value(_cat([env[name] for name in block.output]))
        merged = self.merge_fused(merged) if self.merge_fused is not None else block.merge(merged)
        return block.pool(block.merge_norm(merged))


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """`x` in channels_last strides. A one-channel tensor is both layouts at once and keeps NCHW strides under
    `.contiguous(memory_format=channels_last)`, so convolutions on it would answer NCHW and the whole first
    block would run oneDNN's slower NCHW kernels: give it explicit NHWC strides (a view of the same memory)."""
    x = x.contiguous(memory_format=_FORMAT)
    if x.shape[1] == 1 and x.stride(1) != 1:
        n, c, h, w = x.shape
        x = x.as_strided(x.shape, (h * w, 1, w, 1))
    return x


def _value(ref: tuple[torch.Tensor, int, int]) -> torch.Tensor:
    """The tensor a channel range refers to (a view when it is part of a larger one)."""
    base, start, stop = ref
    return base if start == 0 and stop == base.shape[1] else base[:, start:stop]


def _cat(refs: list[tuple[torch.Tensor, int, int]]) -> tuple[torch.Tensor, int, int]:
    """Concatenate channel ranges, merging adjacent ranges of one base (a lone range is a view, no copy)."""
    runs: list[list] = []
    for base, start, stop in refs:
        if runs and runs[-1][0] is base and runs[-1][2] == start:
            runs[-1][2] = stop
        else:
            runs.append([base, start, stop])
    if len(runs) == 1:
        return tuple(runs[0])
    out = torch.cat([_value(tuple(r)) for r in runs], 1)
    return out, 0, out.shape[1]


class FastMKNet(nn.Module):
    """An MKNet whose blocks run as `FastMKBlock`s; the head is the original module."""

    def __init__(self, net: MKNet, frozen: bool, dtype: torch.dtype | None = None):
        super().__init__()
        self.net = net
        self.spec = net.spec
        self.dtype = dtype
        self.blocks = nn.Sequential(*(FastMKBlock(b, frozen) for b in net.blocks))
        self.head = net.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x S x S -> N x num_classes logits (fp32 from a pre-cast inference copy, else the head's dtype)."""
        if self.dtype is None:
            return self.head(self.blocks(x))
        return self.head(self.blocks(x.to(self.dtype))).float()
