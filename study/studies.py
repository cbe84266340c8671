"""Study specs: the TOML files of `ablations/` that say what a study varies, on which data, with
which seeds and budgets, loaded into frozen dataclasses with one-line errors.

A study's `kind` names a registered study kind (`study.kinds`: grid, robustness, search, or one of your own named
in $STUDY_KINDS); the kind decides whether a study needs variants and may have a tuning stage, and how it runs and
reports.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from study import capacity
from study.blocks import network_complexity
from study.data import list_datasets, parse_degradation
from study.errors import DataError, SpecError, UnknownModelError
from study.kinds.registry import PLUGINS_ENV, get_kind, kind_names
from study.models import ResolvedModel, get_entry, list_models, resolve_model
from study.overrides import Override, apply_overrides
from study.profiles import PROFILES, Profile, ProfileTable, Rung, override
from study.schema import (
    Choice,
    Distinct,
    Doc,
    NonEmpty,
    Noun,
    Range,
    coerce,
    file_keys,
    from_mapping,
    table_markdown,
    toml_value,
    unknown_key,
)
from study.spec import (
    MAX_BLOCKS,
    HeadSpec,
    Links,
    MKBlockSpec,
    NetworkSpec,
    NodeSpec,
    load_network,
    network_from_mapping,
    read_toml,
    validate_network,
)
from study.train import TrainConfig

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

    label: Annotated[str, NonEmpty, Doc("the cell's name in rows, tables and figures; unique in the study")]
    reference: Annotated[bool, Doc("the variant every other one of the axis is compared with (at most one)")] = False
    model: Annotated[str, Noun("a registered model name or a .toml network spec"), Doc(
        "a registered model, or a .toml network spec relative to the study file; overrides below apply to an MK "
        "network", default="the study's `base`")] = ""
    block: Annotated[Mapping[str, Any], Doc(
        "MK-block settings laid over every block of the network (the keys of a network spec's `block`)")] = \
        dataclasses.field(default_factory=dict)
    blocks: Annotated[int, Range(1), Noun("a block count"), Doc("the number of MK blocks", default="the base's")] = 0
    head: Annotated[Mapping[str, Any], Doc("head settings laid over the network's (the keys of a network spec's "
                                           "`head`)")] = dataclasses.field(default_factory=dict)
    profiles: Annotated[tuple[str, ...], Choice(PROFILES), Noun("a profile name"), Doc(
        "run only under these profiles", default="every profile")] = ()
    match: Annotated[Literal["", "flops", "params"], Doc(
        "`flops` or `params`: widths scaled until the cost is the reference's (±5 %); \"\" = as written")] = ""


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

    kernels: Annotated[tuple[Annotated[tuple[int, ...], NonEmpty], ...], NonEmpty, Doc(
        "the kernel sets a trial chooses from (a block's `kernels`)")] = ((3,), (3, 5), (3, 5, 7), (1, 3, 5), (3, 5, 7, 9))
    links: Annotated[tuple[Links, ...], NonEmpty, Doc("the wirings a trial chooses from (a block's `links`)")] = \
        ("paper", "none", "residual", "dense")
    blocks: Annotated[tuple[int, int], Range(1, MAX_BLOCKS), Doc("the range of the block count")] = (1, 3)
    width_multiplier: Annotated[tuple[float, float], Range(0, low_open=True), Doc(
        "the range of the blocks' width multiplier")] = (0.25, 1.5)
    dropout: Annotated[tuple[float, float], Range(0, 1, high_open=True), Doc("the range of the head's dropout")] = \
        (0.0, 0.5)
    lr: Annotated[tuple[float, float], Range(0, low_open=True), Doc(
        "the range of the learning rate (sampled on a log scale)")] = (3e-4, 1e-2)
    flops_band: Annotated[tuple[float, float], Range(0, math.inf), Doc(
        "multiply-adds per image a sampled network must have: outside the band a trial is pruned before training")] = \
        (0.0, float("inf"))
    params_band: Annotated[tuple[float, float], Range(0, math.inf), Doc(
        "parameters a sampled network must have: outside the band a trial is pruned before training")] = \
        (0.0, float("inf"))
    objectives: Annotated[tuple[Literal["accuracy", "flops"], ...], NonEmpty, Distinct, Doc(
        "what the search optimises: validation accuracy, or accuracy and FLOPs (a Pareto front)")] = ("accuracy",)
    pruner: Annotated[Literal["median", "hyperband", "none"], Doc(
        "the Optuna pruner that stops trained trials early")] = "median"


@dataclass(frozen=True)
class Tuning:
    """A grid study's per-model tuning stage (`[tuning]`): before the grid, every variant gets the same
    budget, an Optuna study over this grid of learning rate × weight decay at the profile's training
    budget, selected on validation accuracy (the test split is never touched); the grid then trains
    each variant with its chosen values (`study.tuning`)."""

    lr: Annotated[tuple[float, ...], Range(0, 1, low_open=True, high_open=True), NonEmpty, Distinct, Doc(
        "the learning rates of the grid")] = (5e-4, 1.5e-3, 4.5e-3)
    weight_decay: Annotated[tuple[float, ...], Range(0, 1, high_open=True), NonEmpty, Distinct, Doc(
        "the weight decays of the grid")] = (0.0,)
    seed: Annotated[int, Range(0), Doc("the tuning runs' first seed: apart from the grid's seeds 0, 1, …")] = 1000
    dataset: Annotated[str, Doc("the dataset the tuning runs train and validate on (one of the study's)",
                                default="the profile's first dataset")] = ""
    seeds: Annotated[int, Range(1), Doc(
        "runs per grid point (seeds seed, seed + 1, …): a point is chosen on its mean validation accuracy (2 or more, "
        "or say in the file why one)")] = 2

    @property
    def points(self) -> list[dict[str, float]]:
        """The grid, lr-major."""
        return [{"lr": lr, "weight_decay": wd} for lr in self.lr for wd in self.weight_decay]

    @property
    def runs(self) -> list[dict[str, float]]:
        """Every trial of one variant's tuning study: each point at each tuning seed, seed-major."""
        return [{**point, "seed": self.seed + i} for i in range(self.seeds) for point in self.points]


