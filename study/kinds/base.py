"""The interface every study kind implements (`StudyKind`), and the roles a row's columns play in a study.

What is common to every kind is a default here; what a kind decides (its cells, sampler, objective, plan and
report sections) is a method it overrides. This module imports no other part of the kit, so that any module may
ask a kind what it is without importing how it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type names only: the kinds import the runner, never the other way round
    import optuna

    from study.cells import Cell, Context
    from study.plan import StudyPlan
    from study.report.html import ReportBook
    from study.report.load import StudyRun
    from study.report.sections import Outputs
    from study.studies import StudySpec

#: The roles a column of the results table can play in a study's design (recorded in study.json as `roles`):
#: the reference every contrast is taken against, the variant compared, the ladder rung, the degradation level
#: tested, and the replicate (seed) that pairs runs.
ROLES = ("reference", "variant", "rung", "degradation", "replicate")


@dataclasses.dataclass(frozen=True)
class Page:
    """What a study page has computed before a kind adds its sections: the rows behind Tables I/II (`main`), each
    model's colour, and the study's contrasts per axis (`study.report.contrasts`, computed once)."""

    main: Any
    palette: Mapping[str, str]
    contrasts: Mapping[str, Any]


class StudyKind:
    """One kind of study. Subclass it, set `name`, override what differs, and register an instance
    (`study.kinds.registry.register`). Attributes are what other modules may ask; methods are what a kind does."""

    name: str = ""
    #: One line on what the kind does (shown by `study init` and docs).
    description: str = ""
    #: Column of a result row → its role (`ROLES`); study.json records it and the report reads it.
    roles: Mapping[str, str] = MappingProxyType({"is_reference": "reference", "variant": "variant", "seed": "replicate"})
    #: Whether a study of this kind lists `[[variants]]` (a search samples its networks instead).
    needs_variants: bool = True
    #: Whether a study of this kind may have a `[tuning]` stage.
    tunable: bool = False
    #: Whether the report compares each variant with the reference (contrasts on the index and in contrasts.csv).
    contrasts: bool = False
    #: Whether `--seeds auto` may add paired seeds until the contrasts are decided.
    adaptive_seeds: bool = False
    #: Whether a trial reports intermediate values an Optuna pruner may stop.
    prunes: bool = False
    #: Whether its cells are queued before workers draw (a worker then stops when the queue is empty, never asking
    #: the sampler past it); otherwise the sampler proposes every trial.
    queued: bool = False

    def __repr__(self) -> str:
        return f"<study kind {self.name!r}>"

    def roles_of(self, ladder: bool) -> dict[str, str]:
        """The roles of a study's columns, with the rung's where its profile declares a ladder."""
        return {**self.roles, **({"rung": "rung"} if ladder else {})}

    def levels(self, spec: StudySpec) -> tuple[str, ...]:
        """The degradation levels every cell is tested at (the clean one only, unless a kind tests more)."""
        return ("none",)

    # --------------------------------------------------------------- running

    def cells(self, ctx: Context) -> Iterator[Cell]:
        """The cells a run trains, in the order they are queued (none: a kind whose sampler proposes trials)."""
        return iter(())

    def expected_rows(self, ctx: Context) -> int:
        """How many result rows a finished study has."""
        raise NotImplementedError(f"study kind {self.name!r} does not say how many rows a finished study has")

    def missing(self, ctx: Context) -> int:
        """Cells (or trials) still to run, judged from the results table."""
        raise NotImplementedError(f"study kind {self.name!r} does not say what is left to run")

    def make_study(self, ctx: Context, storage: optuna.storages.BaseStorage) -> optuna.Study:
        """The Optuna study (sampler, pruner, directions) its workers share."""
        raise NotImplementedError(f"study kind {self.name!r} has no sampler")

    def objective(self, ctx: Context) -> Callable[[optuna.Trial], Any]:
        """What one trial does."""
        raise NotImplementedError(f"study kind {self.name!r} has no objective")

    def queue(self, ctx: Context, study: optuna.Study, reorder: bool = False) -> None:
        """Put the cells still missing in the Optuna queue before its workers draw (nothing: the sampler draws);
        `reorder`: no worker runs yet, so a resumed queue may be put back in order."""

    def finish(self, ctx: Context, deadline: float) -> None:
        """Work after the workers are done (a search confirms its best candidates at more seeds)."""

    def variant_summaries(self, ctx: Context) -> dict[str, Any]:
        """study.json's `variants`: each variant's network and cost as trained."""
        return {}

    # --------------------------------------------------------------- planning

    def plan(self, ctx: Context, samples: int, profile: bool) -> StudyPlan:
        """`study plan`'s estimate of a run: what is done, what is left, and its time."""
        raise NotImplementedError(f"study kind {self.name!r} has no plan estimate")

    # --------------------------------------------------------------- reporting

    def findings(self, study: StudyRun) -> list[dict[str, str]]:
        """The index's lines for a study without contrasts: {"kind", "css", "verdict", "answer"} each."""
        return []

    def sections(self, book: ReportBook, out: Outputs, study: StudyRun, page: Page) -> None:
        """The kind's own sections of the study page, after Run and Tables I/II, before the claims."""
