"""A study run's cells: what one study trains under one profile, and which cells are finished.

A cell is one variant × dataset × seed (× rung, in a study whose profile declares a ladder); a
robustness study's cell writes one row per degradation level (trained clean, tested degraded).
`cells(ctx)` lists them in the order the study's kind queues them (`study.kinds`: a grid's rung-major, then
seed-major order, so a stopped run leaves whole rungs and whole paired seeds), and every question "is this cell
done / how many are left" is asked here, of the results table (`Context.table`), for `run` and `plan` alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from study import results
from study.data import locate
from study.errors import DataError
from study.kinds.registry import get_kind
from study.measure import git_commit
from study.profiles import Profile
from study.studies import ResolvedVariant, StudySpec, Variant
from study.train import TrainConfig, config_json, same_training


@dataclasses.dataclass
class Context:
    """What every trial of one study run shares."""

    spec: StudySpec
    profile: str
    run_dir: Path
    device: str = "cpu"
    seeds: tuple[int, ...] = ()
    commit: str = dataclasses.field(default_factory=git_commit)
    tuned: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # label → lr, weight_decay (`study.tuning`)
    rung: str = ""  # the ladder rung this context trains ("" = the profile itself)
    worker: str = "0"  # which worker of the run this process is (its search sampler's seed: `search.sampler_seed`)

    @property
    def profile_spec(self) -> Profile:
        """This study's profile (with the study file's overrides), at this context's rung."""
        return self.spec.profiles[self.profile].at(self.rung)

    @property
    def rungs(self) -> tuple[str, ...]:
        """The rung labels of the profile's ladder, smallest first; ("",) when it has none."""
        return tuple(r.rung for r in self.spec.profiles[self.profile].ladder())

    def at(self, rung: str) -> Context:
        """This run's context at one rung of its ladder (same study, seeds, device and tuned values)."""
        return self if rung == self.rung else dataclasses.replace(self, rung=rung)

    @property
    def cfg(self) -> TrainConfig:
        """The training config of this profile for this study."""
        return self.profile_spec.train

    def cfg_for(self, label: str) -> TrainConfig:
        """The training config a variant's cells train with: the profile's, with the variant's tuned values."""
        return dataclasses.replace(self.cfg, **self.tuned[label]) if label in self.tuned else self.cfg

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets this profile runs (a profile may run a subset of the study's)."""
        return self.spec.datasets_for(self.profile)

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The variants this profile runs (a variant may be limited to some profiles)."""
        return tuple(v for v in self.spec.variants if not v.profiles or self.profile in v.profiles)

    def resolved(self, label: str) -> ResolvedVariant:
        """A variant's network under this profile (resolved once, when the study was loaded)."""
        return self.spec.resolved_at(self.profile, self.rung)[label]

    @property
    def results_path(self) -> Path:
        """This study's results file."""
        return results.results_path(self.run_dir, self.spec.name)

    @property
    def table(self) -> results.ResultsTable:
        """This study's results table."""
        return results.ResultsTable(self.results_path)

    @property
    def levels(self) -> tuple[str, ...]:
        """The degradation levels each cell is tested at (`StudyKind.levels`: a robustness study's degradations)."""
        return get_kind(self.spec.kind).levels(self.spec)


#: Which worker of a run a `study worker` process is (`study run --workers N` numbers them; a standalone worker
#: without it uses its host:pid): `Context.worker`, part of its search sampler's seed.
WORKER_ENV = "STUDY_WORKER_INDEX"


def sampler_seed(ctx: Context) -> int:
    """A worker's sampler seed, derived from the study and the worker: workers started together propose different
    first trials, and a re-run of the same worker proposes the same ones. Each trial records it."""
    worker = ctx.worker
    if worker == "0":  # the first (or only) worker keeps the seed every search had before workers were told apart
        return 0
    return int.from_bytes(hashlib.sha256(f"{ctx.spec.name}|{ctx.profile}|{worker}".encode()).digest()[:4], "big")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One variant × dataset × seed of a grid or robustness study, with the key fields of its rows."""

    variant: Variant
    dataset: str
    seed: int
    bases: tuple[dict[str, Any], ...]  # one per degradation level, the clean one first
    rung: str = ""  # its ladder rung ("" = none)
    networks: frozenset[str] = frozenset()  # what a current row's spec_hash may be (the digest; an older kit's name)
    config: str = ""  # the training config a current row's `config` holds (`train.config_json`)

    @property
    def key(self) -> tuple:
        """The results-table key of the cell's first (clean) row."""
        return results.row_key(self.bases[0])

    @property
    def params(self) -> dict[str, Any]:
        """The cell as Optuna trial parameters."""
        params = {"variant": self.variant.label, "dataset": self.dataset, "seed": self.seed}
        return {**params, "rung": rung_id(self.rung)} if self.rung else params

    def current(self, row: dict[str, Any]) -> bool:
        """Whether a finished row of this cell trained what the cell trains now: the same network and the same
        resolved training config (a row without these fields, written by hand or by a very old kit, counts)."""
        network, config = row.get("spec_hash"), row.get("config")
        return (not network or not self.networks or network in self.networks) and (
            not config or not self.config or same_training(config, self.config))

    def done(self, finished: dict[tuple, dict[str, Any]]) -> bool:
        """Whether every row of the cell is in `finished` (`ResultsTable.finished()`) and current: the one test of
        "done", asked by `run` and `plan` alike. A row of an edited study file (another network or budget) is stale:
        its cell trains again, and the new row supersedes it (`results.load_table` keeps a key's newest row)."""
        return all(results.row_key(b) in finished and self.current(finished[results.row_key(b)]) for b in self.bases)

    def stale(self, finished: dict[tuple, dict[str, Any]]) -> bool:
        """Whether the cell has a finished row that trained something else than the cell trains now."""
        return any(results.row_key(b) in finished and not self.current(finished[results.row_key(b)]) for b in self.bases)


def cell(ctx: Context, label: str, dataset: str, seed: int) -> Cell:
    """The cell of a variant label, dataset and seed, at the context's rung."""
    variant = next(v for v in ctx.variants if v.label == label)
    model = ctx.resolved(label).model
    return Cell(variant, dataset, seed, tuple(row_base(ctx, label, variant.reference, dataset, seed, level)
                                              for level in ctx.levels), ctx.rung,
                frozenset({model.digest, model.name}), config_json(ctx.cfg_for(label)))


def rung_id(rung: str) -> int:
    """A rung's Optuna parameter: a stable integer of its label, drawn as an int range (never a categorical of the
    labels, whose value space Optuna cannot change when an edited study file changes a rung's budget)."""
    return int(hashlib.sha256(rung.encode()).hexdigest()[:7], 16) if rung else 0


def cells(ctx: Context) -> Iterator[Cell]:
    """Every cell of a study in the order its kind queues them (`StudyKind.cells`: a grid's rung-major, then
    seed-major order; none for a search, whose sampler proposes its trials)."""
    return get_kind(ctx.spec.kind).cells(ctx)


def row_base(ctx: Context, variant_label: str, reference: bool, dataset: str, seed: int,
             degradation: str = "none") -> dict[str, Any]:
    """The key fields of a row (`results.KEY`) and whether it is the axis's reference."""
    protocol = resolve_protocol(dataset)
    profile = ctx.profile_spec
    base = {"study": ctx.spec.name, "axis": ctx.spec.axis, "variant": variant_label, "is_reference": reference,
            "dataset": dataset, "degradation": degradation, "protocol": protocol, "fold": fold_of(protocol, seed),
            "seed": seed, "profile": ctx.profile, "scale": profile.scale, "budget_images": profile.budget_images,
            "scale_width": profile.width, "equivalence_margin": ctx.spec.equivalence_margin, "kind": ctx.spec.kind}
    return {**base, "rung": ctx.rung} if ctx.rung else base


def fold_of(protocol: str, seed: int) -> int:
    """The test fold a seed uses: k-fold protocols rotate the folds over seeds (seed s tests fold s mod k)."""
    _, _, k = protocol.partition("kfold-test:")
    return seed % int(k) if k.isdigit() else 0


_PROTOCOLS: dict[str, str] = {}


def resolve_protocol(dataset: str) -> str:
    """The protocol label "auto" resolves to for a dataset here (val-split when a train split exists)."""
    if dataset not in _PROTOCOLS:
        try:
            locate(dataset, "train")
            _PROTOCOLS[dataset] = "val-split"
        except DataError:
            _PROTOCOLS[dataset] = "kfold-test:5"
    return _PROTOCOLS[dataset]


def expected_rows(ctx: Context) -> int:
    """How many result rows a finished study has (`StudyKind.expected_rows`; a search: its trial budget)."""
    return get_kind(ctx.spec.kind).expected_rows(ctx)


def missing_cells(ctx: Context) -> int:
    """Cells (or search trials) still to run, judged from the results table (`StudyKind.missing`)."""
    return get_kind(ctx.spec.kind).missing(ctx)
