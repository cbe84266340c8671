"""Degradations of images ("lowres:7+blur:1.0+noise:0.1"): parsed, canonically formatted, applied with a seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from study.data.sources import IMAGE_SIZE
from study.errors import DataError


@dataclass(frozen=True)
class Degradation:
    """One image degradation: `kind` in DEGRADATIONS and its parameter."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


# kind -> (form shown to users, validity check on the parameter)
DEGRADATIONS = {
    "lowres": ("lowres:N (down to N×N then back up, 1 <= N <= 28, integer)", lambda v: v == int(v) and 1 <= v <= IMAGE_SIZE),
    "blur": ("blur:SIGMA (Gaussian blur, 0 < SIGMA <= 4 pixels)", lambda v: 0 < v <= 4),
    "noise": ("noise:STD (additive Gaussian noise in [0, 1] units, 0 < STD <= 1)", lambda v: 0 < v <= 1),
    "sp": ("sp:FRACTION (salt-and-pepper pixels, 0 < FRACTION <= 1)", lambda v: 0 < v <= 1),
}


def parse_degradation(text: str | None) -> tuple[Degradation, ...]:
    """Parse "kind:value[+kind:value...]" (or None / "none") into degradations applied left to right."""
    if text is None or text.strip().lower() in ("", "none"):
        return ()
    allowed = "; ".join(form for form, _ in DEGRADATIONS.values())
    steps = []
    for item in text.split("+"):
        kind, _, raw = item.strip().partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if kind not in DEGRADATIONS or not math.isfinite(value) or not DEGRADATIONS[kind][1](value):
            raise DataError(f"bad degradation {item.strip()!r} in {text!r}; allowed: {allowed}; join with '+', or 'none'")
        steps.append(Degradation(kind, value))
    return tuple(steps)


def format_degradation(spec: tuple[Degradation, ...]) -> str:
    """The canonical text of a parsed degradation ("none" when empty)."""
    return "+".join(map(str, spec)) or "none"


def apply_degradation(images: torch.Tensor, spec: str | tuple[Degradation, ...] | None, seed: int) -> torch.Tensor:
    """Degrade uint8 images [N, 28, 28] (or [N, 1, 28, 28]) in one batched pass; same seed, same result."""
    steps = parse_degradation(spec) if isinstance(spec, str) or spec is None else spec
    if not steps:
        return images
    generator = torch.Generator(device=images.device).manual_seed(seed)
    x = images.reshape(-1, 1, *images.shape[-2:]).float().div(255)
    for step in steps:
        if step.kind == "lowres":
            size = x.shape[-2:]
            x = torch.nn.functional.interpolate(x, size=int(step.value), mode="area")
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        elif step.kind == "blur":
            import torchvision.transforms.functional as TF  # noqa: N812 (torchvision's alias; slow to import)

            radius = math.ceil(3 * step.value)  # ±3 sigma holds 99.7% of the kernel's mass
            x = TF.gaussian_blur(x, [2 * radius + 1] * 2, [step.value] * 2)
        elif step.kind == "noise":
            x = x + step.value * torch.randn(x.shape, generator=generator, device=x.device)
        else:  # sp: one uniform draw per pixel; below value/2 is pepper, up to value is salt
            draw = torch.rand(x.shape, generator=generator, device=x.device)
            x = torch.where(draw < step.value / 2, 0.0, torch.where(draw < step.value, 1.0, x))
        x = x.clamp(0.0, 1.0)
    return x.mul(255).round().to(torch.uint8).reshape(images.shape)
