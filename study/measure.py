"""Params, FLOPs (fvcore), throughput and memory, with the provenance needed to trust the numbers.

FLOP convention: one multiply-add = one FLOP (fvcore's). Beyond fvcore's defaults the kit counts an
elementwise addition as 1 per output element and a k×k pooling window as k·k per output element,
and states activations, concatenation, dropout and reshapes as free, so no op is silently dropped:
`count_flops` reports any op that still has no handle.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

# fvcore imports torch.jit.script, deprecated in recent torch; the warning says nothing about the user's run
warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
from fvcore.nn import FlopCountAnalysis  # noqa: E402
from fvcore.nn.jit_handles import get_shape  # noqa: E402
from torch import nn  # noqa: E402

from study import fast as fast_path  # noqa: E402
from study.errors import KitError  # noqa: E402
from study.models import resolve_model  # noqa: E402

log = logging.getLogger(__name__)

FLOP_CONVENTION = "one multiply-add = one FLOP (fvcore); adds 1/element, k×k pooling k·k/output element; activations, concat free"

_FREE_OPS = (
    "aten::relu", "aten::relu_", "aten::gelu", "aten::silu", "aten::silu_", "aten::cat", "aten::dropout",
    "aten::dropout_", "aten::feature_dropout", "aten::flatten", "aten::expand", "aten::size", "aten::view",
    "aten::reshape", "aten::contiguous", "aten::to", "aten::detach", "aten::clone",
)


def _elementwise_out(inputs: list[Any], outputs: list[Any]) -> int:
    return math.prod(get_shape(outputs[0]))


def _pool(inputs: list[Any], outputs: list[Any]) -> int:
    kernel = inputs[1].toIValue()
    if kernel is None or None in kernel:  # a non-constant list: read the ListConstruct's elements
        kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    return math.prod(get_shape(outputs[0])) * math.prod(kernel if isinstance(kernel, (list, tuple)) else [kernel] * 2)


def flop_analysis(model: nn.Module, example: torch.Tensor) -> FlopCountAnalysis:
    """An fvcore FlopCountAnalysis with the kit's handles registered (see the module docstring)."""
    analysis = FlopCountAnalysis(model, example)
    analysis.set_op_handle(**{op: None for op in _FREE_OPS})
    analysis.set_op_handle(**{
        "aten::add": _elementwise_out, "aten::add_": _elementwise_out,
        "aten::max_pool2d": _pool, "aten::avg_pool2d": _pool,
    })
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis


def count_params(model: nn.Module) -> dict[str, int]:
    """Trainable and total parameters (buffers such as BN running statistics excluded)."""
    return {
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params_total": sum(p.numel() for p in model.parameters()),
    }


#: The two counters a FLOP count can come from (`count_flops` says which in "flops_counter").
FVCORE, DISPATCH = "fvcore", "torch.utils.flop_counter"