@dataclass(frozen=True)
class Design:
    """`design = { sd = { "<variant>" = 0.97, … }, source = "…", mde_target = 3.0 }`: the SD of each contrast's paired
    differences the design was sized on, where it was measured, and the MDE it aimed at; the report checks the run
    against it."""

    sd: Annotated[Mapping[str, float], Range(0, low_open=True), Doc(
        "per variant label: the SD of its paired differences from the reference the design assumed, in points")] = \
        dataclasses.field(default_factory=dict)
    source: Annotated[str, Doc("where the planned SDs were measured, e.g. a docs/ page (required with `sd`)")] = ""
    mde_target: Annotated[float, Range(0), Doc("the minimum detectable difference the design aimed at, in points")] = 0.0


@dataclass(frozen=True)
class StudyTable:
    """A study file's `[study]` table as written; `load_study` resolves it into the `StudySpec`."""

    name: Annotated[str, NonEmpty, Doc("the study's name: its runs/<name>/ folder and its report page",
                                       default="the file's name")] = ""
    axis: Annotated[str, NonEmpty, Doc("the question the study's variants answer: rows are grouped and compared by "
                                       "axis (see above)", default="the study's name")] = ""
    kind: Annotated[str, Doc("a registered study kind: `grid`, `robustness`, `search` (see above), or one of your own "
                             "whose module $STUDY_KINDS names (docs/architecture.md, \"Extending the kit\")")] = "grid"
    description: Annotated[str, Doc("one line saying what the study asks, shown with its results")] = ""
    base: Annotated[str, Noun("a registered model name"), Doc(
        "the MK network a variant without `model` overrides")] = "lrnet_paper"
    datasets: Annotated[tuple[str, ...], NonEmpty, Choice(list_datasets), Noun("a dataset name"), Doc(
        "the datasets every variant trains on")] = ("fashion-mnist",)
    degradations: Annotated[tuple[str, ...], NonEmpty, Noun("a degradation text"), Doc(
        "the test-time degradation levels of a robustness study, e.g. [\"none\", \"blur:1.0\", \"noise:0.2\"]")] = \
        ("none",)
    default_run: Annotated[bool, Doc("part of a plain `study run` (`nox -s ablations`)")] = True
    order: Annotated[int, Doc("the study's position in a multi-study run; lower runs first")] = 50
    equivalence_margin: Annotated[float, Range(0, 100, low_open=True), Doc(
        "±accuracy points within which a contrast counts as equivalent")] = 3.0
    equivalence_margin_relative: Annotated[float, Range(0, 1, low_open=True), Doc(
        "instead of `equivalence_margin`: the margin as a share of the reference's error rate (0.15 of a 19 % error "
        "rate is ±2.9 points)", default="none: the margin is in points")] = 0.0
    margin_reason: Annotated[str, NonEmpty, Doc("why the margin is what it is, shown beside every equivalence "
                                                "verdict", default="none")] = ""
    expected_min: Annotated[Mapping[str, float], Range(0, low_open=True), Doc(
        "the minutes a run of the study takes per profile, as measured and stated, e.g. { quick = 60 }")] = \
        dataclasses.field(default_factory=dict)
    design: Annotated[Design, Doc("the spread the design was sized on (keys below)", default="none")] = Design()


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


