"""A small HTML report book: numbered sections with a table of contents, tables, figures, notes.

Everything is rendered by jinja2 with autoescape on, so any string from a spec or results file
(variant names, error messages, dataset sources) reaches the page as text, never as markup.
Figures are embedded as base64 SVG `<img>` data URIs: the page is one self-contained file, and an
SVG inside `<img>` cannot run script even if a label carried some.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd

#: A table cell: its text, or (text, css class) to flag it.
Cell = str | tuple[str, str]


@dataclass
class Table:
    """A display table: formatted cells, optional per-row classes, and the CSV it was written to."""

    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    csv: str | None = None
    row_classes: list[str] = field(default_factory=list)
    collapse_over: int = 15
    numeric: list[bool] = field(default_factory=list)
    kind: str = "table"

    @property
    def collapsed(self) -> bool:
        """Long tables go inside a closed <details> so the page stays scannable."""
        return len(self.rows) > self.collapse_over


@dataclass
class Figure:
    """An embedded SVG figure and the file it was also saved to."""

    svg: bytes
    caption: str = ""
    file: str | None = None
    csv: str | None = None
    alt: str = ""
    kind: str = "figure"

    @property
    def data_uri(self) -> str:
        """The SVG as a data: URI (no external request when opened from file://)."""
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg).decode("ascii")


@dataclass
class Note:
    """A paragraph; `level` "info", "warn", "ok" or "plain" picks the box style."""

    text: str
    level: str = "plain"
    items: list[str] = field(default_factory=list)
    collapse_over: int = 12
    link: str | None = None
    kind: str = "note"


@dataclass
class Facts:
    """A two-column list of labelled facts (the run's provenance)."""

    items: list[tuple[str, str]]
    kind: str = "facts"


@dataclass
class Verdicts:
    """Claims with their verdicts, as coloured badges and evidence lists."""

    claims: list
    with_evidence: bool = True
    kind: str = "verdicts"


@dataclass
class Section:
    """A numbered section of the report, with an anchor for the table of contents."""

    anchor: str
    title: str
    blocks: list = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)

    def add(self, *blocks) -> Section:
        """Append blocks (Table, Figure, Note, Facts, Verdicts) in reading order."""
        self.blocks.extend(blocks)
        return self

    def subsection(self, title: str) -> Section:
        """A titled subsection listed under this section in the table of contents."""
        child = Section(f"{self.anchor}-{len(self.subsections) + 1}", title)
        self.subsections.append(child)
        return child


class ReportBook:
    """An HTML page assembled section by section, in the manner of pycls' Htmlbook."""

    def __init__(self, title: str, subtitle: str = "", footer: list[tuple[str, str]] | None = None):
        self.title = title
        self.subtitle = subtitle
        self.footer = footer or []
        self.summary: list = []
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        """Start a new numbered section."""
        section = Section(f"s{len(self.sections) + 1}", title)
        self.sections.append(section)
        return section

    def render(self, generated: str) -> str:
        """The page as one HTML string."""
        return _env().get_template("study.html.j2").render(book=self, generated=generated, footer=self.footer)

    def to_file(self, path: Path, generated: str) -> Path:
        """Write the page (UTF-8)."""
        path.write_text(self.render(generated), encoding="utf-8")
        return path


def render_index(studies: list[dict], not_run: list[dict], generated: str, *, paper_tables: list | None = None,
                 gpu: list | None = None, footer: list[tuple[str, str]] | None = None) -> str:
    """The summary of a whole run: every study (`summary.summarise`), Tables I and II of the studies that trained
    them (`paper_tables`: (title, blocks) pairs), the GPU reference measurements (`gpu`: blocks), then the studies
    not run (`summary.not_run`)."""
    return _env().get_template("index.html.j2").render(studies=studies, not_run=not_run, generated=generated,
                                                       paper_tables=paper_tables or [], gpu=gpu or [],
                                                       footer=footer or [])


def frame_table(frame: pd.DataFrame, formats: dict, *, caption: str = "", csv: str | None = None,
                row_class=None, collapse_over: int = 15) -> Table:
    """A Table from a DataFrame: `formats` maps header → (column, formatter) or a callable of the row."""
    rows, classes = [], []
    for record in frame.to_dict("records"):
        cells = []
        for spec in formats.values():
            cells.append(spec(record) if callable(spec) else spec[1](record[spec[0]]))
        rows.append(cells)
        classes.append(row_class(record) if row_class else "")
    numeric = [all(_NUMBER.fullmatch(_text(row[i])) for row in rows) for i in range(len(formats))]
    return Table(list(formats), rows, caption, csv, classes, collapse_over, numeric)


#: What a numeric cell looks like once formatted ("1,024,998", "+0.57", "[-0.67, +1.82]", "3.9e-04", "4 / 4").
_NUMBER = re.compile(r"[\d\s.,+\-–\[\]/e×%*]*")


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _env() -> jinja2.Environment:
    # autoescape=True, not select_autoescape: templates end in .j2, which select_autoescape skips.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("study.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
