"""Sizes anchored outside the kit's code: the golden file only says a count did not change; these say it is right.

- Every torchvision baseline's parameter count equals torchvision's published count for the
  ImageNet model (its weights' `num_params`), minus the head the kit replaces, plus the kit's
  head and stem changes, each written out here by hand. VGG-16 and InceptionV3 also meet the Keras
  figures (include_top=False plus a Dense(10)).
- A micro MK network (one block, widths of 1-3 channels, a 4×4 input) has its FLOPs and parameters
  written out layer by layer for each wiring (links = paper / none / residual / dense); the
  analytic `network_complexity`, the built module and fvcore's count must all agree with them.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from study.blocks import MKNet, network_complexity
from study.measure import count_flops, count_params
from study.models import build_model
from study.spec import HeadSpec, MKBlockSpec, NetworkSpec, validate_network


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _published(weights) -> int:
    """torchvision's own parameter count of an ImageNet model (1000 classes), from its weights' metadata."""
    return weights.IMAGENET1K_V1.meta["num_params"]


TV = torchvision.models
# torchvision's classifier stacks, which the kit replaces by global average pooling + one Linear.
VGG16_FEATURES = _published(TV.VGG16_Weights) - (_linear(512 * 7 * 7, 4096) + _linear(4096, 4096) + _linear(4096, 1000))
ALEXNET_FEATURES = _published(TV.AlexNet_Weights) - (_linear(256 * 6 * 6, 4096) + _linear(4096, 4096) + _linear(4096, 1000))
RESNET18_BODY = _published(TV.ResNet18_Weights) - _linear(512, 1000)
RESNET50_BODY = _published(TV.ResNet50_Weights) - _linear(2048, 1000)
# The auxiliary classifier (BasicConv2d 768→128 1×1, BasicConv2d 128→768 5×5, Linear 768→1000) is off in the kit.
INCEPTION_AUX = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + _linear(768, 1000)
INCEPTION_BODY = _published(TV.Inception_V3_Weights) - INCEPTION_AUX - _linear(2048, 1000)

#: Keras: VGG16(include_top=False) + Dense(10) at 48×48 px (docs/paper.md): 14,714,688 + 5,130.
KERAS_VGG16_DENSE10 = 14_719_818
#: Keras: InceptionV3(include_top=False) has 21,768,352 trainable parameters; its BatchNorms have no
#: scale (gamma), torchvision's do: one gamma per BN channel (17,216, half of Keras' 34,432 moving statistics).
KERAS_INCEPTION_TRAINABLE, INCEPTION_BN_CHANNELS = 21_768_352, 34_432 // 2

EXPECTED_PARAMS = {
    # paper protocol: 3-channel input, only the head changes (GAP + Linear(features, 10))
    "vgg16_paper": VGG16_FEATURES + _linear(512, 10),
    "alexnet_paper": ALEXNET_FEATURES + _linear(256, 10),
    "resnet18_paper": RESNET18_BODY + _linear(512, 10),
    "resnet50_paper": RESNET50_BODY + _linear(2048, 10),
    "inception_v3_paper": INCEPTION_BODY + _linear(2048, 10),
    # scratch: the first convolution reads 1 channel (and AlexNet's / ResNet's stems become 3×3)
    "vgg16_scratch": VGG16_FEATURES + _linear(512, 10) - 2 * 64 * 3 * 3,  # conv 3×3 3→64 becomes 1→64
    "alexnet_scratch": ALEXNET_FEATURES + _linear(256, 10) - (3 * 64 * 11 * 11) + (1 * 64 * 3 * 3),  # 11×11 3→64 → 3×3 1→64
    "resnet18_scratch": RESNET18_BODY + _linear(512, 10) - 3 * 64 * 7 * 7 + 1 * 64 * 3 * 3,  # 7×7 3→64 → 3×3 1→64, no bias
    "resnet50_scratch": RESNET50_BODY + _linear(2048, 10) - 3 * 64 * 7 * 7 + 1 * 64 * 3 * 3,
    "inception_v3_scratch": INCEPTION_BODY + _linear(2048, 10) - 2 * 32 * 3 * 3,  # Conv2d_1a 3×3 3→32 becomes 1→32
}


def test_published_counts_agree_with_keras():
    """The two outside anchors agree with each other, so neither is misread."""
    assert VGG16_FEATURES + _linear(512, 10) == KERAS_VGG16_DENSE10
    assert INCEPTION_BODY == KERAS_INCEPTION_TRAINABLE + INCEPTION_BN_CHANNELS
    assert ALEXNET_FEATURES == (3 * 64 * 121 + 64) + (64 * 192 * 25 + 192) + (192 * 384 * 9 + 384) \
        + (384 * 256 * 9 + 256) + (256 * 256 * 9 + 256)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_baseline_params_match_torchvision_with_the_kits_head_and_stem(name):
    with torch.device("meta"):  # counts need shapes only: no memory, no initialisation cost
        model = build_model(name, num_classes=10)
    assert count_params(model)["params"] == EXPECTED_PARAMS[name]


def test_vgg16_paper_meets_the_keras_figure():
    with torch.device("meta"):
        model = build_model("vgg16_paper", num_classes=10)
    assert count_params(model)["params"] == KERAS_VGG16_DENSE10


# --- a micro network, by hand ---------------------------------------------------------------------

HW = 4 * 4  # input 1×4×4; one block with max pooling leaves 2×2
#: Shared tail of every wiring, for M channels merged: 1×1 merge conv (M→3, bias), its BN(3),
#: 2×2 max pool (4 per output element on 2×2×3), GAP (one add per 2×2×3 element), Linear(3, 2).
TAIL_FLOPS = 2 * HW * 3 + 2 * 2 * 3 * 4 + 2 * 2 * 3 + 3 * 2
TAIL_PARAMS = 2 * 3 + (3 * 2 + 2)


def _merge(m: int) -> tuple[int, int]:
    return HW * m * 3, m * 3 + 3


def _micro(links: str) -> NetworkSpec:
    block = MKBlockSpec(kernels=(1, 3), links=links, stage1_widths=(2, 1), stage2_self_widths=(2, 1),
                        stage2_cross_widths=(1,), stage3_width=2, stages=2, out_channels=3)
    return validate_network(NetworkSpec(name=f"micro_{links}", blocks=(block,), head=HeadSpec(kind="gap"),
                                        input_size=4, num_classes=2))


def _conv(cin: int, cout: int, k: int) -> tuple[int, int]:
    """(FLOPs, params) of a "same" k×k convolution with bias on 4×4: one multiply-add = one FLOP."""
    return HW * cin * cout * k * k, cin * cout * k * k + cout


def _bn(c: int) -> tuple[int, int]:
    """(FLOPs, params) of an eval-mode BatchNorm on 4×4×c: scale and shift, gamma and beta."""
    return 2 * HW * c, 2 * c


def _total(*parts: tuple[int, int], merged: int) -> tuple[int, int]:
    flops = sum(f for f, _ in parts) + _merge(merged)[0] + TAIL_FLOPS
    params = sum(p for _, p in parts) + _merge(merged)[1] + TAIL_PARAMS
    return flops, params


# Stage s of none/residual/dense: conv 1×1 (→2) and conv 3×3 (→1) on its source, concatenated (3 channels).
NONE = _total(_conv(1, 2, 1), _conv(1, 1, 3), _bn(3),  # stage 1 on x (1 channel) → h1
              _conv(3, 2, 1), _conv(3, 1, 3), _bn(3),  # stage 2 on h1 (3 channels) → h2
              merged=3)  # output: h2
RESIDUAL = _total(_conv(1, 2, 1), _conv(1, 1, 3),
                  _conv(1, 3, 1), (HW * 3, 0), _bn(3),  # r1 = c1 + proj(x): 1×1 projection 1→3, then the add
                  _conv(3, 2, 1), _conv(3, 1, 3),
                  (HW * 3, 0), _bn(3),  # r2 = c2 + h1: same channels, no projection
                  merged=3)
DENSE = _total(_conv(1, 2, 1), _conv(1, 1, 3), _bn(3),  # stage 1 on x
               _conv(4, 2, 1), _conv(4, 1, 3), _bn(3),  # stage 2 on cat[x, h1] (1 + 3 channels)
               merged=1 + 3 + 3)  # output: x, h1, h2
PAPER = _total(_conv(1, 2, 1), _conv(1, 1, 3),  # a1, a3 on x
               _bn(2), _bn(4),  # n1 = BN(a1); n13 = BN(cat[x, a1, a3]) (1 + 2 + 1 channels)
               _conv(2, 2, 1), _conv(2, 1, 3),  # t1, t3 on n1 → t = cat[x, t1, t3, n1]: 6 channels
               _conv(4, 1, 3),  # u3 on n13 → u = cat[x, u3]: 2 channels
               _bn(6), _bn(2),  # nt, nu
               _conv(2, 2, 1), _bn(2),  # v = BN(conv1(nu))
               merged=1 + 6 + 2 + 4 + 2 + 2)  # output: x, nt, n1, n13, nu, v


@pytest.mark.parametrize(("links", "expected"), [
    ("none", NONE), ("residual", RESIDUAL), ("dense", DENSE), ("paper", PAPER),
])
def test_micro_network_flops_and_params_by_hand(links, expected):
    spec = _micro(links)
    flops, params = expected
    assert network_complexity(spec) == {"flops": flops, "params": params}
    model = MKNet(spec)
    assert count_params(model)["params"] == params
    counted = count_flops(model, (1, 1, 4, 4))
    assert counted["flops"] == flops and counted["uncounted_ops"] == {}


def test_micro_numbers_are_what_the_arithmetic_says():
    """The sums above, once more as plain numbers, so a slip in a helper cannot hide in both sides."""
    assert NONE == (1202, 88)
    assert RESIDUAL == (1346, 94)
    assert DENSE == (1570, 111)
    assert PAPER == (2658, 182)
