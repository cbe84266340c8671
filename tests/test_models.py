"""Every network the kit can build: it runs forward and backward, its size matches the golden file,
fvcore counts all its ops; the paper's network is exactly docs/paper.md §1; the analytic per-block
complexity agrees with fvcore; the registry and `study profile` behave as documented.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from study import models
from study.blocks import MKBlock, MKNet, block_complexity
from study.cli import main
from study.errors import UnknownModelError
from study.measure import count_flops, count_params
from study.models import (
    MK_VARIANTS,
    ModelEntry,
    build_model,
    get_entry,
    list_models,
    register_model,
    resolve_model,
)
from study.spec import (
    HeadSpec,
    MKBlockSpec,
    NetworkSpec,
    NodeSpec,
    block_graph,
    graph_channels,
    replace_blocks,
    validate_network,
)
from study.train import TrainConfig, _optimizer

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "ablations" / "specs"
UPDATE_HINT = "if the change is intended, run `python tests/golden/update.py` and review the diff of tests/golden/complexity.json"


def _load_golden_module():
    """tests/golden/update.py owns the case list (tests/ is not a package, so load it by path)."""
    path = ROOT / "tests" / "golden" / "update.py"
    spec = importlib.util.spec_from_file_location("golden_update", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


golden_update = _load_golden_module()
CASES = golden_update.cases()
GOLDEN = json.loads(golden_update.GOLDEN.read_text())["networks"] if golden_update.GOLDEN.exists() else {}

PAPER_PARAMS = 1_024_998  # docs/paper.md §1
KERAS_COUNT = 1_028_234  # docs/paper.md §1: Keras count_params() adds the BN moving mean/variance


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these models are tiny at batch 2, and on a shared 2-core machine two
    spinning OpenMP threads per process made this module ~3× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Built:
    """A case's model, built once per module with a fixed seed; FLOPs counted once on demand."""

    def __init__(self, case):
        self.case = case
        torch.manual_seed(0)
        self.model = case.build()

    @functools.cached_property
    def flops(self) -> dict:
        return count_flops(self.model, self.case.input_shape)


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def built(request) -> Built:
    """Module-scoped and parametrised, so pytest runs every test of one model before building the next."""
    return Built(request.param)


# --------------------------------------------------------------------------- every network


def test_every_registered_model_and_spec_file_is_a_case():
    ids = {c.id for c in CASES}
    assert {f"model:{n}" for n in list_models()} <= ids
    assert {f"spec:{p.stem}" for p in SPECS.glob("*.toml")} <= ids
    assert any(i.startswith("study:") for i in ids)


def test_forward_backward(built: Built):
    model, (_, channels, height, width) = built.model, built.case.input_shape
    model.train()
    x = torch.rand(2, channels, height, width)
    y = torch.arange(2) % built.case.num_classes
    out = model(x)
    assert out.shape == (2, built.case.num_classes)
    assert torch.isfinite(out).all(), "NaN/inf in the logits"
    nn.functional.cross_entropy(out, y).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"trainable parameters that get no gradient: {missing[:10]}"
    bad = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad[:10]}"
    model.zero_grad(set_to_none=True)


def test_params_and_flops_match_golden(built: Built):
    golden = GOLDEN.get(built.case.id)
    assert golden is not None, f"{built.case.id} has no golden entry; {UPDATE_HINT}"
    actual = {"params": count_params(built.model)["params"], "flops": built.flops["flops"]}
    expected = {"params": golden["params"], "flops": golden["flops"]}
    assert actual == expected, f"{built.case.id}: measured {actual}, golden {expected}; {UPDATE_HINT}"


def test_no_uncounted_ops(built: Built):
    assert built.flops["uncounted_ops"] == {}, f"{built.case.id}: ops fvcore did not count: {built.flops['uncounted_ops']}"


def test_golden_file_has_no_stale_entries():
    stale = sorted(set(GOLDEN) - {c.id for c in CASES})
    assert not stale, f"golden entries for networks that no longer exist: {stale}; {UPDATE_HINT}"


# --------------------------------------------------------------------------- the paper's network


