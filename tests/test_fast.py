"""`study.fast`: every rewrite computes the plain build's function (fp32: outputs, gradients, BN
statistics; bf16: the autocast version of the plain build), and training the rewrite trains the original."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.nn import functional as F

from study import fast
from study.models import PAPER, build_model
from study.spec import replace_blocks

#: registered MK variants covering every wiring (group norm runs the same, unmodified norm modules)
VARIANTS = ["lrnet_paper", "lrnet_k35", "lrnet_residual", "lrnet_dense"]
#: specs exercising the paths the registry does not: convs with their own norm (not fused), conv pooling
EXTRA_SPECS = {
    "in_conv_norm": replace_blocks(PAPER, norm_position="in-conv", pool="conv"),
    "explicit_gelu_k1": replace_blocks(dataclasses.replace(PAPER, blocks=PAPER.blocks[:2]), kernels=(1, 3), activation="gelu"),
}
BATCH = 4
REL = 1e-5  # fp32 tolerance, relative to the largest magnitude of the compared quantity
GRAD_REL = 5e-5  # gradients sum over batch and positions in another order (fused kernels, slices)
F64_REL = 1e-10  # float64: what is left is summation order alone


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(EXTRA_SPECS.get(name, name))


def _close(actual: torch.Tensor, expected: torch.Tensor, scale: float, rel: float = REL) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=rel * scale + 1e-12)


def _train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)  # same dropout masks in both runs
    model.train()
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    return logits


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(BATCH, 1, 28, 28, generator=g), torch.randint(0, 10, (BATCH,), generator=g)


@pytest.mark.parametrize("name", VARIANTS + list(EXTRA_SPECS))
def test_train_rewrite_matches_plain_outputs_gradients_and_statistics(name, batch):
    """In float64, so that the rounding differences of other kernels (channels_last, fused) cannot flip a
    max-pool's choice between two nearly equal values: in fp32 one such flip reroutes a gradient and moves
    every gradient upstream of it by ~1 %, though both networks compute the same function."""
    x, y = batch
    plain = _model(name).double()
    original = copy.deepcopy(plain)
    rewritten = fast.optimize(original, "train")
    expected = _train_step(plain, x.double(), y)
    actual = _train_step(rewritten, x.double(), y)
    _close(actual, expected, expected.abs().max().item(), F64_REL)
    grads = {n: p.grad for n, p in plain.named_parameters()}
    scale = max(g.abs().max().item() for g in grads.values())  # zero-by-math grads (bias before BN) are noise
    for n, p in original.named_parameters():  # the gradients landed on the ORIGINAL parameters
        _close(p.grad, grads[n], scale, F64_REL)
    for b, b_plain in zip(original.buffers(), plain.buffers(), strict=True):  # BN running statistics
        _close(b.double(), b_plain.double(), max(b_plain.abs().max().item(), 1.0), F64_REL)


def test_train_rewrite_matches_plain_in_fp32(batch):
    """The fp32 kernels the rewrite actually runs: the same logits and BN statistics within fp32 rounding."""
    x, y = batch
    plain = _model("lrnet_paper")
    original = copy.deepcopy(plain)
    expected = _train_step(plain, x, y)
    _close(_train_step(fast.optimize(original, "train"), x, y), expected, expected.abs().max().item(), 2 * REL)
    for b, b_plain in zip(original.buffers(), plain.buffers(), strict=True):
        _close(b.float(), b_plain.float(), max(b_plain.abs().max().item(), 1.0))


@pytest.mark.parametrize("name", ["lrnet_paper", "lrnet_dense"])
def test_every_fused_convolution_runs_channels_last_from_the_first_block_on(name, batch):
    """The image has one channel, so `.contiguous(channels_last)` leaves it NCHW; without explicit NHWC strides
    the first block's convolutions would answer NCHW and run oneDNN's slower NCHW kernels."""
    x, _ = batch
    rewritten = fast.optimize(_model(name), "train")
    layouts = []
    for block in rewritten.blocks:
        for group in block.groups.values():
            group.register_forward_hook(lambda m, args, out: layouts.append((args[0].stride(1), out.stride(1))))
    rewritten(x)
    assert layouts and layouts[0][0] == 1 and all(out == 1 for _, out in layouts), layouts


@pytest.mark.parametrize("name", ["lrnet_paper", "in_conv_norm"])
def test_eval_rewrites_match_plain(name, batch):
    x, _ = batch
    plain = _model(name)
    with torch.no_grad():  # move the BN statistics away from their initial values first
        plain.train()
        plain(torch.rand(BATCH, 1, 28, 28))
    plain.eval()
    with torch.no_grad():
        expected = plain(x)
        scale = expected.abs().max().item()
        _close(fast.optimize(plain, "train").eval()(x), expected, scale)
        _close(fast.optimize(plain, "infer", precision="fp32")(x), expected, scale)


def test_bf16_inference_copy_is_the_autocast_function(batch):
    x, _ = batch
    plain = _model("lrnet_paper").eval()
    infer = fast.optimize(plain, "infer", precision="bf16")
    assert all(p.dtype == torch.float32 for p in plain.parameters())  # the original is untouched
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(x).float()
        under_autocast = infer(x)
    with torch.no_grad():
        without_autocast = infer(x)
    assert under_autocast.dtype == without_autocast.dtype == torch.float32
    # same bf16 roundings of weights and conv inputs; only the image is rounded to bf16 once more
    scale = expected.abs().max().item()
    _close(under_autocast, expected, scale, rel=2e-2)
    _close(without_autocast, under_autocast, scale, rel=1e-6)


def test_training_the_rewrite_trains_the_original(batch):
    x, y = batch
    original = _model("lrnet_paper")
    rewritten = fast.optimize(original, "train")
    assert [id(p) for p in rewritten.parameters()] == [id(p) for p in original.parameters()]
    before = copy.deepcopy(original.state_dict())
    optimizer = torch.optim.Adam(rewritten.parameters(), 1e-3)
    _train_step(rewritten, x, y)
    optimizer.step()
    after = original.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_fused_kernels_keep_their_padding_zero(batch):
    x, y = batch
    original = _model("lrnet_paper")
    rewritten = fast.optimize(original, "train")
    fused = [g for b in rewritten.blocks for g in b.groups.values() if len(g.members) > 1]
    assert fused, "the paper's 1-channel input convs (3×3, 5×5, 7×7) should be fused"
    assert {tuple(c.kernel_size[0] for c in g.members) for g in fused} >= {(3, 5, 7)}
    optimizer = torch.optim.SGD(rewritten.parameters(), 0.1)
    _train_step(rewritten, x, y)
    optimizer.step()
    weight, _ = fused[0]._stacked()
    assert weight.shape[1:] == (1, 7, 7)
    assert torch.count_nonzero(weight[:48, :, [0, 1, 5, 6]]) == 0  # 3×3 kernels padded to 7×7
    assert original.blocks[0].convs["a3"][0].weight.shape == (48, 1, 3, 3)


def test_baselines_are_returned_unchanged():
    model = build_model("resnet18_scratch")
    assert fast.optimize(model, "train") is model
    assert fast.optimize(model, "infer") is model


def test_fast_setting_and_bad_mode():
    assert fast.fast_setting("cpu") == ("bf16", False, False)
    precision, channels_last, compile_ = fast.fast_setting("cuda")
    assert precision == "bf16" and channels_last and compile_
    with pytest.raises(ValueError, match="mode"):
        fast.optimize(_model("lrnet_k35"), "serve")


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_the_gpu_setting_compiles_the_rewrite_as_one_graph(mode):
    # On CUDA the fast setting torch.compiles the rewrite (`fast_setting`); a graph break there would split it
    # into pieces with Python between them. Dynamo's tracing is device-independent: `fullgraph=True` makes any
    # break an error, and aot_eager checks autograd's trace without generating kernels. Values match eager.
    model = _model("lrnet_residual")
    runner = fast.optimize(model, mode) if mode == "train" else fast.optimize(model, "infer", precision="fp32")
    x = torch.randn(BATCH, 1, 28, 28)
    compiled = torch.compile(runner, backend="aot_eager", fullgraph=True)
    torch.manual_seed(1)
    expected = runner(x)
    torch.manual_seed(1)
    actual = compiled(x)
    _close(actual, expected, expected.abs().max().item())
    if mode == "train":
        actual.sum().backward()
        assert all(p.grad is not None for p in model.parameters())
