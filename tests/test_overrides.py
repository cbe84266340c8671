"""`--set KEY=VALUE` overrides: parsing, laying over the study table, one-line errors naming the key, provenance."""

from __future__ import annotations

import json

import pytest

from study import overrides
from study.cli import main
from study.errors import EXIT_INCOMPLETE, SpecError
from study.studies import load_study, study_path
from tests.helpers import tiny_grid_study, write_tiny_dataset

TINY = tiny_grid_study()


def test_values_parse_as_toml_and_bare_words_as_strings():
    parsed = overrides.parse_overrides(["profiles.quick.seeds=10", "variants.0.block.kernels=[3,5]",
                                        "variants[1].block.links=dense", 'study.description="two words"',
                                        "profiles.quick.width=0.5", "study.default_run=false"])
    assert [o.value for o in parsed] == [10, [3, 5], "dense", "two words", 0.5, False]
    assert parsed[1].path == ("variants", 0, "block", "kernels")
    assert parsed[2].path == ("variants", 1, "block", "links")


def test_overrides_lay_over_a_copy_and_create_missing_tables():
    doc = {"study": {"name": "x"}, "variants": [{"label": "a", "block": {"kernels": [3, 5, 7]}}]}
    out = overrides.apply_overrides(doc, overrides.parse_overrides(
        ["variants.0.block.kernels=[3]", "profiles.quick.train.lr=0.01", "variants.0.block.kernels=[5]"]))
    assert out["variants"][0]["block"]["kernels"] == [5]  # the later --set of a key wins
    assert out["profiles"] == {"quick": {"train": {"lr": 0.01}}}
    assert doc["variants"][0]["block"]["kernels"] == [3, 5, 7]  # the file's table is untouched


@pytest.mark.parametrize("text, fragment", [
    ("seeds", "expected KEY=VALUE"),
    ("profiles.quick.seeds=", "no value"),
    ("a..b=1", "malformed part"),
    ("0.label=x", "starts with a list index"),
    ("variants.x=[3 5]", "is not a TOML value"),
])
def test_malformed_overrides_are_one_line(text, fragment):
    with pytest.raises(SpecError) as err:
        overrides.parse_override(text)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, fragment", [
    ("profiles.quick.seedz=3", "profiles.quick.seedz: unknown key"),  # bad key: the loader's own message
    ("profiles.quick.seeds=ten", 'profiles.quick.seeds: got "ten"; allowed: an integer ≥ 1'),  # bad type
    ("variants.0.blocc.kernels=[3]", "variants[0].blocc: unknown key"),
    ('variants.0.block.kernels=[3,"a"]', 'block.kernels[1]: got "a"'),
    ("variants.7.label=x", "variants has 4 entries, so index 7 does not exist"),
    ("study.datasets=5", "study.datasets: got 5; allowed: a non-empty list of dataset names from "),
    ("study.axis.name=x", "study.axis is str 'links', not a table"),
])
def test_a_bad_override_is_one_line_naming_its_key(text, fragment, capsys):
    assert main(["plan", "--only", "links", "--no-profiling", "--set", "profiles.quick.seeds=1", "--set", text]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert fragment in err and f"--set {text}" in err  # names the key and the --set that caused it


def test_an_override_changes_the_study_as_if_written_in_the_file():
    spec = load_study(study_path("links"), overrides.parse_overrides(
        ["profiles.quick.seeds=7", "variants.1.block.kernels=[3,5]", 'variants.1.label="none {3,5}"']))
    assert spec.profiles["quick"].seeds == 7 and "seeds=7" in spec.profiles["quick"].describe()
    assert spec.variants[1].label == "none {3,5}"
    assert spec.resolved["quick"]["none {3,5}"].model.spec.blocks[0].kernels == (3, 5)


def test_run_records_the_overrides_in_study_json(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    path = tmp_path / "tinyset.toml"
    path.write_text(TINY)
    runs = tmp_path / "runs"
    # a budget that is over before the first trial: nothing trains, and the run says cells are missing
    code = main(["run", "--only", str(path), "--runs", str(runs), "--no-report", "--budget-min", "0.00001",
                 "--set", "profiles.quick.seeds=3", "--set", "variants.1.block.links=dense"])
    assert code == EXIT_INCOMPLETE
    info = json.loads((runs / "tinyset" / "study.json").read_text())
    assert info["cli_overrides"] == ["profiles.quick.seeds=3", "variants.1.block.links=dense"]
    assert info["seeds"] == [0, 1, 2] and info["cells_total"] == 6
    assert not (runs / "tinyset" / "results.jsonl").exists()


def test_a_set_that_changes_a_finished_variants_network_makes_its_cell_stale(tmp_path, monkeypatch, capsys):
    from study import cells, results

    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    path = tmp_path / "tinychanged.toml"
    path.write_text(TINY)
    runs = tmp_path / "runs"
    spec = load_study(path, ())
    row = {"study": "tinychanged", "axis": "links", "variant": "none", "dataset": "fashion-mnist", "degradation": "none",
           "protocol": cells.resolve_protocol("fashion-mnist"), "fold": 0, "seed": 0, "profile": "quick",
           "status": "ok", "wall_s": 5.0, "spec_hash": spec.resolved["quick"]["none"].model.digest}
    results.append_row(results.results_path(runs, "tinychanged"), row)
    base = ["--only", str(path), "--runs", str(runs)]
    dense = ["--set", "variants.1.block.links=dense"]
    assert main(["plan", *base, "--no-profiling", *dense]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("  ! none: 1 stale cell: its rows trained another network")  # listed first
    assert main(["plan", *base, "--no-profiling", "--json", *dense]) == 0
    (planned,) = json.loads(capsys.readouterr().out)["studies"]
    assert planned["stale"] == {"none": 1} and planned["missing"] == 4
    assert main(["plan", *base, "--no-profiling", "--json"]) == 0  # without the --set the row is current again
    (planned,) = json.loads(capsys.readouterr().out)["studies"]
    assert planned["stale"] == {} and planned["missing"] == 3