def test_lrnet_paper_has_the_papers_parameter_count():
    model = build_model("lrnet_paper")
    assert count_params(model)["params"] == PAPER_PARAMS
    # Keras count_params() also counts BN moving mean/variance (not Keras' nor torch's batch counter)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert stats == 3_236
    assert count_params(model)["params"] + stats == KERAS_COUNT


def _paper_graph_table(c: int) -> tuple[dict[str, tuple], dict[str, int]]:
    """docs/paper.md §1 transcribed: name -> (op, inputs, kernel, width), and every tensor's channels."""
    nodes = {
        "a3": ("conv", ("x",), 3, 48), "a5": ("conv", ("x",), 5, 24), "a7": ("conv", ("x",), 7, 12),
        "s35": ("cat", ("x", "a3", "a5"), 0, 0), "s357": ("cat", ("x", "a3", "a5", "a7"), 0, 0),
        "n3": ("norm", ("a3",), 0, 0), "n35": ("norm", ("s35",), 0, 0), "n357": ("norm", ("s357",), 0, 0),
        "t3": ("conv", ("n3",), 3, 48), "t5": ("conv", ("n3",), 5, 24), "t": ("cat", ("x", "t3", "t5", "n3"), 0, 0),
        "u5": ("conv", ("n35",), 5, 36), "u7": ("conv", ("n357",), 7, 18), "u": ("cat", ("x", "u5", "u7"), 0, 0),
        "nt": ("norm", ("t",), 0, 0), "nu": ("norm", ("u",), 0, 0),
        "v3": ("conv", ("nu",), 3, 72), "v": ("norm", ("v3",), 0, 0),
    }
    channels = {
        "x": c, "a3": 48, "a5": 24, "a7": 12, "s35": c + 72, "s357": c + 84,
        "n3": 48, "n35": c + 72, "n357": c + 84,
        "t3": 48, "t5": 24, "t": c + 120, "u5": 36, "u7": 18, "u": c + 54, "nt": c + 120, "nu": c + 54,
        "v3": 72, "v": 72,
    }
    return nodes, channels


@pytest.mark.parametrize("c", [1, 24], ids=["block1_C1", "blocks23_C24"])
def test_paper_block_graph_is_the_design_table(c: int):
    nodes, output = block_graph(MKBlockSpec())
    expected_nodes, expected_channels = _paper_graph_table(c)
    assert {n.name: (n.op, n.inputs, n.kernel, n.width) for n in nodes} == expected_nodes
    assert output == ("x", "nt", "n3", "n35", "n357", "nu", "v")
    channels = graph_channels(nodes, c)
    assert channels == expected_channels
    # merged: x + nt + n3 + n35 + n357 + nu + v = C + (C+120) + 48 + (C+72) + (C+84) + (C+54) + 72
    assert sum(channels[n] for n in output) == 5 * c + 450
    block = MKBlock(MKBlockSpec(), c)
    assert set(block.convs) == {"a3", "a5", "a7", "t3", "t5", "u5", "u7", "v3"}
    assert set(block.norms) == {"n3", "n35", "n357", "nt", "nu", "v"}
    assert block.merge[0].in_channels == 5 * c + 450 and block.merge[0].out_channels == 24


def test_explicit_graph_spec_file_is_the_generated_graph():
    from study.spec import load_network

    explicit = load_network(SPECS / "lrnet_paper_graph.toml")
    generated = block_graph(MKBlockSpec())
    for block in explicit.blocks:
        assert block_graph(block) == generated


def test_spec_files_build_the_registered_paper_network():
    def seeded(what):
        torch.manual_seed(0)
        return build_model(what).eval()

    reference = seeded("lrnet_paper")
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        expected = reference(x)
    for path in (SPECS / "lrnet_paper.toml", SPECS / "lrnet_paper_graph.toml"):
        model = seeded(path)
        assert count_params(model)["params"] == PAPER_PARAMS, path.name
        ref_state, state = reference.state_dict(), model.state_dict()
        assert list(state) == list(ref_state), f"{path.name}: module names differ from lrnet_paper"
        assert all(torch.equal(state[k], ref_state[k]) for k in state), f"{path.name}: same seed, different init"
        with torch.no_grad():
            assert torch.equal(model(x), expected), f"{path.name}: same seed, different outputs"


