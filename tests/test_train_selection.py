"""The training loop's selection and restoration, on a scripted loop (milliseconds, for mutation testing):
the best-validation-loss epoch is kept (strictly lower loss only), patience stops the run, divergence keeps
the best weights seen, and the final evaluation runs on the restored best weights, never the last ones."""

from __future__ import annotations

import csv
import dataclasses
import sys
import types

import pytest
import torch
from torch import nn

from study import train
from study.spec import NetworkSpec, replace_blocks
from study.train import TrainConfig
from tests.helpers import write_tiny_dataset


class _ScriptedLoop:
    """Stands in for `train._Loop`: epoch e sets every weight to e and logs the scripted validation loss."""

    script: list[float] = []

    def __init__(self, net, cfg, device, train_loader, val_loader):
        self.net = net

    def epoch(self, epoch: int, fit, bar) -> dict[str, float]:
        loss = self.script[epoch - 1]
        if loss is None:
            raise train.Diverged(f"loss nan at epoch {epoch}")
        with torch.no_grad():
            for p in self.net.model.parameters():
                p.fill_(float(epoch))
        row = {"epoch_end": 1, "val_loss": loss, "val_acc": 1.0 - loss / 10, "train_loss": loss}
        fit.history.append(row)
        return row


def _fit(monkeypatch, script: list[float | None], epochs: int, patience: int):
    monkeypatch.setattr(train, "_Loop", _ScriptedLoop)
    monkeypatch.setattr(_ScriptedLoop, "script", script)
    x, y = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)
    data = types.SimpleNamespace(splits=types.SimpleNamespace(train=(x, y), val=(x, y)))
    model = nn.Linear(2, 2)
    net = train._Net(model, model, {})
    seen = []
    fit = train._fit(net, data, TrainConfig(epochs=epochs, patience=patience, batch_size=2), 0, "cpu",
                     lambda e, row: seen.append((e, row["val_loss"])), False, "scripted")
    return fit, seen


def _weight(state) -> float:
    values = {float(v.flatten()[0]) for v in state.values()}
    assert len(values) == 1
    return values.pop()


def test_the_best_epoch_is_kept_and_patience_stops_the_run(monkeypatch):
    fit, seen = _fit(monkeypatch, [1.0, 0.5, 0.7, 0.4, 0.9, 0.95, 0.3, 0.2], epochs=8, patience=2)
    assert fit.best_epoch == 4 and fit.best_val_loss == 0.4 and _weight(fit.best_state) == 4.0
    assert [e for e, _ in seen] == [1, 2, 3, 4, 5, 6]  # epochs 5 and 6 did not improve: stop after 6
    assert fit.stop_reason == "early stopping: no val-loss improvement for 2 epochs" and fit.status == "ok"
    assert len(fit.epoch_ends) == 6


def test_an_equal_loss_is_no_improvement_and_the_cap_ends_a_run_that_keeps_improving(monkeypatch):
    fit, _ = _fit(monkeypatch, [1.0, 1.0, 1.0], epochs=3, patience=5)
    assert fit.best_epoch == 1 and _weight(fit.best_state) == 1.0
    assert fit.stop_reason == "epoch cap (3)"
    fit, seen = _fit(monkeypatch, [1.0, 0.9, 0.8], epochs=3, patience=1)
    assert fit.best_epoch == 3 and len(seen) == 3 and fit.stop_reason == "epoch cap (3)"


def test_patience_one_stops_at_the_first_epoch_without_improvement(monkeypatch):
    fit, seen = _fit(monkeypatch, [1.0, 0.5, 0.6, 0.1], epochs=4, patience=1)
    assert fit.best_epoch == 2 and [e for e, _ in seen] == [1, 2, 3]


def test_divergence_keeps_the_best_weights_seen_before_it(monkeypatch):
    fit, seen = _fit(monkeypatch, [1.0, 0.5, None, 0.1], epochs=4, patience=3)
    assert fit.status == "diverged" and fit.stop_reason == "diverged: loss nan at epoch 3"
    assert fit.best_epoch == 2 and _weight(fit.best_state) == 2.0 and len(seen) == 2


