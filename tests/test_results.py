"""The results table and its row type: every writer's row fits `results.SCHEMA`, the table claims a cell once,
imports rows it lacks once, and reuses only an identical run."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from study import results


def ok_row(**changes) -> dict:
    """A finished row with every required column, as the objectives write it."""
    text = {c.name: "x" for c in results.SCHEMA if c.required and c.types == (str,)}
    row = {**text, "is_reference": False, "proxy": True, "fold": 0, "seed": 0, "epochs": 1, "best_epoch": 1,
           "params": 10, "flops": 20, "raw_params": 10, "raw_flops": 20, "val_accuracy": 0.5, "val_loss": 1.0,
           "test_accuracy": 0.5, "test_loss": 1.0, "train_img_per_s": 1.0, "infer_img_per_s": 1.0, "peak_mem_mb": 1.0,
           "wall_s": 1.0, "width_multiplier": 0.25, "status": "ok", "study": "s", "variant": "v", "profile": "quick"}
    return {**row, **changes}


def test_a_complete_row_passes_and_each_kind_of_break_is_named():
    results.check_row(ok_row())
    with pytest.raises(ValueError, match="lacks columns flops"):
        results.check_row({k: v for k, v in ok_row().items() if k != "flops"})
    with pytest.raises(ValueError, match="columns outside results.SCHEMA: budget_s"):
        results.check_row(ok_row(budget_s=60))
    with pytest.raises(ValueError, match="seed = '3' is not int"):
        results.check_row(ok_row(seed="3"))
    with pytest.raises(ValueError, match="proxy = 1 is not bool"):
        results.check_row(ok_row(proxy=1))
    with pytest.raises(ValueError, match="params = True is not int"):
        results.check_row(ok_row(params=True))
    results.check_row({"study": "s", "variant": "v", "status": "pruned", "val_accuracy": None})  # unfinished rows may be partial


def test_claim_and_write_writes_a_cell_once_and_import_adds_only_missing_rows(tmp_path):
    table = results.ResultsTable(tmp_path / "s" / "results.jsonl")
    first, twin = ok_row(seed=0), ok_row(seed=0, val_accuracy=0.9)
    assert table.claim_and_write([first]) is True
    assert table.claim_and_write([twin]) is False  # the same key: a second worker's copy is not written
    assert table.claim_and_write([ok_row(seed=1)], taken_elsewhere=lambda key: True) is False
    assert [r["val_accuracy"] for r in table.rows()] == [0.5]
    assert table.import_rows([first, ok_row(seed=2), ok_row(seed=2)]) == 1
    assert sorted(r["seed"] for r in table.rows()) == [0, 2]
    with pytest.raises(ValueError, match="lacks columns"):
        table.write({"study": "s", "variant": "v", "status": "ok"})


def test_reuse_finds_only_an_identical_run_of_a_sibling_study(tmp_path):
    config = json.dumps({"lr": 0.001})
    sibling = results.ResultsTable(tmp_path / "kernels" / "results.jsonl")
    sibling.write(ok_row(study="kernels", spec_hash="abc", config=config, dataset="d", degradation="none",
                         protocol="val-split", history_path="history/h.csv"))
    table = results.ResultsTable(tmp_path / "links" / "results.jsonl")
    base = {"study": "links", "variant": "paper", "dataset": "d", "degradation": "none", "protocol": "val-split",
            "fold": 0, "seed": 0, "profile": "quick"}
    row = table.reusable("abc", config, base)
    assert row["study"] == "links" and row["reused_from"] == "kernels"
    assert row["history_path"] == str((tmp_path / "kernels" / "history" / "h.csv").resolve())
    results.check_row(row)
    assert table.reusable("abd", config, base) is None  # another network
    assert table.reusable("abc", json.dumps({"lr": 0.002}), base) is None  # another training
    assert table.reusable("abc", config, {**base, "seed": 1}) is None  # another seed


def test_break_messages_name_the_row_and_every_offending_column():
    with pytest.raises(ValueError) as err:
        results.check_row(ok_row(study="kernels", variant="{3,5}", budget_s=1, zzz=2))
    assert str(err.value) == "result row of kernels/{3,5} has columns outside results.SCHEMA: budget_s, zzz"
    with pytest.raises(ValueError, match=r"^result row of s/v lacks columns params, flops$"):  # in SCHEMA order
        results.check_row({k: v for k, v in ok_row().items() if k not in ("flops", "params")})
    with pytest.raises(ValueError, match=r"^result row of s/v: val_accuracy = '0.5' is not int or float$"):
        results.check_row(ok_row(val_accuracy="0.5"))


def test_a_missing_value_does_not_hide_a_wrong_type_after_it():
    # None and nan mean "not measured" and pass; the columns after them are still checked
    row = {"study": "s", "variant": "v", "status": "pruned", "val_accuracy": None, "val_loss": float("nan"), "seed": "0"}
    with pytest.raises(ValueError, match="seed = '0' is not int"):
        results.check_row(row)


def test_a_torn_line_in_the_middle_does_not_hide_the_rows_after_it(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(ok_row(seed=0)) + "\n" + '{"study": "s", "va' + "\n\n" + json.dumps(ok_row(seed=1)) + "\n")
    assert [r["seed"] for r in results.load_rows(path)] == [0, 1]


def test_rows_are_appended_as_sorted_json_into_new_folders_with_numpy_and_paths(tmp_path):
    import numpy as np

    path = tmp_path / "runs" / "new" / "results.jsonl"
    results.append_row(path, {"seed": np.int64(3), "wall_s": np.float32(1.5), "history_path": tmp_path / "h.csv", "a": 1})
    line = path.read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    assert list(json.loads(line)) == ["a", "history_path", "seed", "wall_s"]
    assert json.loads(line) == {"a": 1, "history_path": str(tmp_path / "h.csv"), "seed": 3, "wall_s": 1.5}


def test_a_failed_cell_is_not_finished_and_is_claimed_again(tmp_path):
    table = results.ResultsTable(tmp_path / "s" / "results.jsonl")
    failed = ok_row(seed=0, status="failed")
    table.write(failed)
    assert table.finished() == {}
    seen = []
    assert table.claim_and_write([ok_row(seed=0)], taken_elsewhere=lambda key: seen.append(key) or False) is True
    assert seen == [results.row_key(failed)]  # the callback is asked about this cell's key
    assert list(table.finished()) == [results.row_key(failed)]


def test_import_counts_every_row_it_adds(tmp_path):
    table = results.ResultsTable(tmp_path / "s" / "results.jsonl")
    assert table.import_rows([]) == 0 and not table.path.exists()
    assert table.import_rows([ok_row(seed=0), ok_row(seed=1), ok_row(seed=2)]) == 3
    assert table.import_rows([ok_row(seed=1), ok_row(seed=3)]) == 1


def test_reuse_skips_degraded_only_rows_and_looks_in_every_sibling(tmp_path):
    config = json.dumps({"lr": 0.001})
    keys = {"spec_hash": "abc", "config": config, "dataset": "d", "degradation": "none", "protocol": "val-split"}
    # "a_kernels" sorts first and holds only a degraded-test-only copy; "b_width" holds the real one
    results.ResultsTable(tmp_path / "a_kernels" / "results.jsonl").write(
        ok_row(study="a_kernels", test_degraded_only=True, **keys))
    results.ResultsTable(tmp_path / "b_width" / "results.jsonl").write(ok_row(study="b_width", **keys))
    table = results.ResultsTable(tmp_path / "links" / "results.jsonl")
    table.write(ok_row(study="links", seed=5, **keys))  # its own rows are never "reused"
    base = {"study": "links", "variant": "paper", "dataset": "d", "degradation": "none", "protocol": "val-split",
            "fold": 0, "seed": 0, "profile": "quick"}
    row = table.reusable("abc", config, base)
    assert row is not None and row["reused_from"] == "b_width"
    assert row["history_path"] == str((tmp_path / "b_width" / "x").resolve())  # beside the table it came from


def test_load_table_reads_several_files_keeps_the_last_row_of_a_key_and_adds_missing_columns(tmp_path):
    first, second = tmp_path / "a" / "results.jsonl", tmp_path / "b" / "results.jsonl"
    results.append_row(first, ok_row(seed=0, val_accuracy=0.1))
    results.append_row(first, {"study": "s", "variant": "v", "status": "failed", "seed": 1, "profile": "quick"})
    results.append_row(second, ok_row(seed=0, val_accuracy=0.7))  # same key as the first row: the later one wins
    results.append_row(second, ok_row(seed=0, val_accuracy=0.8, dataset="other"))  # another key
    frame = results.load_table([first, second])
    assert len(frame) == 3 and list(frame.index) == [0, 1, 2]
    assert sorted(frame["val_accuracy"].dropna().tolist()) == [0.7, 0.8]
    assert frame.loc[frame["status"] == "failed", "test_accuracy"].isna().all()  # column filled for partial rows
    assert set(results.COLUMNS) <= set(frame.columns)
    single = results.load_table(first)  # one path, not a list
    assert sorted(single["seed"].tolist()) == [0, 1]
    empty = results.load_table(tmp_path / "none.jsonl")
    assert len(empty) == 0 and set(results.COLUMNS) <= set(empty.columns)


def test_a_key_with_missing_fields_is_still_one_key(tmp_path):
    path = tmp_path / "results.jsonl"
    results.append_row(path, {"study": "s", "variant": "v", "status": "pruned", "seed": 0})
    results.append_row(path, {"study": "s", "variant": "v", "status": "pruned", "seed": 0, "val_accuracy": 0.3})
    results.append_row(path, {"study": "s", "variant": "w", "status": "pruned", "seed": 0})
    frame = results.load_table(path)
    assert frame["variant"].tolist() == ["v", "w"] and frame["val_accuracy"].tolist()[0] == 0.3
    assert results.row_key({"study": "s", "seed": 0}) == ("s", "", "", "", "", "", "", "0", "", "")


def test_reuse_drops_columns_an_older_kit_wrote_and_needs_the_same_profile_and_fold(tmp_path):
    config = json.dumps({"lr": 0.001})
    keys = {"spec_hash": "abc", "config": config, "dataset": "d", "degradation": "none", "protocol": "val-split"}
    results.append_row(tmp_path / "old" / "results.jsonl", {**ok_row(study="old", history_path="", **keys), "budget_s": 60})
    table = results.ResultsTable(tmp_path / "links" / "results.jsonl")
    base = {"study": "links", "variant": "paper", "dataset": "d", "degradation": "none", "protocol": "val-split",
            "fold": 0, "seed": 0, "profile": "quick"}
    row = table.reusable("abc", config, base)
    assert "budget_s" not in row and row["history_path"] == "" and row["variant"] == "paper"
    results.check_row(row)
    for changed in ({"profile": "paper"}, {"fold": 1}, {"seed": 1}, {"dataset": "e"}, {"protocol": "kfold-test:5"}):
        assert table.reusable("abc", config, {**base, **changed}) is None
    assert table.reusable("abd", config, base) is None
    assert table.reusable("abc", json.dumps({"lr": 0.002}), base) is None


def test_rows_files_are_readable_by_all_and_writable_by_the_owner_only(tmp_path):
    old = os.umask(0)  # the mode asked for, unmasked
    try:
        results.append_row(tmp_path / "results.jsonl", ok_row())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.jsonl").stat().st_mode) == 0o644
    assert results.results_path("runs", "kernels") == Path("runs") / "kernels" / "results.jsonl"


def test_reuse_looks_past_its_own_table_and_takes_rows_without_a_history(tmp_path):
    config = json.dumps({"lr": 0.001})
    keys = {"spec_hash": "abc", "config": config, "dataset": "d", "degradation": "none", "protocol": "val-split"}
    sibling = {k: v for k, v in ok_row(study="b_kernels", **keys).items() if k != "history_path"}
    results.append_row(tmp_path / "b_kernels" / "results.jsonl", sibling)
    table = results.ResultsTable(tmp_path / "a_links" / "results.jsonl")  # sorts before its sibling
    table.write(ok_row(study="a_links", seed=7, **keys))
    base = {"study": "a_links", "variant": "paper", "dataset": "d", "degradation": "none", "protocol": "val-split",
            "fold": 0, "seed": 0, "profile": "quick"}
    row = table.reusable("abc", config, base)
    assert row is not None and row["reused_from"] == "b_kernels" and row["history_path"] == ""


def test_load_table_has_a_plain_index_and_no_extra_columns(tmp_path):
    path = tmp_path / "results.jsonl"
    for seed in (0, 1, 0):
        results.append_row(path, ok_row(seed=seed))
    frame = results.load_table(path)
    assert "index" not in frame.columns and list(frame.index) == [0, 1]
    assert set(frame.columns) == set(ok_row()) | set(results.COLUMNS) | {"rung"}  # the key's rung ("" without a ladder)