def test_paper_spatial_sizes_and_flatten_width():
    model = build_model("lrnet_paper").eval()
    shapes = []
    for block in model.blocks:
        block.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    with torch.no_grad():
        model(torch.rand(2, 1, 28, 28))
    assert shapes == [(2, 24, 14, 14), (2, 24, 7, 7), (2, 24, 3, 3)]  # 28 → 14 → 7 → 3 (floor)
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(216, 256), (256, 128), (128, 128), (128, 64), (64, 10)]
    dropouts = [m.p for m in model.head if isinstance(m, nn.Dropout)]
    assert dropouts == [0.3] * 4


# --------------------------------------------------------------------------- analytic complexity vs fvcore

PAPER = NetworkSpec()
COMPLEXITY_VARIANTS = {
    "paper": PAPER,
    "links_residual": replace_blocks(PAPER, links="residual"),
    "links_dense": replace_blocks(PAPER, links="dense"),
    "links_none": replace_blocks(PAPER, links="none"),
    "residual_identity_skip": replace_blocks(PAPER, links="residual", kernels=(3,), stage1_widths=(1,)),
    "norm_group": replace_blocks(PAPER, norm="group"),
    "norm_none": replace_blocks(PAPER, norm="none"),
    "norm_in_conv": replace_blocks(PAPER, norm_position="in-conv"),
    "norm_group_in_conv": replace_blocks(PAPER, norm="group", norm_position="in-conv"),
    "pool_avg": replace_blocks(PAPER, pool="avg"),
    "pool_conv": replace_blocks(PAPER, pool="conv"),
    "pool_none": dataclasses.replace(replace_blocks(PAPER, pool="none"), blocks=(dataclasses.replace(MKBlockSpec(), pool="none"),) * 2),
    "kernels_1_3_5_7_9": replace_blocks(PAPER, kernels=(1, 3, 5, 7, 9)),
    "kernels_3": replace_blocks(PAPER, kernels=(3,)),
    "width_x0.5": replace_blocks(PAPER, width_multiplier=0.5),
    "activation_gelu": replace_blocks(PAPER, activation="gelu"),
}


@pytest.mark.parametrize("spec", list(COMPLEXITY_VARIANTS.values()), ids=list(COMPLEXITY_VARIANTS))
def test_block_complexity_matches_fvcore(spec: NetworkSpec):
    model = MKNet(validate_network(spec))
    counted = count_flops(model, (1, spec.in_channels, spec.input_size, spec.input_size))
    channels, size, mismatches = spec.in_channels, spec.input_size, []
    for i, block_spec in enumerate(spec.blocks):
        analytic = block_complexity(block_spec, channels, size)
        measured = {"flops": counted["flops_by_block"][f"block{i + 1}"],
                    "params": sum(p.numel() for p in model.blocks[i].parameters())}
        if analytic != measured:
            mismatches.append(f"block{i + 1}: analytic {analytic}, fvcore/torch {measured}")
        channels, size = block_spec.out_channels, size // 2 if block_spec.pool != "none" else size
    assert not mismatches, "; ".join(mismatches)
    assert sum(counted["flops_by_block"].values()) == counted["flops"], "per-block breakdown does not add up to the total"


def _micro(block: MKBlockSpec) -> NetworkSpec:
    """One explicit-graph block on a 1×4×4 input and a bare linear head to 2 classes."""
    return validate_network(NetworkSpec(name="micro", blocks=(block,), head=HeadSpec(hidden=(), dropout=0.0),
                                        in_channels=1, input_size=4, num_classes=2))


def test_micro_network_flops_by_hand_single_conv():
    # x: 1×4×4. c = conv3×3(x) → 1 channel: 16 outputs × 1 in × 9 = 144 MACs; params 9 + 1 bias = 10.
    # merge conv1×1 1 → 1: 16 × 1 = 16 MACs; params 1 + 1 = 2. norm "none", pool "none": free.
    # block: 144 + 16 = 160 FLOPs, 12 params. Head: flatten 1×4×4 = 16 → Linear(16, 2): 32 MACs, 34 params.
    spec = _micro(MKBlockSpec(nodes=(NodeSpec("c", "conv", ("x",), 3, 1),), output=("c",),
                              out_channels=1, norm="none", pool="none"))
    model = MKNet(spec)
    counted = count_flops(model, (1, 1, 4, 4))
    assert counted["flops_by_block"] == {"block1": 160, "head": 32}
    assert counted["flops"] == 192
    assert block_complexity(spec.blocks[0], 1, 4) == {"flops": 160, "params": 12}
    assert count_params(model)["params"] == 12 + 34


