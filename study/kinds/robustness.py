"""The `robustness` kind: every model trained on clean data, then tested at every degradation level of the study
(`degradations`); one row per level, each level compared with clean data on the index."""

from __future__ import annotations

from study import stats
from study.kinds.base import StudyKind
from study.kinds.grid import GridKind
from study.kinds.registry import register
from study.report import contrasts, display, sections, summary, tables
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
        return robustness_findings(study)

    def sections(self, book, out, study, page) -> None:
        sections.curves_section(book, out, study, page.main)
        sections.pareto_section(book, out, study.table, page.palette)
        sections.robustness_section(book, out, study.table, page.palette)


def robustness_findings(study) -> list[dict[str, str]]:
    """Each degradation against clean data per model and dataset, in one line each (paired by seed, Holm across
    the degradations of a model): {"kind", "css", "verdict", "answer"}."""
    margin = contrasts.equivalence_margin(study.provenance)
    rows = tables.ok_rows(study.table).assign(degradation=lambda r: r["degradation"].fillna(tables.CLEAN))
    seeds = tables.per_seed(rows, ["model", "dataset", "degradation"])
    findings = []
    for (model, dataset), group in seeds.groupby(["model", "dataset"], sort=False):
        levels = tables.degradation_order(group["degradation"])
        if tables.CLEAN not in levels or len(levels) < 2:
            continue
        groups = {d: (group.loc[group["degradation"] == d, "value"].to_numpy(),
                      group.loc[group["degradation"] == d, "seed"].to_numpy()) for d in levels}
        for c in stats.compare_family(groups, reference=tables.CLEAN, margin=margin):
            record = {**c.as_dict(), "variant": f"{model} under {c.variant}", "reference": "clean data",
                      "reference_phrase": "the same model on clean images"}
            findings.append({"kind": tables.verdict_kind(c.verdict), "verdict": c.verdict,
                             "css": display.verdict_class(c.verdict, c.diff, c.mde),
                             "answer": summary.answer(record, str(dataset))})
    return findings


ROBUSTNESS = register(RobustnessKind())
