"""Cells of a study run, in process and without training: their order, row keys, protocols and k-fold
rotation, the rows a finished study has, and what is missing after some rows are written."""

from __future__ import annotations

import pytest

from study import cells, results
from study.errors import DataError
from study.studies import load_study
from tests.helpers import tiny_grid_study

ROBUST = tiny_grid_study(("paper", "none")).replace(
    'axis = "links"', 'axis = "links"\nkind = "robustness"\ndegradations = ["none", "blur:1.0"]')


@pytest.fixture(autouse=True)
def protocols(monkeypatch):
    """Fashion-MNIST has a train split here, KMNIST has none: no file system or network is asked."""
    asked = []

    def locate(dataset, split):
        asked.append((dataset, split))
        if dataset == "kmnist":
            raise DataError("kmnist train split not found")
        return None

    monkeypatch.setattr(cells, "_PROTOCOLS", {})
    monkeypatch.setattr(cells, "locate", locate)
    return asked


def _context(tmp_path, text: str, seeds=(0, 1), profile: str = "quick", name: str = "tiny") -> cells.Context:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return cells.Context(load_study(path), profile, tmp_path / "runs", seeds=seeds, commit="test")


def test_protocol_is_val_split_with_a_train_split_else_five_fold_and_asked_once(protocols):
    assert cells.resolve_protocol("fashion-mnist") == "val-split"
    assert cells.resolve_protocol("kmnist") == "kfold-test:5"
    assert cells.resolve_protocol("kmnist") == "kfold-test:5"
    assert protocols == [("fashion-mnist", "train"), ("kmnist", "train")]  # remembered per dataset


@pytest.mark.parametrize(("protocol", "seed", "fold"), [
    ("val-split", 7, 0), ("kfold-test:5", 0, 0), ("kfold-test:5", 4, 4), ("kfold-test:5", 7, 2), ("kfold-test:3", 7, 1),
])
def test_k_fold_protocols_rotate_the_test_fold_over_seeds(protocol, seed, fold):
    assert cells.fold_of(protocol, seed) == fold


def test_row_base_holds_every_key_field(tmp_path):
    ctx = _context(tmp_path, tiny_grid_study())
    base = cells.row_base(ctx, "none", False, "kmnist", 7, "blur:1.0")
    assert base == {"study": "tiny", "axis": "links", "variant": "none", "is_reference": False, "dataset": "kmnist",
                    "degradation": "blur:1.0", "protocol": "kfold-test:5", "fold": 2, "seed": 7, "profile": "quick",
                    "scale": "450 steps, full width", "budget_images": 14_400, "scale_width": 1.0,  # no ladder: no rung
                    "equivalence_margin": 3.0, "kind": "grid"}
    assert set(results.KEY) - {"rung"} <= set(base)
    assert cells.row_base(ctx, "paper", True, "fashion-mnist", 1)["degradation"] == "none"


def test_cells_are_seed_major_and_name_their_variant(tmp_path):
    ctx = _context(tmp_path, tiny_grid_study(("paper", "none", "dense")), seeds=(0, 1))
    listed = list(cells.cells(ctx))
    assert [(c.seed, c.variant.label) for c in listed] == [
        (0, "paper"), (0, "none"), (0, "dense"), (1, "paper"), (1, "none"), (1, "dense")]
    first = listed[0]
    assert first.params == {"variant": "paper", "dataset": "fashion-mnist", "seed": 0}
    assert first.variant.reference and first.bases[0]["is_reference"] is True
    assert first.key == results.row_key(first.bases[0])
    assert not listed[1].bases[0]["is_reference"]


