"""Model registry in the style of torchvision/timm: `lrnet_paper` and named MK-block variants, and
torchvision baselines in two protocols.

Protocols of the baselines:
- `scratch`: the torchvision architecture with its stem adapted to 1×28×28 (first convolution
  takes one channel, stride/pooling removed where 28×28 would pool to nothing), trained from scratch;
- `paper`: the paper's transfer protocol: the image is resized in-model and repeated to 3 channels
  at the size the paper used (VGG-16 48×48, InceptionV3 84×84, ResNet-50 32×32, AlexNet 84→224).
  No ImageNet weights are reachable offline, so these too start from random weights.
VGG-16 and AlexNet get a global-average-pool linear head (Keras `include_top=False` + dense, as
the paper fine-tuned); ResNet and InceptionV3 already end that way.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from study.blocks import MKNet
from study.capacity import check_size
from study.errors import UnknownModelError
from study.spec import HeadSpec, NetworkSpec, load_network, replace_blocks

ModelFn = Callable[[int], nn.Module]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, its spec (MK networks only) and a one-line description."""

    name: str
    build: ModelFn  # num_classes -> module
    description: str
    spec: NetworkSpec | None = None
    input_size: int = 28
    baseline: str = ""  # a baseline's architecture ("vgg16"); "" for the kit's own networks
    paper_row: str = ""  # the paper's Table I row this model reproduces ("VGG-16", "LR-Net"), where it has one
    paper_comparator: bool = False  # one of the paper's own comparators (VGG-16, InceptionV3, ResNet-50)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add a model to the registry; a duplicate name is an error."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard (`lrnet*`, `*_paper`)."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name`; unknown names fail with the closest registered names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}: {hint}`python -m study profile --list` shows all {len(_REGISTRY)}, or pass a .toml spec file"
        ) from None


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A model resolved once, at the edge (CLI, study loading): what training, measurement and search
    take. A spec file is read and size-checked here and nowhere else."""

    name: str  # registry name, or the network spec's name
    spec: NetworkSpec | None  # MK networks; None for baselines
    builder: ModelFn = dataclasses.field(repr=False, compare=False)  # num_classes -> module
    input_size: int = 28
    in_channels: int = 1
    digest: str = ""  # the spec's digest (same digest = same network); the registry name for baselines

    def build(self, num_classes: int = 10) -> nn.Module:
        """A fresh, randomly initialised module."""
        return self.builder(num_classes)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """One input image as a batch: (1, C, H, W)."""
        return (1, self.in_channels, self.input_size, self.input_size)


def resolve_model(model: str | Path | NetworkSpec | ResolvedModel, where: str = "") -> ResolvedModel:
    """Resolve a registry name, a `.toml` spec path or a NetworkSpec; any problem is one KitError line.

    Specs given as such keep their own `num_classes`; registered MK networks take the caller's.
    """

    if isinstance(model, ResolvedModel):
        return model
    if isinstance(model, NetworkSpec) or str(model).endswith(".toml"):
        spec = model if isinstance(model, NetworkSpec) else load_network(model)
        check_size(spec, where or (f"network {spec.name}" if isinstance(model, NetworkSpec) else str(model)))
        return ResolvedModel(spec.name, spec, lambda n, s=spec: MKNet(s), spec.input_size, spec.in_channels, spec.digest())
    entry = get_entry(str(model))
    if entry.spec is not None:
        spec = entry.spec
        return ResolvedModel(entry.name, spec, lambda n, s=spec: MKNet(dataclasses.replace(s, num_classes=n)),
                             spec.input_size, spec.in_channels, spec.digest())
    return ResolvedModel(entry.name, None, entry.build, entry.input_size, 1, entry.name)


def build_model(model: str | Path | NetworkSpec | ResolvedModel, num_classes: int = 10) -> nn.Module:
    """Build a registered model, a spec file (`*.toml`), a NetworkSpec or a resolved model."""
    return resolve_model(model).build(num_classes)


# --------------------------------------------------------------------------- MK-block networks

PAPER = NetworkSpec()

MK_VARIANTS: dict[str, tuple[NetworkSpec, str]] = {
    "lrnet_paper": (PAPER, "the paper's LR-Net exactly: 3 MK blocks, kernels {3,5,7}, concatenation links, dense head"),
    "lrnet_gap": (dataclasses.replace(PAPER, head=HeadSpec(kind="gap", dropout=0.0)), "LR-Net with a global-average-pool linear head"),
    "lrnet_k3": (replace_blocks(PAPER, kernels=(3,)), "paper wiring with 3×3 kernels only"),
    "lrnet_k35": (replace_blocks(PAPER, kernels=(3, 5)), "paper wiring with kernels {3,5}"),
    "lrnet_plain": (replace_blocks(PAPER, links="none"), "plain inception stages, no skip or concatenation links"),
    "lrnet_residual": (replace_blocks(PAPER, links="residual"), "inception stages with additive identity residuals"),
    "lrnet_dense": (replace_blocks(PAPER, links="dense"), "inception stages with dense links"),
    "lrnet_half": (replace_blocks(PAPER, width_multiplier=0.5), "LR-Net at half width"),
    "lrnet_gn": (replace_blocks(PAPER, norm="group"), "LR-Net with group normalisation"),
    "lrnet_paper_keras": (dataclasses.replace(PAPER, defaults="keras"),
                          "the paper's LR-Net with the authors' Keras defaults (Glorot-uniform init, BN momentum 0.99, ε 1e-3)"),
}

#: The registered MK networks that are the paper's LR-Net (the Keras-defaults build is the same network, as the
#: authors trained it): their numbers sit beside the paper's "LR-Net" row.
PAPER_LRNET = ("lrnet_paper", "lrnet_paper_keras")

for _name, (_spec, _desc) in MK_VARIANTS.items():
    register_model(ModelEntry(_name, lambda n, s=_spec: MKNet(dataclasses.replace(s, num_classes=n)), _desc,
                              spec=dataclasses.replace(_spec, name=_name), paper_row="LR-Net" if _name in PAPER_LRNET else ""))


# --------------------------------------------------------------------------- baselines


class PaperInput(nn.Module):
    """The paper's transfer protocol in-model: resize to `size` (bilinear) and repeat to 3 channels."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1 x 28 x 28 -> N x 3 x size x size."""
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.expand(-1, 3, -1, -1)


