"""Study specs: the TOML files of `ablations/` that say what a study varies, on which data, with
which seeds and budgets, loaded into frozen dataclasses with one-line errors.

A study is one of three kinds:
- `grid`: every variant × dataset × seed, run through Optuna's GridSampler;
- `robustness`: every model trained clean, then tested at every degradation level;
- `search`: an Optuna search over the MK-block space (single- or multi-objective).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study import capacity
from study.blocks import network_complexity
from study.errors import SpecError, UnknownModelError
from study.models import ResolvedModel, get_entry, resolve_model
from study.profiles import PROFILES, Profile, override
from study.spec import (
    NetworkSpec,
    load_network,
    network_from_mapping,
    read_toml,
    unknown_key,
    validate_network,
)

#: The example studies and network specs the kit ships: a clone's ablations/, or the copy inside an installed
#: package (study/examples, a link to ablations/ in the source tree).
ABLATIONS = Path(__file__).resolve().parent / "examples"
#: Environment variable naming the folder of study files (`study --studies DIR` sets it for every worker).
STUDIES_ENV = "STUDY_STUDIES"


def studies_folder() -> Path:
    """Where study names are looked up: `--studies DIR` / $STUDY_STUDIES, else ./ablations in the working folder
    (a clone's, or one `study init DIR` wrote), else the examples the kit ships."""
    if os.environ.get(STUDIES_ENV):
        return Path(os.environ[STUDIES_ENV]).expanduser()
    here = Path.cwd() / "ablations"
    return here if here.is_dir() and any(here.glob("*.toml")) else ABLATIONS


@dataclass(frozen=True)
class Variant:
    """One cell of an axis: a registered model, or the study's base network with overrides."""

    label: str
    reference: bool = False
    model: str = ""  # a registered model or a .toml network spec (relative to the study file); else the base network
    block: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # applied to every MK block
    blocks: int = 0  # block count ≥ 1 (left out: the base's)
    head: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    profiles: tuple[str, ...] = ()  # run only under these profiles (empty = every profile)
    match: str = ""  # "flops" or "params": widths scaled to the reference's cost (±5 %); "" = as written


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant resolved once, for one profile: the model it trains and its cost before matching."""

    variant: Variant
    model: ResolvedModel
    flops: int | None = None  # analytic cost of the model's network (None for baselines)
    params: int | None = None
    raw_flops: int | None = None  # the same variant before capacity matching
    raw_params: int | None = None


@dataclass(frozen=True)
class SearchSpace:
    """The MK-block space an Optuna search samples, and the bands that reject a spec before training."""

    kernels: tuple[tuple[int, ...], ...] = ((3,), (3, 5), (3, 5, 7), (1, 3, 5), (3, 5, 7, 9))
    links: tuple[str, ...] = ("paper", "none", "residual", "dense")
    blocks: tuple[int, int] = (1, 3)
    width_multiplier: tuple[float, float] = (0.25, 1.5)
    dropout: tuple[float, float] = (0.0, 0.5)
    lr: tuple[float, float] = (3e-4, 1e-2)
    flops_band: tuple[float, float] = (0.0, float("inf"))
    params_band: tuple[float, float] = (0.0, float("inf"))
    objectives: tuple[str, ...] = ("accuracy",)  # or ("accuracy", "flops"): a Pareto front
    pruner: str = "median"  # median | hyperband | none


@dataclass(frozen=True)
class Tuning:
    """A grid study's per-model tuning stage (`[tuning]`): before the grid, every variant gets the same
    budget, an Optuna study over this grid of learning rate × weight decay at the profile's training
    budget, selected on validation accuracy (the test split is never touched); the grid then trains
    each variant with its chosen values (`study.tuning`)."""

    lr: tuple[float, ...] = (5e-4, 1.5e-3, 4.5e-3)
    weight_decay: tuple[float, ...] = (0.0,)
    seed: int = 1000  # the tuning runs' first seed: apart from the grid's seeds 0, 1, …
    dataset: str = ""  # "" = the profile's first dataset
    seeds: int = 2  # runs per grid point (seeds seed, seed + 1, …): a point is chosen on its mean validation accuracy

    @property
    def points(self) -> list[dict[str, float]]:
        """The grid, lr-major."""
        return [{"lr": lr, "weight_decay": wd} for lr in self.lr for wd in self.weight_decay]

    @property
    def runs(self) -> list[dict[str, float]]:
        """Every trial of one variant's tuning study: each point at each tuning seed, seed-major."""
        return [{**point, "seed": self.seed + i} for i in range(self.seeds) for point in self.points]


@dataclass(frozen=True)
class StudySpec:
    """A whole study as loaded from `ablations/<name>.toml`."""

    name: str
    axis: str
    kind: str
    description: str
    base: str
    datasets: tuple[str, ...]
    variants: tuple[Variant, ...]
    degradations: tuple[str, ...]
    search: SearchSpace
    profiles: Mapping[str, Profile]
    path: str
    default_run: bool = True  # part of a plain `study run` / `nox -s ablations`
    equivalence_margin: float = 3.0  # ±points within which a contrast counts as "equivalent"
    run_order: int = 50  # position in a multi-study run (`order` in the file; lower runs first)
    resolved: Mapping[str, Mapping[str, ResolvedVariant]] = dataclasses.field(default_factory=dict)  # profile → label →
    tuning: Tuning | None = None  # the per-model tuning stage of a grid study (`[tuning]`)
    expected_min: Mapping[str, float] = dataclasses.field(default_factory=dict)  # profile → minutes the file states
    margin_reason: str = ""  # why the equivalence margin is what it is (shown beside every equivalence verdict)
    margin_relative: float = 0.0  # > 0: the margin is this share of the reference's error rate (resolved from the rows)
    design: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the spread the design assumed (`_design`)
    rung_resolved: Mapping[tuple[str, str], Mapping[str, ResolvedVariant]] = dataclasses.field(default_factory=dict)  # (profile, rung) → label →

    def resolved_at(self, profile: str, rung: str = "") -> Mapping[str, ResolvedVariant]:
        """Every variant's network under a profile, or under one rung of its ladder (a width rung resolves anew)."""
        return self.rung_resolved[profile, rung] if rung else self.resolved[profile]

    def datasets_for(self, profile: str) -> tuple[str, ...]:
        """The datasets a profile runs: its own `datasets` (a subset of the study's), else the study's."""
        return self.profiles[profile].datasets or self.datasets

    def reference(self) -> Variant | None:
        """The variant flagged as the paper configuration."""
        return next((v for v in self.variants if v.reference), None)


_STUDY_KEYS = {"name", "axis", "kind", "description", "base", "datasets", "variants", "degradations", "search", "profiles",
               "default_run", "equivalence_margin", "order", "expected_min", "margin_reason", "design",
               "equivalence_margin_relative"}
_KINDS = ("grid", "robustness", "search")


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str, prefix: str = "") -> None:
    for key in table:
        if key not in allowed:
            raise unknown_key(where, prefix + key, allowed)


