"""The one typed reader of study and network spec files (`study.schema`) and the reference it writes.

docs/study-files.md is generated from the declarations the loaders read, so it must match what the generator
writes now; every key a file may give has a meaning there; and a value of the wrong type or out of its bounds,
in a file or from `--set`, is one line naming the file, the key, the problem and what is allowed (exit code 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import pytest

from study.cli import main
from study.errors import SpecError
from study.profiles import ProfileTable, Rung
from study.schema import Choice, Distinct, NonEmpty, Range, doc_of, file_keys, from_mapping
from study.spec import HeadSpec, MKBlockSpec, NetworkSpec, NodeSpec
from study.studies import (
    REGENERATE,
    Design,
    SearchSpace,
    StudyTable,
    Tuning,
    Variant,
    load_study,
    study_files_markdown,
)
from study.train import TrainConfig
from tests.helpers import tiny_grid_study, tiny_search_study

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "study-files.md"

#: Every table a study or network spec file may hold. The `[profiles.<name>]` table, the file's side of a
#: `Profile`, is `ProfileTable` (with `Rung` for its ladder and `TrainConfig` for its `train`).
TABLES = (StudyTable, Design, Variant, SearchSpace, Tuning, ProfileTable, Rung, TrainConfig, NetworkSpec, MKBlockSpec,
          HeadSpec, NodeSpec)


def test_the_reference_page_is_what_the_schema_writes_now():
    assert PAGE.read_text(encoding="utf-8") == study_files_markdown(), \
        f"docs/study-files.md is stale: regenerate it with `{REGENERATE}`"


@pytest.mark.parametrize("table", TABLES, ids=[t.__name__ for t in TABLES])
def test_every_field_has_a_meaning_on_the_page(table):
    undocumented = [f.name for f in dataclasses.fields(table) if not doc_of(table, f.name)]
    assert not undocumented, f"{table.__name__} fields without a Doc: {undocumented}"
    page = study_files_markdown()
    assert all(f"| `{key}` |" in page for key in file_keys(table))


def test_the_train_table_is_the_training_config_less_its_profile_name():
    assert file_keys(TrainConfig) == [f.name for f in dataclasses.fields(TrainConfig) if f.name != "profile"]


# --------------------------------------------------------------------------- the reader itself


@dataclasses.dataclass(frozen=True)
class _Example:
    """A table declared for the tests of the reader below."""

    rate: Annotated[float, Range(0, 1, low_open=True)] = 0.5
    names: Annotated[tuple[str, ...], NonEmpty, Distinct, Choice(("a", "b", "c"))] = ("a",)
    span: Annotated[tuple[int, int], Range(0)] = (1, 2)
    counts: Annotated[Mapping[str, int], Range(1)] = dataclasses.field(default_factory=dict)
    name: Annotated[str, NonEmpty] = "x"


def test_the_reader_converts_what_it_checks():
    read = from_mapping(_Example, {"rate": 1, "names": ["b", "a"], "span": [2, 2], "counts": {"k": 3}})
    assert read == _Example(rate=1.0, names=("b", "a"), span=(2, 2), counts={"k": 3})
    assert type(read.rate) is float and type(read.span[0]) is int


@pytest.mark.parametrize("table, line", [
    ({"rate": 0}, "f.toml: t.rate: got 0; allowed: a number in (0, 1]"),
    ({"rate": True}, "f.toml: t.rate: got true; allowed: a number in (0, 1]"),
    ({"rate": float("nan")}, "f.toml: t.rate: got NaN; allowed: a number in (0, 1]"),
    ({"names": []}, "f.toml: t.names: got []; allowed: a non-empty list of distinct strings from a, b, c"),
    ({"names": ["a", "a"]}, 'f.toml: t.names: got ["a", "a"]; allowed: a non-empty list of distinct strings from '),
    ({"names": ["a", "z"]}, "f.toml: t.names[1]: \"z\" is not a valid choice; allowed: one of a, b, c"),
    ({"span": [3, 2]}, "f.toml: t.span: got [3, 2]; allowed: a pair [low, high] of integers ≥ 0, low ≤ high"),
    ({"span": [1]}, "f.toml: t.span: got [1]; allowed: a pair [low, high] of integers ≥ 0, low ≤ high"),
    ({"span": [-1, 2]}, "f.toml: t.span[0]: got -1; allowed: an integer ≥ 0"),
    ({"counts": {"k": 0}}, "f.toml: t.counts.k: got 0; allowed: an integer ≥ 1"),
    ({"counts": [1]}, "f.toml: t.counts: got [1]; allowed: a table of integers ≥ 1"),
    ({"name": "  "}, 'f.toml: t.name: got "  "; allowed: a non-empty string'),
    ({"nmae": "x"}, "f.toml: t.nmae: unknown key (did you mean 'name'?); allowed: rate, names, span, counts, name"),
])
def test_a_bad_value_is_one_line_with_file_key_problem_and_allowed(table, line):
    with pytest.raises(SpecError) as err:
        from_mapping(_Example, table, "f.toml", "t.")
    assert str(err.value).startswith(line), str(err.value)


def test_a_missing_key_without_default_is_named():
    with pytest.raises(SpecError, match=r"^f\.toml: variants\[0\]\.label: missing; allowed: a non-empty string$"):
        from_mapping(Variant, {"blocks": 2}, "f.toml", "variants[0].")


def test_an_infinite_bound_is_allowed_only_where_declared():
    assert from_mapping(SearchSpace, {"flops_band": [0, float("inf")]}).flops_band == (0.0, float("inf"))
    with pytest.raises(SpecError, match=r"search\.lr\[1\]: got Infinity; allowed: a number > 0"):
        from_mapping(SearchSpace, {"lr": [0.1, float("inf")]}, "f.toml", "search.")


# --------------------------------------------------------------------------- through the loaders and the CLI

GRID = tiny_grid_study()


def _plan(tmp_path: Path, text: str, *extra: str) -> tuple[int, str]:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return main(["plan", "--only", str(path), "--runs", str(tmp_path / "runs"), "--no-profiling", *extra]), str(path)


@pytest.mark.parametrize("text, extra, line", [
    (GRID.replace("blocks = 1", "blocks = 0", 1), (), "variants[0].blocks: got 0; allowed: a block count ≥ 1"),
    (tiny_search_study("lr = [1, 0.1]"), (), "search.lr: got [1, 0.1]; allowed: a pair [low, high] of numbers > 0, "
                                             "low ≤ high"),
    (GRID + "\n[tuning]\nseeds = true\n", (), "tuning.seeds: got true; allowed: an integer ≥ 1"),
    (GRID.replace("[profiles.quick]\n", '[profiles.quick]\ntrain = { lr = "x" }\n'), (),
     'profiles.quick.train.lr: got "x"; allowed: a number > 0'),
    (GRID, ("--set", "study.order=1.5"), "study.order: got 1.5; allowed: an integer (set by --set study.order=1.5)"),
    (GRID, ("--set", "profiles.quick.train.epochs=0"), "profiles.quick.train.epochs: got 0; allowed: an integer ≥ 1"),
    (GRID, ("--set", "variants.0.profiles=[\"quik\"]"), 'variants[0].profiles[0]: "quik" is not a valid choice; '
                                                        "allowed: a profile name from paper, quick"),
    (GRID, ("--set", "variants.1.block.nodes=3"), "variants[none]: block.nodes: got 3; allowed: a list of tables"),
    (GRID, ("--set", "profiles.quick.rungs=[{}, { steps = 9 }]"), "profiles.quick.rungs[0]: got {}; allowed: a "
                                                                  "non-empty table {steps, epochs, train_subset, width}"),
    (GRID, ("--set", "study.expected_min={ fast = 3 }"), "study.expected_min.fast: unknown profile; allowed: paper, quick"),
])
def test_a_bad_study_value_is_one_line_and_exit_2(tmp_path, capsys, text, extra, line):
    code, path = _plan(tmp_path, text, *extra)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}: {line}"), err


def test_the_train_table_keeps_a_whole_number_as_written(tmp_path):
    path = tmp_path / "ints.toml"
    path.write_text(GRID.replace("[profiles.quick]\n", "[profiles.quick]\ntrain = { lr = 1, weight_decay = 0 }\n"))
    train = load_study(path).profiles["quick"].train
    assert (train.lr, train.weight_decay) == (1, 0) and type(train.lr) is int  # rows stored this text