def test_a_robustness_cell_has_a_row_per_level_the_clean_one_first(tmp_path):
    ctx = _context(tmp_path, ROBUST, seeds=(3,))
    cell = cells.cell(ctx, "none", "fashion-mnist", 3)
    assert [b["degradation"] for b in cell.bases] == ["none", "blur:1.0"]
    assert {(b["seed"], b["dataset"]) for b in cell.bases} == {(3, "fashion-mnist")}
    assert cell.key == results.row_key(cell.bases[0])
    assert cells.expected_rows(ctx) == 2 * 1 * 1 * 2  # variants × datasets × seeds × levels
    assert cells.expected_rows(_context(tmp_path, tiny_grid_study(), seeds=(0, 1, 2), name="grid")) == 2 * 3
    two = tiny_grid_study(("paper", "none", "dense")).replace('datasets = ["fashion-mnist"]', 'datasets = ["fashion-mnist", "kmnist"]')
    assert cells.expected_rows(_context(tmp_path, two, seeds=(0, 1), name="two")) == 3 * 2 * 2


def _write(ctx: cells.Context, cell: cells.Cell, status: str = "ok", profile: str | None = None) -> None:
    for base in cell.bases:
        results.append_row(ctx.results_path, {**base, "status": status, "profile": profile or base["profile"]})


def test_missing_cells_counts_what_the_table_lacks(tmp_path):
    ctx = _context(tmp_path, tiny_grid_study(), seeds=(0, 1))
    listed = list(cells.cells(ctx))
    assert cells.missing_cells(ctx) == 4
    _write(ctx, listed[0])
    _write(ctx, listed[1], status="failed")  # a failed cell runs again
    _write(ctx, listed[2], profile="paper")  # another profile's row does not finish this profile's cell
    assert cells.missing_cells(ctx) == 3
    for c in listed[1:]:
        _write(ctx, c)
    assert cells.missing_cells(ctx) == 0


def test_a_search_is_missing_its_untrained_trials(tmp_path):
    search = ('[study]\naxis = "search"\nkind = "search"\nbase = "lrnet_paper"\ndatasets = ["fashion-mnist"]\n'
              '[search]\nkernels = [[3]]\nlinks = ["none"]\nblocks = [1, 1]\nwidth_multiplier = [0.1, 0.2]\n'
              '[profiles.quick]\nn_trials = 3\nseeds = [0]\n')
    ctx = _context(tmp_path, search, seeds=(0,), name="search")
    assert cells.expected_rows(ctx) == 3 and cells.missing_cells(ctx) == 3
    for trial in range(2):
        results.append_row(ctx.results_path, {**cells.row_base(ctx, f"t{trial}", False, "fashion-mnist", 0),
                                              "status": "pruned" if trial else "ok"})
    assert cells.missing_cells(ctx) == 1  # pruned trials count: they ran
    for trial in range(2, 6):
        results.append_row(ctx.results_path, {**cells.row_base(ctx, f"t{trial}", False, "fashion-mnist", 0),
                                              "status": "ok"})
    assert cells.missing_cells(ctx) == 0  # never negative


def test_context_reads_its_profile_and_files(tmp_path):
    ctx = _context(tmp_path, tiny_grid_study(profile="seeds = 2\nwidth = 1.0\ntrain = { epochs = 3 }"))
    assert ctx.profile_spec.seeds == 2 and ctx.cfg.epochs == 3
    assert ctx.results_path == results.results_path(tmp_path / "runs", "tiny")
    assert ctx.table.path == ctx.results_path and ctx.levels == ("none",)
    assert [v.label for v in ctx.variants] == ["paper", "none"]
    assert ctx.resolved("none").model.spec.blocks[0].links == "none"


def test_a_tuned_variant_trains_with_its_own_values_and_the_others_with_the_profiles(tmp_path):
    ctx = _context(tmp_path, tiny_grid_study(profile="seeds = 2\nwidth = 1.0\ntrain = { lr = 0.002, epochs = 3 }"))
    ctx.tuned = {"none": {"lr": 0.03, "weight_decay": 1e-4}}
    tuned, untouched = ctx.cfg_for("none"), ctx.cfg_for("paper")
    assert (tuned.lr, tuned.weight_decay, tuned.epochs) == (0.03, 1e-4, 3)  # the tuned values, the profile's rest
    assert untouched == ctx.cfg and untouched.lr == 0.002
    assert ctx.cfg.lr == 0.002  # tuning one variant leaves the profile's config unchanged