def test_micro_network_flops_by_hand_residual_norm_pool():
    # x: 1×4×4 (16 pixels).
    #   c = conv3×3(x) → 2 ch:        16 × 1 × 2 × 9 = 288 MACs;  params 18 + 2 = 20
    #   r = c + proj1×1(x), 1 → 2 ch: projection 16 × 1 × 2 = 32; the add 2 × 16 = 32; params 2 + 2 = 4
    #   n = BN(r), eval, 2 ch:        2 per element × 32 = 64;     params 4
    #   merge conv1×1 2 → 1:          16 × 2 × 1 = 32;             params 2 + 1 = 3
    #   merge BN, 1 ch:               2 × 16 = 32;                 params 2
    #   max-pool 2×2 → 1×2×2:         4 outputs × 4 = 16
    # block: 288 + 32 + 32 + 64 + 32 + 32 + 16 = 496 FLOPs, 33 params.
    # head: flatten 1×2×2 = 4 → Linear(4, 2): 8 MACs, 10 params. Total 504 FLOPs, 43 params.
    nodes = (NodeSpec("c", "conv", ("x",), 3, 2), NodeSpec("r", "add", ("c", "x")), NodeSpec("n", "norm", ("r",)))
    spec = _micro(MKBlockSpec(nodes=nodes, output=("n",), out_channels=1, norm="batch", pool="max"))
    model = MKNet(spec)
    counted = count_flops(model, (1, 1, 4, 4))
    assert counted["flops_by_block"] == {"block1": 496, "head": 8}
    assert counted["flops"] == 504
    assert counted["uncounted_ops"] == {}
    assert block_complexity(spec.blocks[0], 1, 4) == {"flops": 496, "params": 33}
    assert count_params(model)["params"] == 43


# --------------------------------------------------------------------------- registry


def test_duplicate_registration_raises(monkeypatch):
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))  # sandbox: the real registry stays untouched
    with pytest.raises(ValueError, match="'lrnet_paper' is already registered"):
        register_model(get_entry("lrnet_paper"))
    entry = ModelEntry("test_only_tiny", lambda n: nn.Linear(784, n), "a throwaway model")
    register_model(entry)
    assert get_entry("test_only_tiny") is entry
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelEntry("test_only_tiny", lambda n: nn.Linear(784, n), "a second one"))
    assert get_entry("test_only_tiny") is entry


def test_list_models_wildcards():
    everything = list_models()
    assert everything == sorted(everything) == list_models("*")
    assert list_models("lrnet*") == sorted(MK_VARIANTS)
    assert list_models("*_paper") == ["alexnet_paper", "inception_v3_paper", "lrnet_paper", "resnet18_paper",
                                      "resnet50_paper", "vgg16_bn_paper", "vgg16_paper"]
    assert list_models("resnet??_scratch") == ["resnet18_scratch", "resnet50_scratch"]
    assert list_models("no_such_model*") == []
    for arch in models.BASELINES:
        assert {f"{arch}_scratch", f"{arch}_paper"} <= set(everything)


@pytest.mark.parametrize("typo, closest", [("lrnet_papr", "lrnet_paper"), ("resnet81_scratch", "resnet18_scratch"),
                                           ("vgg_16_paper", "vgg16_paper"), ("LRNet_gap", "lrnet_gap")])
def test_unknown_model_names_the_closest(typo: str, closest: str):
    with pytest.raises(UnknownModelError, match=closest) as info:
        get_entry(typo)
    assert info.value.exit_code == 2
    assert repr(typo) in str(info.value) and "--list" in str(info.value)
    with pytest.raises(UnknownModelError, match=closest):
        build_model(typo)


