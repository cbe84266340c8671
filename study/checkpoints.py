"""Kept models: a trial's best-validation weights (`checkpoints/<slug>.pt`) with the description that
rebuilds its network (`checkpoints/<slug>.json`), reloading one, re-testing it, and pruning old ones.

The weights are a plain state dict (`torch.load(path, weights_only=True)`); the description holds the
network spec as the mapping `study.spec.network_from_mapping` reads (`network`, null for baselines,
which the registry name rebuilds), the class count and the spec digest the rebuilt network must have.
`retest` repeats a row's final test evaluation (`study.train.evaluate` on `study.train._evaluator`, the
same splits from `study.train._prepare_data`), so without a new degradation it gives the row's
`test_accuracy` exactly on CPU.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from study import data as datasets
from study import results, train
from study.errors import KitError
from study.files import atomic_path
from study.models import ResolvedModel, list_models, resolve_model
from study.spec import network_from_mapping

FORMAT = 1


def describe(model: ResolvedModel, num_classes: int) -> dict[str, Any]:
    """What rebuilds `model`'s network: its name, spec as a mapping (None for baselines), classes, digest."""
    network = dataclasses.asdict(model.spec) if model.spec is not None else None
    return {"format": FORMAT, "model": model.name, "spec_hash": model.digest, "num_classes": num_classes,
            "network": network}


def write_description(weights: str | Path, model: ResolvedModel, dataset: str) -> Path:
    """Write the description beside a checkpoint (`<slug>.json` beside `<slug>.pt`), atomically."""
    path = Path(weights).with_suffix(".json")
    text = json.dumps(describe(model, len(datasets.get_dataset(dataset).classes)), indent=1)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text + "\n")
    return path


def rebuild(description: Mapping[str, Any], where: str = "checkpoint") -> tuple[ResolvedModel, nn.Module]:
    """The resolved model and a fresh module of a description; a digest other than the recorded one is an error.

    A registered name whose digest matches rebuilds through the registry (its builder sets the class
    count); any other MK network (a proxy, a capacity-matched variant, a searched one) from its spec.
    """
    name, digest = str(description.get("model", "")), str(description.get("spec_hash", ""))
    network = description.get("network")
    if name in list_models() and (network is None or resolve_model(name).digest == digest):
        model = resolve_model(name)
    elif isinstance(network, Mapping):
        model = resolve_model(network_from_mapping(network, where), where)
    else:
        raise KitError(f"{where}: model {name!r} is neither registered nor described by a network spec")
    if model.digest != digest:
        raise KitError(f"{where}: the rebuilt network has digest {model.digest}, the checkpoint's is {digest}")
    return model, model.build(int(description.get("num_classes", 10)))


def load_kept(weights: str | Path) -> tuple[ResolvedModel, nn.Module]:
    """A kept model: rebuilt from the description beside `weights` and loaded with weights_only=True."""
    weights = Path(weights)
    about = weights.with_suffix(".json")
    if not weights.exists():
        raise KitError(f"{weights}: checkpoint not found (pruned, or kept_weights was off)")
    if not about.exists():
        raise KitError(f"{about}: no network description beside the checkpoint (written by a kit older than `study test`)")
    try:
        description = json.loads(about.read_text())
    except ValueError as err:
        raise KitError(f"{about}: not valid JSON ({err})") from None
    model, module = rebuild(description, str(about))
    try:
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError) as err:
        raise KitError(f"{weights}: the weights do not load into {model.name}: {str(err).splitlines()[0]}") from None
    return model, module


def checkpoint_file(runs: str | Path, row: Mapping[str, Any]) -> Path | None:
    """A row's checkpoint file; a reused row's `checkpoint` is relative to the study that trained it."""
    relative = row.get("checkpoint")
    if not isinstance(relative, str) or not relative:
        return None
    return Path(runs) / str(row.get("reused_from") or row["study"]) / relative


def retest(runs: str | Path, row: Mapping[str, Any], degrade: str | None = None, device: str = "cpu") -> dict[str, float]:
    """Re-test a row's kept model on its test split (the row's protocol, fold, seed and config).

    Args:
        runs: the run directory holding `<study>/checkpoints/`.
        row: a result row with a `checkpoint`.
        degrade: a degradation of the test split (e.g. "blur:1.0"); default: the row's own (none for a clean row).
        device: "cpu" reproduces a CPU row exactly.

    Returns:
        `loss`, `accuracy` and `img_per_s` of `study.train.evaluate`.
    """

    weights = checkpoint_file(runs, row)
    if weights is None:
        raise KitError(f"{row.get('study')}/{row.get('variant')} seed {row.get('seed')}: the row keeps no checkpoint")
    model, module = load_kept(weights)
    cfg = train.TrainConfig(**json.loads(row["config"]))
    protocol = "kfold-test" if str(row["protocol"]).startswith("kfold-test") else str(row["protocol"])
    task = train.Task(str(row["dataset"]), protocol=protocol, fold=int(row.get("fold") or 0))
    seed = int(row["seed"])
    test_x, test_y = train._prepare_data(model, task, cfg, seed).test
    level = degrade or (str(row.get("degradation")) if row.get("test_degraded_only") else "none")
    if level != "none":  # the seed `_final_evaluation` degrades the test split with
        test_x = datasets.apply_degradation(test_x, level, datasets.derive_seed(seed, f"degrade:test:{level}"))
    module = module.to(device)
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    loader = datasets.DeviceLoader(test_x, test_y, batch_size=cfg.eval_batch_size, shuffle=False, seed=seed, device=device)
    return train.evaluate(train._evaluator(module, module, cfg), loader, cfg, device)


def prune(runs: str | Path, study: str, keep: int = 1, dry_run: bool = False) -> list[Path]:
    """Delete a study's checkpoints except the `keep` best (by validation accuracy) of each variant × dataset
    × profile; files no row names go too. Returns the deleted (or, with `dry_run`, the deletable) files.

    Selection is by validation accuracy, never test accuracy. Rows stay as they are: `study test` of a
    pruned row says its checkpoint is gone.
    """

    if keep < 0:
        raise KitError(f"--keep {keep}: keep 0 or more checkpoints per variant")
    folder, table = Path(runs) / study / "checkpoints", results.results_path(runs, study)
    if not table.exists():  # without rows every checkpoint would look unnamed: refuse rather than delete them all
        raise KitError(f"{table}: no results for study {study!r} (check --runs and --study)")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in results.ResultsTable(table).finished().values():
        if row.get("status") == "ok" and row.get("checkpoint") and not row.get("reused_from") and not row.get("test_degraded_only"):
            groups.setdefault((row["variant"], row["dataset"], row["profile"]), []).append(row)
    kept = set()
    for rows in groups.values():
        rows.sort(key=lambda r: (-float(r.get("val_accuracy") or 0.0), int(r["seed"])))
        kept.update(Path(runs) / study / str(r["checkpoint"]) for r in rows[:keep])
    doomed = [p for p in sorted(folder.glob("*.pt")) if p not in kept] if folder.is_dir() else []
    if not dry_run:
        for weights in doomed:
            weights.unlink(missing_ok=True)
            weights.with_suffix(".json").unlink(missing_ok=True)
    return doomed
