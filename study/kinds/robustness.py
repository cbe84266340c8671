"""The `robustness` kind: every model trained on clean data, then tested at every degradation level of the study
(`degradations`); one row per level, each level compared with clean data on the index."""

from __future__ import annotations

from study.kinds.base import StudyKind
from study.kinds.grid import GridKind
from study.kinds.registry import register
from study.report import sections, summary
from study.studies import StudySpec


class RobustnessKind(GridKind):
    name = "robustness"
    description = "every model trained clean, then tested at every degradation level"
    roles = {**StudyKind.roles, "degradation": "degradation"}
    tunable = False
    contrasts = False
    adaptive_seeds = False

    def levels(self, spec: StudySpec) -> tuple[str, ...]:
        return spec.degradations

    def findings(self, study):
        return summary.robustness_findings(study)

    def sections(self, book, out, study, page) -> None:
        sections.curves_section(book, out, study, page.main)
        sections.pareto_section(book, out, study.table, page.palette)
        sections.robustness_section(book, out, study.table, page.palette)


ROBUSTNESS = register(RobustnessKind())