#: The tables of a study file.
_TABLES = ("study", "variants", "search", "profiles", "tuning")


def _profiles(tables: Any, where: str) -> dict[str, Profile]:
    """Every profile, with the study file's `[profiles.<name>]` tables laid over; an unknown name is an error."""
    if not isinstance(tables, dict):
        raise SpecError.at(where, "profiles", f"got {json.dumps(tables, default=str)}", "tables [profiles.<name>]")
    for name in tables:
        if name not in PROFILES:
            raise SpecError.at(where, f"profiles.{name}", "unknown profile", ", ".join(PROFILES))
    return {name: override(profile, tables.get(name, {}), where) for name, profile in PROFILES.items()}


def load_study(path: str | Path, overrides: Sequence[Override] = ()) -> StudySpec:
    """Load and validate a study TOML file, with `--set` overrides (`study.overrides`) laid over it first; any problem
    is one SpecError line naming the file and key, and, when an override caused it, the `--set` that did (the loader
    checks every key's type, so a wrongly typed value is its one-line error like any other)."""
    doc = read_study(path)
    try:
        return study_from_document(apply_overrides(doc, overrides), path)
    except (SpecError, UnknownModelError) as err:
        if not overrides:
            raise
        culprit = next((o for o in overrides if _error_alone(doc, path, o) == str(err)), None)
        named = culprit.text if culprit else " ".join(o.text for o in overrides)
        raise type(err)(f"{err} (set by --set {named})") from None


def _error_alone(doc: dict[str, Any], path: str | Path, override: Override) -> str:
    """The loader's error with this one override ("" when it loads): the same error as all of them together names
    it as the cause."""
    try:
        study_from_document(apply_overrides(doc, (override,)), path)
    except (SpecError, UnknownModelError) as err:
        return str(err)
    return ""


def read_study(path: str | Path) -> dict[str, Any]:
    """A study file's TOML document, unchecked; a missing or unparsable file is one SpecError line."""
    return read_toml(Path(path), f"a study file, e.g. one of {', '.join(list_studies())}")