def test_the_final_evaluation_runs_on_the_restored_best_weights(monkeypatch, tmp_path):
    model = nn.Linear(2, 2)
    best = {k: torch.full_like(v, 7.0) for k, v in model.state_dict().items()}

    def fit(net, *args):
        with torch.no_grad():
            for p in net.model.parameters():
                p.fill_(9.0)  # the last epoch's weights
        done = train._Fit(best_epoch=2, best_state=best, best_val_loss=0.1)
        done.history = [{"epoch_end": 1, "val_loss": 0.5, "val_acc": 0.5}, {"epoch_end": 1, "val_loss": 0.1, "val_acc": 0.9}]
        return done

    evaluated, data, cfg = [], object(), TrainConfig(lr=0.01)

    def final_evaluation(net, data_, fit_, task, cfg_, seed, device):
        assert (data_, cfg_, seed, device, task.dataset, fit_.best_epoch) == (data, cfg, 3, "cpu", "fashion-mnist", 2)
        evaluated.append(_weight(net.model.state_dict()))
        return {"test_accuracy": 1.0}

    monkeypatch.setattr(train, "_prepare_data", lambda *a: data)
    monkeypatch.setattr(train, "_build", lambda *a: train._Net(model, model, {}))
    monkeypatch.setattr(train, "_fit", fit)
    monkeypatch.setattr(train, "_row", lambda *a: {})
    monkeypatch.setattr(train, "_final_evaluation", final_evaluation)
    checkpoint = tmp_path / "best.pt"
    result = train.train("lrnet_half", train.Task("fashion-mnist"), cfg=cfg, seed=3, checkpoint_path=checkpoint)
    assert evaluated == [7.0] and result["test_accuracy"] == 1.0
    assert _weight(torch.load(checkpoint, weights_only=True)) == 7.0  # the kept weights are the best ones
    evaluated.clear()
    result = train.train("lrnet_half", train.Task("fashion-mnist", test=False), cfg=cfg, seed=3)
    assert evaluated == [] and result["val_accuracy"] == 0.9 and result["val_loss"] == 0.1  # epoch 2's, not the last
    assert "test_accuracy" not in result


def test_a_run_without_an_ok_fit_is_neither_restored_nor_tested(monkeypatch):
    status = "diverged"
    model = nn.Linear(2, 2)
    monkeypatch.setattr(train, "_prepare_data", lambda *a: None)
    monkeypatch.setattr(train, "_build", lambda *a: train._Net(model, model, {}))
    monkeypatch.setattr(train, "_fit", lambda *a: train._Fit(status=status, best_state={"weight": torch.zeros(1)}))
    monkeypatch.setattr(train, "_row", lambda *a: {"status": status})
    monkeypatch.setattr(train, "_final_evaluation", lambda *a: pytest.fail("tested a diverged run"))
    assert train.train("lrnet_half", "fashion-mnist", cfg=TrainConfig())["status"] == status