def _gap_head(model: nn.Module, features: int, num_classes: int) -> nn.Module:
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(features, num_classes))
    return model


def _vgg(arch: str) -> Callable[[int, bool], nn.Module]:
    def build(num_classes: int, scratch: bool) -> nn.Module:
        model = _gap_head(getattr(torchvision.models, arch)(), 512, num_classes)
        if scratch:
            model.features[0] = nn.Conv2d(1, 64, 3, padding=1)
            model.features = model.features[:-1]  # five 2× pools take 28×28 to nothing; keep four (28→1)
        return model

    return build


def _alexnet(num_classes: int, scratch: bool) -> nn.Module:
    model = _gap_head(torchvision.models.alexnet(), 256, num_classes)
    if scratch:
        model.features[0] = nn.Conv2d(1, 64, 3, padding=1)  # 11×11 stride 4 would leave 6×6 after the stem
    return model


def _resnet(arch: str) -> Callable[[int, bool], nn.Module]:
    def build(num_classes: int, scratch: bool) -> nn.Module:
        model = getattr(torchvision.models, arch)(num_classes=num_classes)
        if scratch:  # CIFAR-style stem: 3×3 stride 1, no max-pool (28→28→14→7→4)
            model.conv1 = nn.Conv2d(1, 64, 3, padding=1, bias=False)
            model.maxpool = nn.Identity()
        return model

    return build


def _inception_v3(num_classes: int, scratch: bool) -> nn.Module:
    model = torchvision.models.inception_v3(num_classes=num_classes, aux_logits=False, init_weights=True)
    if scratch:  # stride-1 stem without its two max-pools: 28→26→24→22 → Mixed_6a 10 → Mixed_7a 4
        model.Conv2d_1a_3x3 = torchvision.models.inception.BasicConv2d(1, 32, kernel_size=3)
        model.maxpool1 = nn.Identity()
        model.maxpool2 = nn.Identity()
    else:
        model.transform_input = False
    return model


#: arch -> (builder, the paper protocol's input size, display name)
BASELINES: dict[str, tuple[Callable[[int, bool], nn.Module], int, str]] = {
    "vgg16": (_vgg("vgg16"), 48, "VGG-16"),
    # VGG-16 with batch norm: the plain VGG-16 often does not train at LR-Net's learning rate from scratch,
    # so a "beats VGG-16" could mean "VGG-16 got a bad learning rate"; this one trains at most rates
    "vgg16_bn": (_vgg("vgg16_bn"), 48, "VGG-16-BN"),
    "inception_v3": (_inception_v3, 84, "InceptionV3"),
    "resnet50": (_resnet("resnet50"), 32, "ResNet-50"),
    "alexnet": (_alexnet, 224, "AlexNet"),
    "resnet18": (_resnet("resnet18"), 32, "ResNet-18"),
}


#: The paper's own comparators (its Table I and claims are about them); the others are the kit's extra baselines.
PAPER_COMPARATORS = ("vgg16", "inception_v3", "resnet50")
#: The paper's Table I rows (docs/paper.md §2) by architecture: ResNet-50 has none.
PAPER_ROWS = {"vgg16": "VGG-16", "inception_v3": "InceptionV3"}


def _register_baselines() -> None:
    for arch, (builder, size, display) in BASELINES.items():
        facts = {"baseline": arch, "paper_row": PAPER_ROWS.get(arch, ""), "paper_comparator": arch in PAPER_COMPARATORS}
        register_model(ModelEntry(f"{arch}_scratch", lambda n, b=builder: b(n, True),
                                  f"{display} from scratch, stem adapted to 1×28×28", **facts))
        register_model(ModelEntry(
            f"{arch}_paper", lambda n, b=builder, s=size: nn.Sequential(PaperInput(s), b(n, False)),
            f"{display}, paper protocol: resized to {size}×{size}, repeated to 3 channels", **facts))


def registered(name: str) -> ModelEntry | None:
    """A model's registry entry, or None for a name the registry does not know (a row of another kit's model)."""
    return _REGISTRY.get(str(name))


_register_baselines()