def count_flops(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> dict[str, Any]:
    """Inference FLOPs per image (eval mode), a per-block breakdown, any op left uncounted, and the counter.

    fvcore counts through TorchScript tracing; where it fails on a model, the count falls back to torch's
    dispatch-level counter (`dispatch_flops`: convolutions and matrix products only, which fvcore's total exceeds by
    its norm, pooling and addition counts, under 2 % on every registered model: docs/flops.md) and says so."""
    was_training = model.training
    model.eval()
    try:
        example = torch.zeros(input_shape, device=next(model.parameters()).device)
        try:
            analysis = flop_analysis(model, example)
            total = analysis.total() // input_shape[0]
            by_module = analysis.by_module()
        except Exception as err:  # noqa: BLE001 - any tracing failure: the other counter still counts
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            log.warning("fvcore could not count %s (%s); its FLOPs are counted by %s instead (convolutions and matrix "
                        "products only)", type(model).__name__, first, DISPATCH)
            return {"flops": dispatch_flops(model, input_shape), "flops_by_block": {}, "uncounted_ops": {},
                    "flops_counter": DISPATCH}
        blocks = {}
        if hasattr(model, "blocks"):
            for i in range(len(model.blocks)):
                blocks[f"block{i + 1}"] = by_module.get(f"blocks.{i}", 0) // input_shape[0]
            blocks["head"] = by_module.get("head", 0) // input_shape[0]
        return {"flops": int(total), "flops_by_block": blocks, "uncounted_ops": dict(analysis.unsupported_ops()),
                "flops_counter": FVCORE}
    finally:
        model.train(was_training)


@torch.no_grad()
def dispatch_flops(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> int:
    """Multiply-adds per image of one eval-mode forward pass, counted by `torch.utils.flop_counter.FlopCounterMode`
    at dispatch level (its FLOPs halved: it counts a multiply-add as two). It counts convolutions and matrix
    products, not norms, pooling or additions."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(input_shape, device=next(model.parameters()).device))
        return int(counter.get_total_flops() // 2 // input_shape[0])
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- throughput


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for a precision name (fp32 = no autocast)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device: str, steps: int) -> float:
    """Seconds for `steps` calls: CUDA events on a GPU, perf_counter on the CPU."""
    if torch.device(device).type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000
    begin = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - begin


def _measure(fn: Callable[[], None], batch: int, device: str, steps: int, warmup: int, repeats: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    _synchronize(device)
    seconds = [_timed(fn, device, steps) for _ in range(repeats)]
    median = statistics.median(seconds)
    return {"img_per_s": batch * steps / median, "ms_per_step": 1000 * median / steps,
            "spread_pct": 100 * (max(seconds) - min(seconds)) / median}


def time_inference(model: nn.Module, batch: int = 128, *, device: str = "cpu", precision: str = "fp32",
                   channels_last: bool = False, input_shape: tuple[int, int, int] = (1, 28, 28),
                   steps: int = 5, warmup: int = 2, repeats: int = 5) -> dict[str, float]:
    """Inference img/s (eval mode, no grad): warm-up, then the median of `repeats` timings of `steps` batches."""
    x = torch.rand(batch, *input_shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model.eval()

    def step() -> None:
        with torch.inference_mode(), autocast(device, precision):
            model(x)

    return _measure(step, batch, device, steps, warmup, repeats)


def time_training(model: nn.Module, batch: int = 128, *, device: str = "cpu", precision: str = "fp32",
                  channels_last: bool = False, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                  steps: int = 3, warmup: int = 2, repeats: int = 5) -> dict[str, float]:
    """Training img/s (forward, cross-entropy, backward, Adam step) measured like `time_inference`."""
    x = torch.rand(batch, *input_shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    return _measure(step, batch, device, steps, warmup, repeats)


def try_batches(fn: Callable[[int], dict[str, float]], batch: int) -> dict[str, Any]:
    """Run `fn(batch)`, halving the batch on out-of-memory; the error is recorded, not raised."""
    while batch >= 1:
        try:
            return {"batch": batch, **fn(batch)}
        except torch.OutOfMemoryError as err:
            error = f"out of memory at batch {batch}: {str(err).splitlines()[0]}"
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            batch //= 2
    return {"batch": 0, "img_per_s": float("nan"), "error": error}


def peak_memory_mb(device: str) -> float:
    """Peak memory: CUDA max allocated on a GPU, else the process's peak resident set (both in MiB)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:  # Linux: this process image's own high-water mark (ru_maxrss survives exec: a child would report
        # its parent's peak whenever that was larger)
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**10
    except (OSError, StopIteration, ValueError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str, precision: str) -> dict[str, Any]:
    """Versions, device and threads: what a reader needs to compare two numbers (CUDA and cuDNN on a GPU), and a
    hash of the kit's uncommitted changes ("" for a clean tree)."""
    cuda = torch.device(device).type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else _cpu_name()
    out = {"torch_version": torch.__version__, "python": platform.python_version(), "device": device,
           "device_name": name, "threads": torch.get_num_threads(), "precision": precision, **library_versions(),
           "git_diff_hash": git_diff_hash()}
    if cuda:
        out.update(cuda_version=str(torch.version.cuda), cudnn_version=str(torch.backends.cudnn.version()))
    return out


@functools.cache
def library_versions() -> dict[str, str]:
    """The versions a reviewer asks for beside torch's: torchvision, optuna, numpy, fvcore."""
    from importlib import metadata

    out = {}
    for package in ("torchvision", "optuna", "numpy", "fvcore"):
        try:
            out[f"{package}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[f"{package}_version"] = "not installed"
    return out


@functools.cache
def git_diff_hash() -> str:
    """sha256[:12] of the kit's uncommitted changes to tracked files (`git diff HEAD`), "" when there are none or
    no git: with the commit it names the exact code a row came from."""
    import hashlib
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    try:
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=root, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return hashlib.sha256(diff).hexdigest()[:12] if diff else ""


def git_commit() -> str:
    """The kit's git commit (with -dirty when the tree has changes), or "unknown"."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) or "unknown"


def profile_model(name: str, *, batch: int = 128, device: str = "cpu", precision: str = "fp32", channels_last: bool = False,
            compile: bool = False, fast: bool = False, timing: bool = True, repeats: int = 5) -> dict[str, Any]:
    """Everything `study profile` reports, as a dict: counts, and (with `timing`) train/inference throughput
    and peak memory under one setting."""

    if device == "cuda" and not torch.cuda.is_available():
        raise KitError("--device cuda: no CUDA device is visible; use --device cpu or run on a GPU machine")
    resolved = resolve_model(name)
    size, channels = resolved.input_size, resolved.in_channels
    classes = resolved.spec.num_classes if resolved.spec else 10
    model = resolved.build(classes)
    result: dict[str, Any] = {"model": name, **count_params(model), **count_flops(model, resolved.input_shape),
                              "flop_convention": FLOP_CONVENTION}
    if fast:
        precision, channels_last, compile = fast_path.fast_setting(device)
        if device == "cpu":
            fast_path.tune_allocator()
    result["setting"] = {"precision": precision, "channels_last": channels_last, "compile": compile, "fast": fast, "batch": batch}
    result["provenance"] = provenance(device, precision)
    if not timing:
        return result
    model = model.to(device)
    train_model, infer_model = (fast_path.optimize(model, "train"), fast_path.optimize(model, "infer")) if fast else (model, model)
    if channels_last:
        train_model = train_model.to(memory_format=torch.channels_last)
        infer_model = infer_model.to(memory_format=torch.channels_last)
    if compile:
        train_model, infer_model = torch.compile(train_model), torch.compile(infer_model)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    common = {"device": device, "precision": precision, "channels_last": channels_last,
              "input_shape": (channels, size, size), "repeats": repeats}
    result["train"] = try_batches(lambda b: time_training(train_model, b, num_classes=classes, **common), batch)
    result["inference"] = try_batches(lambda b: time_inference(infer_model, b, **common), batch)
    result["train_img_per_s"] = result["train"]["img_per_s"]
    result["infer_img_per_s"] = result["inference"]["img_per_s"]
    result["peak_mem_mb"] = peak_memory_mb(device)
    return result