def study_from_document(doc: Mapping[str, Any], path: str | Path) -> StudySpec:
    """The study a TOML document of the file `path` describes, validated; any problem is one SpecError line.

    Every table is read by the schema reader (`study.schema`) against its declaration (`StudyTable`, `Variant`,
    `SearchSpace`, `Tuning`, `ProfileTable`); what no type can say is checked after it, here."""
    path = Path(path)
    where = str(path)
    for key in doc:
        if key not in _TABLES:
            raise unknown_key(where, key, _TABLES)
    table = _table(doc.get("study", {}), where, "study")
    kind = table.get("kind", "grid")
    if kind not in kind_names():
        raise SpecError.at(where, "study.kind", f"{json.dumps(kind, default=str)} is not a study kind",
                           f"{', '.join(kind_names())} (a kind of your own: name its module in ${PLUGINS_ENV})")
    study = from_mapping(StudyTable, table, where, "study.")
    name = study.name or path.stem
    _known_model(study.base, where, "study.base")
    _check_degradations(study.degradations, where)
    variants = _variants(doc.get("variants", []), kind, where)
    search = from_mapping(SearchSpace, doc.get("search", {}), where, "search.")
    profiles = _profiles(doc.get("profiles", {}), where)
    for profile in profiles.values():
        extra = [d for d in profile.datasets if d not in study.datasets]
        if extra:
            raise SpecError.at(where, f"profiles.{profile.name}.datasets", f"{extra[0]!r} is not one of the study's datasets",
                               ", ".join(study.datasets))
    for key in study.expected_min:
        if key not in profiles:
            raise SpecError.at(where, f"study.expected_min.{key}", "unknown profile", ", ".join(profiles))
    if "equivalence_margin_relative" in table and "equivalence_margin" in table:
        raise SpecError.at(where, "study.equivalence_margin_relative", "given with equivalence_margin",
                           "one of the two: points, or a share of the reference's error rate")
    spec = StudySpec(name=name, axis=study.axis or name, kind=kind, description=study.description,
                     base=study.base, datasets=study.datasets, variants=variants, degradations=study.degradations,
                     search=search, profiles=profiles, path=where, default_run=study.default_run,
                     equivalence_margin=study.equivalence_margin, run_order=study.order,
                     tuning=_tuning(doc["tuning"], kind, study.datasets, where) if "tuning" in doc else None,
                     expected_min=study.expected_min, margin_reason=study.margin_reason,
                     margin_relative=study.equivalence_margin_relative,
                     design=_design(study.design, [v.label for v in variants], where) if table.get("design") else {})
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


def _check_degradations(degradations: tuple[str, ...], where: str) -> None:
    """Every degradation text parses (`study.data.parse_degradation`)."""
    for i, text in enumerate(degradations):
        try:
            parse_degradation(text)
        except DataError as err:
            raise SpecError.at(where, f"study.degradations[{i}]", str(err), "see `study.data.DEGRADATIONS`") from None


def _variants(tables: Any, kind: str, where: str) -> tuple[Variant, ...]:
    """The `[[variants]]` tables, read and each model resolved; labels unique, at most one reference."""
    variants = tuple(_variant_model(v, i, where) for i, v in enumerate(coerce(tables, tuple[Variant, ...], "variants", where)))
    if get_kind(kind).needs_variants and not variants:
        raise SpecError.at(where, "variants", "no variants", "one or more [[variants]] tables")
    labels = [v.label for v in variants]
    dup = next((lab for lab in labels if labels.count(lab) > 1), None)
    if dup:
        raise SpecError.at(where, "variants", f"label {dup!r} is used twice", "unique labels")
    if sum(v.reference for v in variants) > 1:
        raise SpecError.at(where, "variants", "more than one reference", "at most one variant with reference = true")
    return variants


def _variant_model(variant: Variant, i: int, where: str) -> Variant:
    """A variant whose model exists: a registered name, or a .toml spec beside the study file, stored as a path that
    works from anywhere."""
    if variant.model.endswith(".toml"):
        path = Path(where).parent / variant.model
        if not path.is_file():
            raise SpecError.at(where, f"variants[{i}].model", f"no network spec file {str(path)!r}",
                               "a .toml network spec, relative to the study file, or a registered model name")
        return dataclasses.replace(variant, model=str(path.resolve()))
    if variant.model:
        _known_model(variant.model, where, f"variants[{i}].model")
    return variant


