"""Regenerate `tests/golden/complexity.json`: trainable parameters and fvcore FLOPs per image of every
network the kit can build (registered models, `ablations/specs/*.toml`, and every study variant of
`ablations/*.toml` that resolves to an MK network).

Run it deliberately, after a change that is *meant* to alter a network's size, and review the diff:

    python tests/golden/update.py

`tests/test_models.py` compares against the file and never rewrites it. This module also owns the
list of cases, so the test and the golden file cannot disagree about what is measured.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "complexity.json"


@dataclass(frozen=True)
class Case:
    """One buildable network: a readable id, a builder and the input shape of one image batch."""

    id: str  # "model:<name>", "spec:<file stem>" or "study:<study>:<variant label>"
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int, int]  # (1, C, H, W)
    num_classes: int


def _ascii(text: str) -> str:
    """Labels such as "×0.5" as readable ASCII test ids."""
    return text.replace("×", "x")


def cases() -> list[Case]:
    """Every registered model, every spec file and every study variant that is an MK network (as the paper
    profile resolves it: full width, capacity-matched where the study asks)."""
    from study.blocks import MKNet
    from study.models import build_model, get_entry, list_models, resolve_model
    from study.spec import load_network
    from study.studies import ABLATIONS, list_studies, load_study, study_path

    found: list[Case] = []
    for name in list_models():
        size = resolve_model(name).input_size
        spec = get_entry(name).spec
        found.append(Case(f"model:{name}", lambda n=name: build_model(n), (1, 1, size, size), spec.num_classes if spec else 10))
    for path in sorted((ABLATIONS / "specs").glob("*.toml")):
        spec = load_network(path)
        found.append(Case(f"spec:{path.stem}", lambda p=path: build_model(p),
                          (1, spec.in_channels, spec.input_size, spec.input_size), spec.num_classes))
    for study_name in list_studies():
        study = load_study(study_path(study_name))
        for variant in study.variants:
            network = study.resolved["paper"][variant.label].model.spec
            registered_as_is = variant.model and not (variant.block or variant.blocks or variant.head)  # a model: case
            if network is not None and not registered_as_is:
                found.append(Case(f"study:{study.name}:{_ascii(variant.label)}", lambda s=network: MKNet(s),
                                  (1, network.in_channels, network.input_size, network.input_size), network.num_classes))
    ids = [c.id for c in found]
    assert len(ids) == len(set(ids)), f"duplicate case ids: {sorted({i for i in ids if ids.count(i) > 1})}"
    return found


def measure(case: Case) -> dict[str, int]:
    """Trainable parameters and FLOPs per image (eval mode) of one case."""
    from study.measure import count_flops, count_params

    model = case.build()
    return {"params": count_params(model)["params"], "flops": count_flops(model, case.input_shape)["flops"]}


def _dumps(doc: dict) -> str:
    """JSON with one network per line, so a diff shows exactly which networks changed."""
    text = json.dumps({k: v for k, v in doc.items() if k != "networks"}, indent=2, ensure_ascii=False)[:-2]
    rows = [f"    {json.dumps(k, ensure_ascii=False)}: {json.dumps(v)}" for k, v in doc["networks"].items()]
    return text + ',\n  "networks": {\n' + ",\n".join(rows) + "\n  }\n}\n"


def main() -> int:
    """Measure every case and rewrite the golden file; print what changed."""
    import torch

    from study.measure import FLOP_CONVENTION

    old = json.loads(GOLDEN.read_text())["networks"] if GOLDEN.exists() else {}
    networks = {}
    for case in cases():
        networks[case.id] = {"input_shape": list(case.input_shape), **measure(case)}
        if old.get(case.id) != networks[case.id]:
            print(f"{case.id}: {old.get(case.id)} -> {networks[case.id]}")
    for gone in sorted(set(old) - set(networks)):
        print(f"{gone}: removed")
    doc = {
        "about": "trainable params and fvcore FLOPs per image of every buildable network; "
                 "regenerate with `python tests/golden/update.py` (checked by tests/test_models.py)",
        "flop_convention": FLOP_CONVENTION,
        "torch_version": torch.__version__,
        "networks": networks,
    }
    GOLDEN.write_text(_dumps(doc))
    print(f"wrote {len(networks)} networks to {GOLDEN.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