def _profiles(tables: Any, where: str) -> dict[str, Profile]:
    """Every profile, with the study file's `[profiles.<name>]` tables laid over; an unknown name is an error."""
    if not isinstance(tables, dict):
        raise SpecError.at(where, "profiles", f"got {json.dumps(tables, default=str)}", "tables [profiles.<name>]")
    for name, table in tables.items():
        if name not in PROFILES:
            raise SpecError.at(where, f"profiles.{name}", "unknown profile", ", ".join(PROFILES))
        if not isinstance(table, dict):
            raise SpecError.at(where, f"profiles.{name}", f"got {json.dumps(table, default=str)}", "a table of profile fields")
    return {name: override(profile, tables.get(name, {}), where) for name, profile in PROFILES.items()}


def load_study(path: str | Path, overrides: tuple = ()) -> StudySpec:
    """Load and validate a study TOML file; any problem is one SpecError line naming the file and key.
    `overrides` (`study.overrides.Override`, from `--set`) are laid over the file before validation."""
    path = Path(path)
    where = str(path)
    doc = read_toml(path, f"a study file, e.g. one of {', '.join(list_studies())}")
    if overrides:
        from study.overrides import apply_overrides

        doc = apply_overrides(doc, overrides)
    _check_keys(doc, {"study", "variants", "search", "profiles", "tuning"}, where)
    table = _table(doc.get("study", {}), where, "study")
    _check_keys(table, _STUDY_KEYS - {"variants", "search", "profiles"}, where, "study.")
    kind = table.get("kind", "grid")
    if kind not in _KINDS:
        raise SpecError.at(where, "study.kind", f"{json.dumps(kind, default=str)} is not a study kind", ", ".join(_KINDS))
    name, axis, description, base = (_text(table, key, default, where) for key, default in (
        ("name", path.stem), ("axis", table.get("name", path.stem)), ("description", ""), ("base", "lrnet_paper")))
    _known_model(base, where, "study.base")
    datasets = _datasets(table.get("datasets", ["fashion-mnist"]), where)
    variants = _variants(doc.get("variants", []), kind, where)
    search = _search_space(doc.get("search", {}), where)
    profiles = _profiles(doc.get("profiles", {}), where)
    for profile in profiles.values():
        extra = [d for d in profile.datasets if d not in datasets]
        if extra:
            raise SpecError.at(where, f"profiles.{profile.name}.datasets", f"{extra[0]!r} is not one of the study's datasets",
                               ", ".join(datasets))
    degradations = _degradations(table.get("degradations", ["none"]), where)
    spec = StudySpec(name=name, axis=axis, kind=kind, description=description,
                     base=base, datasets=datasets, variants=variants, degradations=degradations, search=search,
                     profiles=profiles, path=where, default_run=bool(table.get("default_run", True)),
                     equivalence_margin=_margin(table.get("equivalence_margin", 3.0), where),
                     run_order=_order(table.get("order", 50), where),
                     tuning=_tuning(doc["tuning"], kind, datasets, where) if "tuning" in doc else None,
                     expected_min=_expected(table.get("expected_min", {}), profiles, where),
                     margin_reason=_text(table, "margin_reason", "", where) if "margin_reason" in table else "",
                     margin_relative=_relative_margin(table, where),
                     design=_design(table.get("design", {}), [v.label for v in variants], where))
    networks = {v.label: variant_network(spec, v) for v in spec.variants}  # built and validated once
    by_width: dict[float, dict[str, ResolvedVariant]] = {}  # rungs of one width resolve alike: match once

    def at(rung: Profile) -> dict[str, ResolvedVariant]:
        if rung.width not in by_width:
            by_width[rung.width] = _resolve_variants(spec, rung, networks)
        return by_width[rung.width]

    resolved = {name: at(profile) for name, profile in profiles.items()}
    rungs = {(name, rung.rung): at(rung) for name, profile in profiles.items() for rung in profile.rungs}
    return dataclasses.replace(spec, resolved=resolved, rung_resolved=rungs)