def _tuning(table: Any, kind: str, datasets: tuple[str, ...], where: str) -> Tuning:
    """The `[tuning]` table of a grid study; its dataset one of the study's."""
    if not get_kind(kind).tunable:
        tunable = [name for name in kind_names() if get_kind(name).tunable]
        raise SpecError.at(where, "tuning", f"a {kind} study has no tuning stage",
                           f"[tuning] in a study of kind {' or '.join(tunable)}")
    tuning = from_mapping(Tuning, table, where, "tuning.")
    if "dataset" in table and tuning.dataset not in datasets:
        raise SpecError.at(where, "tuning.dataset", f"got {json.dumps(tuning.dataset)}", ", ".join(datasets))
    return tuning


def _design(design: Design, labels: list[str], where: str) -> dict[str, Any]:
    """The design as the report reads it: SDs of the study's variants only, and where they were measured."""
    for label in design.sd:
        if label not in labels:
            raise SpecError.at(where, f"study.design.sd.{label}", "not a variant of the study", ", ".join(labels))
    if design.sd and not design.source.strip():
        raise SpecError.at(where, "study.design.source", "missing", "where the planned SDs were measured, e.g. a docs/ page")
    return dataclasses.asdict(design)


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


# --------------------------------------------------------------------------- the reference page

#: The command that writes docs/study-files.md (tests/test_schema.py fails when the page is stale).
REGENERATE = "python -m study.studies > docs/study-files.md"

_INTRO = """\
A **study file** (`ablations/<name>.toml`) says what a study varies, on which data, with which seeds and budgets; a
**network spec file** (`ablations/specs/<name>.toml`) describes one MK network. Both are read by one typed reader
(`study.schema`) against the declarations this page is generated from: an unknown key, a value of the wrong type or
out of its bounds is one line naming the file, the key, the problem and what is allowed (exit code 2), and so is a
rule that ties keys together (unique labels, one reference, a profile's datasets among the study's, …). `--set
KEY=VALUE` changes a key from the command line, checked the same way.

## The words

- **axis**: the question a study's variants answer (`kernels`, `links`, …). Every row records its axis, and the
  report compares each variant of an axis with the axis's reference: a paired contrast, variant − reference, seed by
  seed.
- **kind**: how a study runs its cells.
  - `grid`: every variant × dataset × seed (Optuna's GridSampler), after an optional `[tuning]` stage;
  - `robustness`: every variant trained clean, then tested at every level of `study.degradations`;
  - `search`: an Optuna search over the MK-block space of `[search]` (one objective or a Pareto front); it needs no
    variants;
  - a kind of your own: one module registering a `study.kinds.base.StudyKind`, named in `$STUDY_KINDS`
    (docs/architecture.md, "Extending the kit").
- **reference**: the variant with `reference = true` (at most one per study), usually the paper's configuration:
  every other variant is compared with it, and `match = "flops"` / `"params"` scales a variant's widths to its cost.
- **blocks**: in a variant, the number of MK blocks of its network, a count ≥ 1; left out, the base network's count.
  In a network spec file, `blocks` is a count (1 to 5, every block the `block` table) or a list of tables, each laid
  over `block` at its position.
- **profile**: how much work a run does (training budget, seeds, proxy width; `study.profiles`). A study runs under
  one of the registered profiles (`paper`, `quick`); its `[profiles.<name>]` table changes that profile for this
  study, and every change is listed wherever the profile is described.
"""


def _per_profile(value_of: Any) -> str:
    """A default that depends on the profile: each registered profile's value."""
    return "; ".join(f"{name}: `{toml_value(value_of(profile))}`" for name, profile in PROFILES.items())


def _profile_default(key: str) -> str:
    if key in ("seeds", "n_trials", "workers", "cost_batch", "width", "guard_min", "keep_weights"):
        return _per_profile(lambda p: getattr(p, key))
    return ""


