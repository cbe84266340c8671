"""Seeded, stratified splits of a dataset into train / validation / test, under the two protocols
(val carved from a train split, or k folds of a test-only dataset)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from study.data.degrade import apply_degradation, format_degradation, parse_degradation
from study.data.sources import load_split, locate
from study.errors import DataError


def derive_seed(seed: int, tag: str) -> int:
    """A 63-bit seed derived from `seed` and a purpose tag, stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}:{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def stratified_split(labels: torch.Tensor, take: int | float, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (rest, taken) where `taken` holds `take` samples (a count, or a fraction) in class proportion.

    Args:
        labels: [N] integer class labels.
        take: number of samples to take, or a fraction of N in (0, 1).
        seed: seeds the per-class permutations.
    """
    count = round(take * len(labels)) if isinstance(take, float) else int(take)
    if not 0 <= count <= len(labels):
        raise DataError(f"cannot take {count} of {len(labels)} samples; use a count between 0 and {len(labels)}")
    classes, sizes = labels.unique(return_counts=True)
    quota = sizes.double() * count / len(labels)
    per_class = quota.floor().long()
    # Largest remainders get the leftover samples, so each class is within one of its exact share.
    leftover = count - int(per_class.sum())
    per_class[torch.argsort(quota - per_class, descending=True, stable=True)[:leftover]] += 1
    generator = torch.Generator().manual_seed(seed)
    taken = []
    for cls, k in zip(classes.tolist(), per_class.tolist(), strict=True):
        members = (labels == cls).nonzero().flatten()
        taken.append(members[torch.randperm(len(members), generator=generator)[:k]])
    chosen = torch.cat(taken).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[chosen] = False
    return keep.nonzero().flatten(), chosen


def stratified_folds(labels: torch.Tensor, folds: int, *, seed: int) -> list[torch.Tensor]:
    """Partition indices into `folds` sorted index tensors with class proportions kept (seeded)."""
    if folds < 2 or folds > len(labels):
        raise DataError(f"folds={folds} is invalid for {len(labels)} samples; use 2 <= folds <= {len(labels)}")
    generator = torch.Generator().manual_seed(seed)
    shuffled = []
    for cls in labels.unique().tolist():
        members = (labels == cls).nonzero().flatten()
        shuffled.append(members[torch.randperm(len(members), generator=generator)])
    # Dealing the class-grouped order round-robin keeps every class, and every fold's size,
    # within one sample of an equal share.
    order = torch.cat(shuffled)
    return [order[k::folds].sort().values for k in range(folds)]


@dataclass(frozen=True, eq=False)  # tensors have no single truth value to compare by
class Splits:
    """Train / validation / test (images uint8 [N, 28, 28], labels int64 [N]) with how they were made."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    dataset: str
    protocol: str  # "val-split" or "kfold-test:<folds>"
    source: str  # where the files came from
    degradation: str  # canonical degradation text, "none" when clean


PROTOCOLS = ("auto", "val-split", "kfold-test")


def make_splits(name: str, *, seed: int, val_fraction: float = 0.1, protocol: str = "auto", folds: int = 5,
                fold: int = 0, subset: int | None = None, val_subset: int | None = None,
                degrade: str | None = None, data_root: str | Path | None = None) -> Splits:
    """Train/val/test splits of a dataset under a named protocol, optionally subset and degraded.

    Args:
        name: registered dataset name.
        seed: seeds every random choice (val carve, folds, subsets, degradations).
        val_fraction: share of the training data held out, stratified, for validation.
        protocol: "val-split" (val carved from train, real test split), "kfold-test" (stratified
            k-fold on the test split: fold `fold` is the test part, the rest is train + val), or
            "auto" (val-split when the train split can be found or fetched, else kfold-test).
        folds: number of folds for "kfold-test".
        fold: which fold is the test part, 0 <= fold < folds.
        subset: keep a stratified subset of this many training samples (at most all of them).
        val_subset: likewise for the validation part.
        degrade: degradation text such as "lowres:7+noise:0.1", applied to all three parts.
        data_root: folder holding `<name>/<idx files>`; see `locate`.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; use one of: {', '.join(PROTOCOLS)}")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction} must lie strictly between 0 and 1")
    if protocol != "val-split" and not 0 <= fold < folds:
        raise DataError(f"fold={fold} must satisfy 0 <= fold < folds={folds}")
    spec = parse_degradation(degrade)
    test_x, test_y, test_source = load_split(name, "test", data_root)
    if protocol == "auto":
        try:
            locate(name, "train", data_root)
            protocol = "val-split"
        except DataError:
            protocol = "kfold-test"
    if protocol == "val-split":
        pool_x, pool_y, train_source = load_split(name, "train", data_root)
        source = f"train {train_source}; test {test_source}"
        label = "val-split"
    else:
        parts = stratified_folds(test_y, folds, seed=derive_seed(seed, "folds"))
        pool = torch.cat([part for i, part in enumerate(parts) if i != fold]).sort().values
        pool_x, pool_y = test_x[pool], test_y[pool]
        test_x, test_y = test_x[parts[fold]], test_y[parts[fold]]
        source = f"test {test_source} (fold {fold} of {folds} is the test part)"
        label = f"kfold-test:{folds}"
    train_idx, val_idx = stratified_split(pool_y, val_fraction, seed=derive_seed(seed, "val"))
    if subset is not None:
        keep = stratified_split(pool_y[train_idx], min(subset, len(train_idx)), seed=derive_seed(seed, "subset"))[1]
        train_idx = train_idx[keep]
    if val_subset is not None:
        keep = stratified_split(pool_y[val_idx], min(val_subset, len(val_idx)), seed=derive_seed(seed, "val_subset"))[1]
        val_idx = val_idx[keep]
    parts_xy = {"train": (pool_x[train_idx], pool_y[train_idx]), "val": (pool_x[val_idx], pool_y[val_idx]),
                "test": (test_x, test_y)}
    if spec:
        parts_xy = {part: (apply_degradation(x, spec, derive_seed(seed, f"degrade:{part}")), y)
                    for part, (x, y) in parts_xy.items()}
    return Splits(**parts_xy, dataset=name, protocol=label, source=source, degradation=format_degradation(spec))