def test_a_real_fit_keeps_the_epoch_of_lowest_validation_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data", train=120, test=40)))
    spec = replace_blocks(dataclasses.replace(NetworkSpec(), blocks=NetworkSpec().blocks[:1]), width_multiplier=0.1)
    cfg = TrainConfig(epochs=4, patience=4, batch_size=20, eval_batch_size=16, val_subset=30, precision="fp32",
                      fast=False, lr=0.01)
    history = tmp_path / "history.csv"
    result = train.train(spec, train.Task("fashion-mnist"), cfg=cfg, seed=1, history_path=history)
    rows = list(csv.DictReader(history.open()))
    ends = [r for r in rows if r["epoch_end"] == "1"]
    assert len(ends) == result["epochs"] == 4 and len(rows) > 4  # a few rows within each epoch, one at its end
    losses = [float(r["val_loss"]) for r in ends]
    assert result["best_epoch"] == losses.index(min(losses)) + 1
    assert result["val_loss"] == pytest.approx(min(losses)) and result["val_accuracy"] == float(ends[result["best_epoch"] - 1]["val_acc"])
    assert int(rows[-1]["step"]) == 4 * (result["train_size"] // 20)  # full batches of 20 only, every epoch
    again = train.train(spec, train.Task("fashion-mnist"), cfg=dataclasses.replace(cfg, epochs=1), seed=1)
    other = train.train(spec, train.Task("fashion-mnist"), cfg=dataclasses.replace(cfg, epochs=1), seed=2)
    assert again["val_loss"] == pytest.approx(float(ends[0]["val_loss"]), rel=1e-6)  # the seed fixes split, init and order
    assert other["val_loss"] != again["val_loss"]


def _loader_data(n_train: int) -> types.SimpleNamespace:
    x = torch.arange(n_train, dtype=torch.uint8).reshape(n_train, 1, 1, 1).expand(n_train, 1, 4, 4).contiguous()
    y = torch.arange(n_train) % 2
    return types.SimpleNamespace(splits=types.SimpleNamespace(train=(x, y), val=(x[:6], y[:6])))


def _order(loader) -> list[int]:
    """The sample ids of one epoch, in the order the loader gives them (each image is filled with its id)."""
    return [int(v) for x, _ in loader for v in (x[:, 0, 0, 0] * 255).round()]


def test_the_training_loader_reshuffles_every_epoch_by_seed_and_validation_keeps_its_order():
    data, cfg = _loader_data(12), TrainConfig(batch_size=4, eval_batch_size=4)
    train_loader, val_loader = train._loaders(data, cfg, seed=5, device="cpu")
    first, second = _order(train_loader), _order(train_loader)
    assert sorted(first) == sorted(second) == list(range(12)) and first != second  # a new permutation each epoch
    assert first != list(range(12))
    assert _order(train._loaders(data, cfg, seed=5, device="cpu")[0]) == first  # the seed fixes the order
    assert _order(train._loaders(data, cfg, seed=6, device="cpu")[0]) != first  # ... and another seed changes it
    assert _order(val_loader) == _order(val_loader) == list(range(6))
    assert len(val_loader) == 2 and [len(y) for _, y in val_loader] == [4, 2]  # validation keeps its short batch


def test_the_training_loader_drops_a_short_last_batch_and_augments_as_configured():
    cfg = TrainConfig(batch_size=5)
    assert [len(y) for _, y in train._loaders(_loader_data(12), cfg, 0, "cpu")[0]] == [5, 5]
    assert [len(y) for _, y in train._loaders(_loader_data(3), cfg, 0, "cpu")[0]] == [3]  # a split smaller than a batch
    plain = next(iter(train._loaders(_loader_data(12), cfg, 0, "cpu")[0]))[0]
    cropped = next(iter(train._loaders(_loader_data(12), dataclasses.replace(cfg, augment="crop:2"), 0, "cpu")[0]))[0]
    assert (plain == 0).sum() <= 16  # unaugmented: only image 0 (one 4×4 image of zeros) is zero
    assert (cropped == 0).sum() > (plain == 0).sum()  # random crops after zero padding bring zero borders in


def test_the_fit_draws_its_batch_order_from_the_run_seed_and_runs_on_its_device(monkeypatch):
    orders, devices = [], []

    class Recording(_ScriptedLoop):
        def __init__(self, net, cfg, device, train_loader, val_loader):
            super().__init__(net, cfg, device, train_loader, val_loader)
            orders.append(_order(train_loader))
            devices.append(device)  # the loop's autocast and fp16 scaler follow the run's device

    monkeypatch.setattr(train, "_Loop", Recording)
    monkeypatch.setattr(Recording, "script", [1.0])
    data, cfg = _loader_data(12), TrainConfig(epochs=1, batch_size=4)
    model = nn.Linear(2, 2)
    for seed in (3, 4):
        train._fit(train._Net(model, model, {}), data, cfg, seed, "cpu", None, False, "recorded")
    assert orders[0] == _order(train._loaders(data, cfg, 3, "cpu")[0]) != orders[1]
    assert devices == ["cpu", "cpu"]


def test_the_steps_never_wait_for_the_device_and_a_row_holds_their_exact_sums(monkeypatch):
    # On a GPU every `.item()` or `bool(tensor)` stalls the kernel queue: a step must not read the device back.
    # The row's training loss is still the float64 sum of every step's loss, as adding each `.item()` would be.
    data, cfg = _loader_data(40), TrainConfig(epochs=1, batch_size=4, lr=0.1, precision="fp32", fast=False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loop = train._Loop(train._Net(model, model, {}), cfg, "cpu", *train._loaders(data, cfg, 0, "cpu"))
    loop.log_every = 5  # two rows in the epoch's ten steps
    monkeypatch.setattr(train, "evaluate", lambda *a: {"loss": 0.5, "accuracy": 0.5})
    steps, reads, step = [], [], loop._step

    def recorded(x, y):
        loss, correct = step(x, y)
        steps.append((loss.clone(), correct.clone(), len(y)))
        return loss, correct

    def item(self):
        if sys._getframe(1).f_code.co_filename == train.__file__:  # the loop's reads (torch's own CPU counters aside)
            reads.append(len(steps))
        return real_item(self)

    real_item = torch.Tensor.item
    monkeypatch.setattr(loop, "_step", recorded)
    monkeypatch.setattr(torch.Tensor, "item", item)
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: pytest.fail("a step branched on a tensor"))
    fit = train._Fit()
    loop.epoch(1, fit, train._progress_bar(10, "sync-free", False))
    monkeypatch.undo()
    assert reads == [5, 5, 10, 10]  # loss and correct, read once per row
    for row, window in zip(fit.history, (steps[:5], steps[5:]), strict=True):
        expected = 0.0
        for loss, _, n in window:
            expected += loss.item() * n
        assert row["train_loss"] == expected / 20  # exactly: the same float64 sums
        assert row["train_acc"] == sum(int(c) for _, c, _ in window) / 20


def test_a_non_finite_training_loss_ends_the_epoch_as_diverged_at_the_next_row(monkeypatch):
    data, cfg = _loader_data(40), TrainConfig(epochs=1, batch_size=4, lr=0.1, precision="fp32", fast=False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loop = train._Loop(train._Net(model, model, {}), cfg, "cpu", *train._loaders(data, cfg, 0, "cpu"))
    monkeypatch.setattr(train, "evaluate", lambda *a: pytest.fail("validated weights after a non-finite loss"))
    step = loop._step
    monkeypatch.setattr(loop, "_step", lambda x, y: (step(x, y)[0] * float("inf"), torch.tensor(0)))
    with pytest.raises(train.Diverged, match="^loss inf at epoch 2$"):
        loop.epoch(2, train._Fit(), train._progress_bar(10, "diverging", False))


def test_a_row_times_training_without_validation_and_places_itself_in_the_epoch(monkeypatch):
    # a fake clock: each step takes 1/8 s, each validation 100 s; the rows' rates and the fit's seconds leave validation out
    # (fast=True: validation runs `study.fast`'s inference rewrite of the model, which leaves a non-MK network as it is)
    data, cfg = _loader_data(40), TrainConfig(epochs=1, batch_size=4, lr=0.1, precision="fp32", fast=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loop = train._Loop(train._Net(model, model, {}), cfg, "cpu", *train._loaders(data, cfg, 0, "cpu"))
    loop.log_every = 5
    clock, validated = [0.0], []
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])
    step = loop._step

    def timed_step(x, y):
        clock[0] += 0.125
        return step(x, y)

    def validation(evaluator, loader, cfg_, device):
        validated.append((type(evaluator), loader is loop.val_loader, cfg_ is cfg, device))
        clock[0] += 100.0
        return {"loss": 0.5, "accuracy": 0.25}

    monkeypatch.setattr(loop, "_step", timed_step)
    monkeypatch.setattr(train, "evaluate", validation)
    fit = train._Fit()
    end = loop.epoch(3, fit, train._progress_bar(10, "timed", False))
    assert end is fit.history[-1] and [r["epoch_end"] for r in fit.history] == [0, 1]
    assert [(r["step"], r["epoch"], r["lr"], r["img_per_s"]) for r in fit.history] == [(5, 2.5, 0.1, 32.0), (10, 3.0, 0.1, 32.0)]
    assert [(r["val_loss"], r["val_acc"]) for r in fit.history] == [(0.5, 0.25)] * 2
    assert validated == [(nn.Sequential, True, True, "cpu")] * 2  # the model, the validation split, the run's device
    assert (fit.train_seconds, fit.train_images, loop.eval_seconds) == (1.25, 40, 200.0)
    loop.epoch(4, fit, train._progress_bar(10, "timed", False))
    assert (fit.train_seconds, fit.train_images, loop.eval_seconds) == (2.5, 80, 400.0)  # epochs add up
    monkeypatch.setattr(train, "evaluate", lambda *a: {"loss": float("nan"), "accuracy": 0.1})
    with pytest.raises(train.Diverged, match="^validation loss nan at epoch 5$"):
        loop.epoch(5, fit, train._progress_bar(10, "timed", False))


def test_a_one_image_split_gives_a_row_of_that_image_alone(monkeypatch):
    data, cfg = _loader_data(1), TrainConfig(epochs=1, batch_size=4, lr=0.1, precision="fp32", fast=False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loop = train._Loop(train._Net(model, model, {}), cfg, "cpu", *train._loaders(data, cfg, 0, "cpu"))
    monkeypatch.setattr(train, "evaluate", lambda *a: {"loss": 0.5, "accuracy": 0.5})
    losses, step = [], loop._step
    monkeypatch.setattr(loop, "_step", lambda x, y: losses.append(step(x, y)) or losses[-1])
    row = loop.epoch(1, train._Fit(), train._progress_bar(1, "one image", False))
    assert row["train_loss"] == losses[0][0].item() and row["train_acc"] == losses[0][1].item() in (0, 1)