def _train_default(key: str) -> str:
    default = getattr(TrainConfig(), key)
    differing = [f"{name} `{toml_value(getattr(p.train, key))}`" for name, p in PROFILES.items()
                 if getattr(p.train, key) != default]
    return f"`{toml_value(default)}`" + (f" ({', '.join(differing)})" if differing else "")


def study_files_markdown() -> str:
    """docs/study-files.md: every key of a study file and of a network spec file with its type, default and meaning,
    written from the declarations the loaders read (`study.schema`)."""
    block_keys = ", ".join(file_keys(MKBlockSpec))
    network_rows = [
        ("block", f"a table {{{block_keys}}}", "the paper's block", "MK-block settings of every block (keys below)"),
        ("blocks", f"a block count in [1, {MAX_BLOCKS}], or a list of 1 to {MAX_BLOCKS} tables {{{block_keys}}}", "`3`",
         "the MK blocks: a count repeats `block`; a list gives each block's settings, laid over `block`")]
    sections = [
        "# Study files and network spec files\n",
        f"<!-- Generated by `{REGENERATE}` from the declarations in study/studies.py, study/profiles.py,\n"
        "study/train.py and study/spec.py: edit those, not this page. -->\n",
        _INTRO,
        "## `[study]`\n\nWhat the study is and how its results are judged.\n",
        table_markdown(StudyTable),
        "### `design`\n\n`design = { sd = { \"<variant>\" = 0.97 }, source = \"…\", mde_target = 3.0 }`: the spread the "
        "design was sized on, where it was measured, and the MDE it aimed at; the report checks the run against it.\n",
        table_markdown(Design),
        "## `[[variants]]`\n\nOne table per cell of the axis (a grid or robustness study needs at least one).\n",
        table_markdown(Variant),
        "## `[search]`\n\nA search study's space: what a trial samples, and the bands that reject a network before "
        "training.\n",
        table_markdown(SearchSpace),
        "## `[tuning]`\n\nA grid study's tuning stage: before the grid, every variant gets the same budget, an Optuna "
        "study over this grid of learning rate × weight decay at the profile's training budget, selected on validation "
        "accuracy (the test split is never touched); the grid then trains each variant with its chosen values.\n",
        table_markdown(Tuning),
        "## `[profiles.<name>]`\n\n`<name>` is a registered profile (" + ", ".join(f"`{p}`" for p in PROFILES)
        + "). A key left out keeps the profile's value.\n",
        table_markdown(ProfileTable, defaults=_profile_default),
        "### `train`\n\nThe training config (`study.train.TrainConfig`); each key given replaces the profile's value. "
        "The default column gives `TrainConfig`'s default and, in brackets, the registered profiles that differ.\n",
        table_markdown(TrainConfig, defaults=_train_default),
        "### `rungs`\n\n" + " ".join(line.strip() for line in Rung.__doc__.split("\n")) + " At least two rungs, "
        "distinct and smallest first.\n",
        table_markdown(Rung),
        "## Network spec files\n\nThe top-level keys of a network spec file (`ablations/specs/`; a variant's `block` "
        "and `head` use the keys of the tables below).\n",
        table_markdown(NetworkSpec, skip=("blocks",), rows=network_rows),
        "### `block` and each table of `blocks`\n\n" + " ".join(line.strip() for line in MKBlockSpec.__doc__.split("\n"))
        + "\n",
        table_markdown(MKBlockSpec),
        "### `head`\n\n" + " ".join(line.strip() for line in HeadSpec.__doc__.split("\n")) + "\n",
        table_markdown(HeadSpec),
        "### `nodes`\n\nAn explicit block graph: one table per named tensor, in order; a node reads `x` (the block's "
        "input) or nodes above it, and `output` names the tensors the block's 1×1 convolution merges.\n",
        table_markdown(NodeSpec),
    ]
    return "\n".join(sections)


if __name__ == "__main__":
    print(study_files_markdown(), end="")