def test_unknown_model_on_the_command_line_is_one_line(capsys):
    assert main(["profile", "lrnet_papr", "--no-timing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown model 'lrnet_papr'") and "lrnet_paper" in err


def test_profile_list_pattern(capsys):
    assert main(["profile", "--list", "lrnet*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_models("lrnet*")


# --------------------------------------------------------------------------- study profile (subprocess)


def _profile_json(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # see one_thread
    proc = subprocess.run([sys.executable, "-m", "study", "profile", "lrnet_paper", "--json", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print exactly one line, got {len(lines)}"
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    return result


def test_profile_json_counts_only():
    result = _profile_json("--no-timing")
    assert result["model"] == "lrnet_paper"
    assert result["params"] == PAPER_PARAMS
    assert result["flops"] == GOLDEN["model:lrnet_paper"]["flops"], UPDATE_HINT
    assert result["uncounted_ops"] == {}
    assert set(result["flops_by_block"]) == {"block1", "block2", "block3", "head"}
    assert "train" not in result and "train_img_per_s" not in result


def test_profile_json_with_timing_on_a_small_batch():
    result = _profile_json("--batch", "8", "--repeats", "1")
    assert result["params"] == PAPER_PARAMS
    assert result["train_img_per_s"] > 0 and result["infer_img_per_s"] > 0
    assert result["train"]["batch"] == 8 and result["inference"]["batch"] == 8
    provenance = result["provenance"]
    assert {"torch_version", "device", "threads", "precision"} <= set(provenance)
    assert provenance["device"] == "cpu" and provenance["precision"] == "fp32" and provenance["threads"] >= 1
    assert provenance["torch_version"] == torch.__version__


TINY = """
blocks = 1
input_size = 8
[block]
kernels = [3]
stage1_widths = [4]
stage2_self_widths = [4]
stage2_cross_widths = [4]
stage3_width = 4
out_channels = 4
"""


@pytest.mark.parametrize("extra, timing", [("in_channels = 3", False), ("num_classes = 2", True)],
                         ids=["three_channels", "two_classes"])
def test_profile_honours_the_specs_input_channels_and_classes(tmp_path: Path, extra: str, timing: bool):
    from study.measure import profile_model as profile

    path = tmp_path / "tiny.toml"
    path.write_text(extra + "\n" + TINY)
    result = profile(str(path), batch=2, repeats=1, timing=timing)
    assert result["params"] == count_params(build_model(path))["params"]
    assert result["flops"] > 0
    if timing:
        assert result["train_img_per_s"] > 0 and result["infer_img_per_s"] > 0


def test_keras_faithful_lrnet_has_the_authors_keras_defaults():
    # Keras: BatchNormalization(momentum=0.99, epsilon=1e-3); Conv2D/Dense kernel_initializer="glorot_uniform",
    # bias zeros. PyTorch's momentum weighs the new batch, so Keras's 0.99 is PyTorch's 0.01.
    torch.manual_seed(0)
    model = build_model("lrnet_paper_keras")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(0.01) and m.eps == pytest.approx(1e-3) for m in norms)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        fan_in = layer.weight[0].numel()
        fan_out = layer.weight.shape[0] * (layer.weight[0, 0].numel() if layer.weight.dim() > 2 else 1)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound + 1e-7
        if layer.weight.numel() >= 10_000:  # a uniform on [-bound, bound]: SD bound/√3, filled up to the bound
            assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
            assert layer.weight.abs().max() > 0.98 * bound
        assert layer.bias is None or not layer.bias.any()
    plain = build_model("lrnet_paper")  # PyTorch's defaults: Kaiming-uniform bound 1/sqrt(fan_in), BN 0.1 / 1e-5
    first = next(m for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert first.weight.abs().max() <= 1 / math.sqrt(first.weight[0].numel()) + 1e-7
    assert next(m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)).eps == pytest.approx(1e-5)
    assert count_params(model)["params"] == count_params(plain)["params"]  # same network, other defaults


def test_keras_defaults_keep_every_existing_digest_and_set_adam_eps():
    assert resolve_model("lrnet_paper").digest == PAPER.digest() != resolve_model("lrnet_paper_keras").digest
    cfg = dataclasses.replace(TrainConfig(), adam_eps=1e-7)
    assert _optimizer(build_model("lrnet_half"), cfg).defaults["eps"] == 1e-7