def _table(value: Any, where: str, key: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError.at(where, key, f"got {json.dumps(value, default=str)}", f"a [{key}] table")
    return value


def _text(table: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (key != "description" and not value.strip()):
        raise SpecError.at(where, f"study.{key}", f"got {json.dumps(value, default=str)}", "a non-empty string")
    return value


def _strings(value: Any, where: str, key: str, allowed: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError.at(where, key, f"got {json.dumps(value, default=str)}", allowed)
    return tuple(value)


def _datasets(value: Any, where: str) -> tuple[str, ...]:
    from study.data import list_datasets

    datasets = _strings(value, where, "study.datasets", f"a list of dataset names from {', '.join(list_datasets())}")
    unknown = [d for d in datasets if d not in list_datasets()]
    if unknown:
        raise SpecError.at(where, "study.datasets", f"unknown dataset {unknown[0]!r}", ", ".join(list_datasets()))
    return datasets


def _degradations(value: Any, where: str) -> tuple[str, ...]:
    from study.data import parse_degradation
    from study.errors import DataError

    degradations = _strings(value, where, "study.degradations", 'a list of degradation texts, e.g. ["none", "blur:1.0"]')
    for text in degradations:
        try:
            parse_degradation(text)
        except DataError as err:
            raise SpecError.at(where, "study.degradations", str(err), "see `study.data.DEGRADATIONS`") from None
    return degradations


def _variants(tables: Any, kind: str, where: str) -> tuple[Variant, ...]:
    if not isinstance(tables, list):
        raise SpecError.at(where, "variants", f"got {json.dumps(tables, default=str)}", "[[variants]] tables")
    variants = tuple(_variant(v, i, where) for i, v in enumerate(tables))
    if kind != "search" and not variants:
        raise SpecError.at(where, "variants", "no variants", "one or more [[variants]] tables")
    labels = [v.label for v in variants]
    dup = next((lab for lab in labels if labels.count(lab) > 1), None)
    if dup:
        raise SpecError.at(where, "variants", f"label {dup!r} is used twice", "unique labels")
    if sum(v.reference for v in variants) > 1:
        raise SpecError.at(where, "variants", "more than one reference", "at most one variant with reference = true")
    return variants


_PRUNERS = ("median", "hyperband", "none")
_OBJECTIVES = ("accuracy", "flops")


def _search_space(table: Any, where: str) -> SearchSpace:
    """The `[search]` table, each field checked against the shape of its default; one line per problem."""
    if not isinstance(table, dict):
        raise SpecError.at(where, "search", f"got {json.dumps(table, default=str)}", "a [search] table")
    _check_keys(table, {f.name for f in dataclasses.fields(SearchSpace)}, where, "search.")
    for key, value in table.items():
        if not _fits(value, getattr(SearchSpace, key)):
            raise SpecError.at(where, f"search.{key}", f"got {json.dumps(value, default=str)}",
                               f"the shape of the default {json.dumps(getattr(SearchSpace, key), default=str)}")
    space = SearchSpace(**{k: _tupled(v) for k, v in table.items()})
    for key in ("blocks", "width_multiplier", "dropout", "lr", "flops_band", "params_band"):
        low, high = getattr(space, key)
        if not low <= high:
            raise SpecError.at(where, f"search.{key}", f"[{low}, {high}] is empty", "[low, high] with low ≤ high")
    if space.pruner not in _PRUNERS or not set(space.objectives) <= set(_OBJECTIVES) or not space.objectives:
        raise SpecError.at(where, "search.pruner/objectives", f"got {space.pruner!r} / {list(space.objectives)}",
                           f"pruner one of {', '.join(_PRUNERS)}; objectives from {', '.join(_OBJECTIVES)}")
    return space


def _tuning(table: Any, kind: str, datasets: tuple[str, ...], where: str) -> Tuning:
    """The `[tuning]` table of a grid study: non-empty lists of positive rates / non-negative decays."""
    table = _table(table, where, "tuning")
    if kind != "grid":
        raise SpecError.at(where, "tuning", f"a {kind} study has no tuning stage", "[tuning] in a grid study only")
    _check_keys(table, {f.name for f in dataclasses.fields(Tuning)}, where, "tuning.")
    for key in ("lr", "weight_decay"):
        value = table.get(key, [])
        if key in table and (not isinstance(value, list) or not value or len(set(value)) != len(value) or not all(
                _fits(v, 1.0) and (v > 0 if key == "lr" else v >= 0) and v < 1 for v in value)):
            raise SpecError.at(where, f"tuning.{key}", f"got {json.dumps(value, default=str)}",
                               f"a list of distinct numbers in {'(0' if key == 'lr' else '[0'}, 1)")
    if not isinstance(table.get("seed", 0), int) or isinstance(table.get("seed"), bool) or table.get("seed", 0) < 0:
        raise SpecError.at(where, "tuning.seed", f"got {json.dumps(table.get('seed'), default=str)}", "an integer ≥ 0")
    if not isinstance(table.get("seeds", 2), int) or isinstance(table.get("seeds"), bool) or table.get("seeds", 2) < 1:
        raise SpecError.at(where, "tuning.seeds", f"got {json.dumps(table.get('seeds'), default=str)}",
                           "an integer ≥ 1 (runs per grid point; 2 or more, or say in the file why one)")
    if table.get("dataset", datasets[0]) not in datasets:
        raise SpecError.at(where, "tuning.dataset", f"got {json.dumps(table.get('dataset'), default=str)}", ", ".join(datasets))
    return Tuning(**{k: tuple(float(x) for x in v) if isinstance(v, list) else v for k, v in table.items()})


def _fits(value: Any, default: Any) -> bool:
    """Whether a TOML value has the shape of a default (lists for tuples, numbers for numbers)."""
    if isinstance(default, tuple):
        if not isinstance(value, list) or (len(default) == 2 and not isinstance(default[0], tuple)
                                           and isinstance(default[0], (int, float)) and len(value) != 2):
            return False
        sample = default[0] if default else None
        return all(_fits(v, sample) for v in value) if sample is not None else True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and (math.isfinite(value) or value == math.inf)
    return isinstance(value, type(default))


def _margin(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 100:
        raise SpecError.at(where, "study.equivalence_margin", f"got {json.dumps(value)}", "accuracy points in (0, 100]")
    return float(value)


def _expected(value: Any, profiles: Mapping[str, Profile], where: str) -> dict[str, float]:
    """`expected_min = { quick = 60 }`: the minutes a run of the study takes per profile, as measured and stated."""
    if not isinstance(value, dict) or not all(k in profiles and _fits(v, 1.0) and v > 0 for k, v in value.items()):
        raise SpecError.at(where, "study.expected_min", f"got {json.dumps(value, default=str)}",
                           f"a table of minutes per profile ({', '.join(profiles)}), e.g. {{ quick = 60 }}")
    return {k: float(v) for k, v in value.items()}


def _design(value: Any, labels: list[str], where: str) -> dict[str, Any]:
    """`design = { sd = { "<variant>" = 0.97, … }, source = "…", mde_target = 3.0 }`: the SD of each contrast's paired
    differences the design was sized on, where it was measured, and the MDE it aimed at; the report checks the run
    against it."""
    allowed = 'a table { sd = { "<variant label>" = points, … }, source = "where the SDs were measured", mde_target = points }'
    if not isinstance(value, dict) or set(value) - {"sd", "source", "mde_target"}:
        raise SpecError.at(where, "study.design", f"got {json.dumps(value, default=str)}", allowed)
    sds = value.get("sd", {})
    if not isinstance(sds, dict) or not all(k in labels and _fits(v, 1.0) and v > 0 for k, v in sds.items()):
        raise SpecError.at(where, "study.design.sd", f"got {json.dumps(sds, default=str)}",
                           f"positive SDs in points for variants among {', '.join(labels)}")
    if sds and not isinstance(value.get("source"), str):
        raise SpecError.at(where, "study.design.source", "missing", "where the planned SDs were measured, e.g. a docs/ page")
    target = value.get("mde_target", 0.0)
    if not _fits(target, 1.0) or target < 0:
        raise SpecError.at(where, "study.design.mde_target", f"got {json.dumps(target)}", "points ≥ 0")
    return {"sd": {k: float(v) for k, v in sds.items()}, "source": value.get("source", ""), "mde_target": float(target)} \
        if value else {}


def _relative_margin(table: Mapping[str, Any], where: str) -> float:
    """`equivalence_margin_relative = 0.15`: the margin as a share of the reference's error rate (15 % of 19 % error
    is ±2.9 points), instead of `equivalence_margin` in points."""
    if "equivalence_margin_relative" not in table:
        return 0.0
    value = table["equivalence_margin_relative"]
    if "equivalence_margin" in table:
        raise SpecError.at(where, "study.equivalence_margin_relative", "given with equivalence_margin",
                           "one of the two: points, or a share of the reference's error rate")
    if not _fits(value, 1.0) or not 0 < value <= 1:
        raise SpecError.at(where, "study.equivalence_margin_relative", f"got {json.dumps(value)}",
                           "a share of the reference's error rate in (0, 1], e.g. 0.15")
    return float(value)


def _order(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError.at(where, "study.order", f"got {json.dumps(value)}", "an integer (lower runs first)")
    return value


def _resolve_variants(spec: StudySpec, profile: Profile, networks: Mapping[str, NetworkSpec | str]) -> dict[str, ResolvedVariant]:
    """Each variant's model under a profile: scaled to the proxy width, then capacity-matched when asked."""
    reference = spec.reference()
    ref_network = _mk(networks[reference.label]) if reference else None
    ref_network = capacity.scaled(ref_network, profile.width) if ref_network else None
    return {v.label: _resolve_variant(spec, v, networks[v.label], ref_network, profile.width) for v in spec.variants}


def _resolve_variant(spec: StudySpec, v: Variant, network: NetworkSpec | str, ref_network: NetworkSpec | None,
                     width: float) -> ResolvedVariant:
    where = f"{spec.path}: variants[{v.label}]"
    mk = _mk(network)
    if mk is None:
        if v.match:
            raise SpecError.at(spec.path, f"variants[{v.label}].match", "a baseline cannot be width-matched",
                        "match only on MK-network variants")
        return ResolvedVariant(v, resolve_model(network))
    proxy = capacity.scaled(mk, width)
    validate_network(proxy, where)
    final = proxy
    if v.match and not v.reference:
        if ref_network is None:
            raise SpecError.at(spec.path, f"variants[{v.label}].match", "no MK-network reference to match",
                        "a study with one `reference = true` MK variant")
        final = capacity.matched(proxy, ref_network, v.match, where)
    raw, cost = network_complexity(proxy), network_complexity(final)
    model = resolve_model(network if final is mk else capacity.width_named(final, mk.name), where)
    return ResolvedVariant(v, model, cost["flops"], cost["params"], raw["flops"], raw["params"])


def _mk(network: NetworkSpec | str) -> NetworkSpec | None:
    """The MK network behind a variant's network (None for a baseline)."""
    if isinstance(network, NetworkSpec):
        return network
    return load_network(network) if network.endswith(".toml") else get_entry(network).spec


def _known_model(name: str, where: str, key: str) -> None:
    """An unknown model name fails with the file, the key and the closest registered names."""
    try:
        get_entry(name)
    except UnknownModelError as err:
        raise UnknownModelError(f"{where}: {key}: {err}") from None


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


_VARIANT_TYPES = (("reference", bool, "true or false"),
                  ("model", str, "a registered model name or a .toml network spec, relative to the study file"),
                  ("block", dict, "a table of MK-block settings"), ("head", dict, "a table of head settings"),
                  ("blocks", int, "a block count ≥ 1 (leave the key out for the base's)"))


def _variant(table: Any, i: int, where: str) -> Variant:
    if not isinstance(table, dict):
        raise SpecError.at(where, f"variants[{i}]", f"got {json.dumps(table)}", "a table with label and overrides")
    _check_keys(table, {f.name for f in dataclasses.fields(Variant)}, where, f"variants[{i}].")
    if not isinstance(table.get("label"), str) or not table["label"]:
        raise SpecError.at(where, f"variants[{i}].label", "missing or empty", "a non-empty string naming the cell")
    for key, kind, allowed in _VARIANT_TYPES:
        value = table.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 1))):
            raise SpecError.at(where, f"variants[{i}].{key}", f"got {json.dumps(value, default=str)}", allowed)
    if table.get("model", "").endswith(".toml"):  # a spec file beside the study: stored as a path that works from anywhere
        path = Path(where).parent / table["model"]
        if not path.is_file():
            raise SpecError.at(where, f"variants[{i}].model", f"no network spec file {str(path)!r}",
                               "a .toml network spec, relative to the study file, or a registered model name")
        table = {**table, "model": str(path.resolve())}
    elif table.get("model"):
        _known_model(table["model"], where, f"variants[{i}].model")
    if table.get("match", "") not in ("", *capacity.MATCHES):
        raise SpecError.at(where, f"variants[{i}].match", f"got {json.dumps(table['match'])}", ", ".join(capacity.MATCHES))
    if not isinstance(table.get("profiles", []), list):
        raise SpecError.at(where, f"variants[{i}].profiles", f"got {json.dumps(table['profiles'])}", 'a list of profile names, e.g. ["paper"]')
    return Variant(**{**table, "profiles": tuple(table.get("profiles", ()))})


def variant_network(study: StudySpec, variant: Variant) -> NetworkSpec | str:
    """The network a variant trains at full width: a registered model's name, or the base spec with
    the variant's overrides (validated here, once)."""
    if variant.model.endswith(".toml"):
        base = load_network(variant.model)
        if not (variant.block or variant.blocks or variant.head):
            return base
    elif variant.model:
        entry = get_entry(variant.model)
        if entry.spec is None or not (variant.block or variant.blocks or variant.head):
            return variant.model
        base = entry.spec
    else:
        base = get_entry(study.base).spec
    if base is None:
        return study.base
    doc: dict[str, Any] = {
        "name": f"{study.name}:{variant.label}",
        "block": {**_spec_block_table(base), **variant.block},
        "blocks": variant.blocks or len(base.blocks),
        "head": {**dataclasses.asdict(base.head), **variant.head},
        "num_classes": base.num_classes, "in_channels": base.in_channels, "input_size": base.input_size,
        "defaults": base.defaults,
    }
    network = network_from_mapping(_listed(doc), f"{study.path}: variants[{variant.label}]")
    # a variant that IS a registered network (e.g. every axis's paper configuration) carries its name,
    # so the report can put it beside the paper's numbers
    registered = _registered_digests().get(network.digest())
    return registered or network


@functools.cache
def _registered_digests() -> dict[str, str]:
    from study.models import list_models

    digests: dict[str, str] = {}
    for name in list_models():
        spec = get_entry(name).spec
        if spec is not None:
            digests.setdefault(spec.digest(), name)
    return digests


def _spec_block_table(spec: NetworkSpec) -> dict[str, Any]:
    table = dataclasses.asdict(spec.blocks[0])
    table.pop("nodes")
    table.pop("output")
    return table


def _listed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _listed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_listed(v) for v in value]
    return value


def list_studies(folder: Path | None = None) -> list[str]:
    """Study names (TOML stems) found in the studies folder (`studies_folder`)."""
    return sorted(p.stem for p in (folder or studies_folder()).glob("*.toml"))


def study_path(name: str, folder: Path | None = None) -> Path:
    """The TOML file of a study name (or the path itself when given one)."""
    if name.endswith(".toml"):
        return Path(name)
    folder = folder or studies_folder()
    path = folder / f"{name}.toml"
    if not path.exists():
        close = difflib.get_close_matches(name, list_studies(folder), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise SpecError(f"unknown study {name!r}: {hint}studies are the .toml files in {folder}: {', '.join(list_studies(folder))}")
    return path
