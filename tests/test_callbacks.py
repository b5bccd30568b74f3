"""The callback API and the built-in callbacks, on real (tiny) MNIST runs."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from lenet5 import Callback, ImageSet, Trainer, TrainState
from lenet5.training import (
    HOOKS,
    CallbackError,
    Checkpoint,
    ConsoleLogger,
    CSVLogger,
    DevicePlacement,
    EarlyStopping,
    PeriodicValidation,
    ProgressBar,
    Seeding,
    Timer,
)
from lenet5.training.checkpoint import load_checkpoint

LOG_LINE = re.compile(r"^Epoch (\d+) \| Loss: \d+\.\d{4} \| Validation Accuracy: \d{1,3}\.\d{2}%$")


def quiet(**kwargs: Any) -> Trainer:
    options: dict[str, Any] = {"verbose": False, "device": "cpu"}
    options.update(kwargs)
    return Trainer(**options)


class Recorder(Callback):
    """Records every hook call as ``(hook, epoch, global_step)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.states: set[int] = set()
        self.val_metrics: list[dict[str, float]] = []

    def _record(self, hook: str, state: TrainState) -> None:
        self.calls.append((hook, state.epoch, state.global_step))
        self.states.add(id(state))

    def on_fit_start(self, state: TrainState) -> None:
        self._record("on_fit_start", state)

    def on_epoch_start(self, state: TrainState) -> None:
        self._record("on_epoch_start", state)

    def on_batch_start(self, state: TrainState) -> None:
        self._record("on_batch_start", state)

    def on_before_backward(self, state: TrainState) -> None:
        self._record("on_before_backward", state)

    def on_before_optimizer_step(self, state: TrainState) -> None:
        self._record("on_before_optimizer_step", state)

    def on_after_optimizer_step(self, state: TrainState) -> None:
        self._record("on_after_optimizer_step", state)

    def on_batch_end(self, state: TrainState) -> None:
        self._record("on_batch_end", state)

    def on_validation_end(self, state: TrainState) -> None:
        self._record("on_validation_end", state)
        self.val_metrics.append(dict(state.metrics))

    def on_epoch_end(self, state: TrainState) -> None:
        self._record("on_epoch_end", state)

    def on_fit_end(self, state: TrainState) -> None:
        self._record("on_fit_end", state)

    def on_exception(self, state: TrainState) -> None:
        self._record("on_exception", state)

    @property
    def hooks(self) -> list[str]:
        return [hook for hook, _, _ in self.calls]


class StopAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            state.stop("simulated interruption")


# ---------------------------------------------------------------------- the hooks


def test_hook_order_across_a_fit(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    recorder = Recorder()
    state = quiet(epochs=2, val_every=2, callbacks=[recorder]).fit(tiny_train, tiny_test)
    step = [
        "on_batch_start",
        "on_before_backward",
        "on_before_optimizer_step",
        "on_after_optimizer_step",
        "on_batch_end",
    ]
    assert recorder.hooks == [
        "on_fit_start",
        "on_epoch_start",
        *step,
        *step,
        "on_epoch_end",
        "on_epoch_start",
        *step,
        *step,
        "on_validation_end",
        "on_epoch_end",
        "on_fit_end",
    ]
    assert recorder.calls[0] == ("on_fit_start", 0, 0)
    assert ("on_batch_end", 1, 1) in recorder.calls
    assert ("on_batch_end", 2, 4) in recorder.calls
    assert recorder.calls[-1] == ("on_fit_end", 2, 4)
    assert recorder.states == {id(state)}
    assert len(recorder.val_metrics) == 1
    assert {"loss", "val_loss", "val_accuracy"} <= set(recorder.val_metrics[0])
    assert set(HOOKS) - {"on_exception"} == set(recorder.hooks)


def test_callbacks_run_sorted_by_order_ties_keep_list_order() -> None:
    calls: list[str] = []

    def make(name: str, position: int) -> Callback:
        class Named(Callback):
            order = position

            def on_fit_start(self, state: TrainState) -> None:
                calls.append(name)

        return Named()

    a, b, c, d = make("a", 5), make("b", -5), make("c", 5), make("d", 0)
    trainer = Trainer(callbacks=[a, b, c, d], default_callbacks=False, verbose=False)
    assert trainer.callbacks == [b, d, a, c]
    trainer._call("on_fit_start", None)  # type: ignore[arg-type]
    assert calls == ["b", "d", "a", "c"]


def test_callbacks_are_placed_among_the_defaults() -> None:
    early_cls = type("Early", (Recorder,), {"order": -95})
    early, late = early_cls(), Recorder()
    trainer = Trainer(callbacks=[late, early], verbose=False)
    kinds = [type(cb) for cb in trainer.callbacks]
    assert kinds[:3] == [Seeding, early_cls, DevicePlacement]
    assert kinds[-1] is ProgressBar
    orders = [cb.order for cb in trainer.callbacks]
    assert orders == sorted(orders)
    # a tie with a default: the default first, then the user's callback
    assert kinds.index(Recorder) == kinds.index(PeriodicValidation) + 1


def test_order_is_used_in_a_real_fit(tiny_train: ImageSet) -> None:
    seen: list[str] = []

    class Late(Callback):
        order = 200

        def on_epoch_end(self, state: TrainState) -> None:
            seen.append("late")
            assert "epoch_seconds" in state.metrics  # Timer (order -80) already ran

    class Early(Callback):
        order = -200

        def on_epoch_end(self, state: TrainState) -> None:
            seen.append("early")
            assert "epoch_seconds" not in state.metrics

    quiet(epochs=1, callbacks=[Late(), Early()]).fit(tiny_train)
    assert seen == ["early", "late"]


def test_misspelt_hook_is_rejected() -> None:
    class Typo(Callback):
        def on_epoch_ends(self, state: TrainState) -> None:
            pass

    with pytest.raises(CallbackError, match=r"Typo\.on_epoch_ends is not a hook.*'on_epoch_end'"):
        Trainer(callbacks=[Typo()])


@pytest.mark.parametrize("thing", [object(), "not a name", 3])
def test_non_callbacks_are_rejected(thing: object) -> None:
    with pytest.raises(CallbackError):
        Trainer(callbacks=[thing])  # type: ignore[list-item]


def test_duck_typed_callback_is_rejected() -> None:
    class Looks:
        def on_epoch_end(self, state: TrainState) -> None:
            pass

    with pytest.raises(CallbackError, match=r"not a lenet5\.Callback"):
        Trainer(callbacks=[Looks()])  # type: ignore[list-item]


def test_stop_ends_training_early(tiny_train: ImageSet) -> None:
    class StopAtStep3(Callback):
        def on_batch_end(self, state: TrainState) -> None:
            if state.global_step == 3:
                state.stop("enough")

    recorder = Recorder()
    state = quiet(epochs=10, callbacks=[StopAtStep3(), recorder]).fit(tiny_train)
    assert state.stop_requested
    assert state.stop_reason == "enough"
    assert state.global_step == 3  # stopped after the current batch
    assert state.epoch == 2
    # The cut-short epoch gets no on_epoch_end and no history row; on_fit_end still runs.
    assert len(state.history) == 1
    assert recorder.hooks[-2:] == ["on_batch_end", "on_fit_end"]
    assert recorder.hooks.count("on_epoch_end") == 1


def test_stop_in_on_epoch_end_finishes_that_epoch(tiny_train: ImageSet) -> None:
    recorder = Recorder()
    state = quiet(epochs=10, callbacks=[StopAfter(2), recorder]).fit(tiny_train)
    assert state.epoch == 2
    assert state.global_step == 4
    assert len(state.history) == 2
    assert recorder.hooks[-2:] == ["on_epoch_end", "on_fit_end"]


def test_on_exception_sees_the_exception(tiny_train: ImageSet) -> None:
    class Boom(Callback):
        def on_epoch_end(self, state: TrainState) -> None:
            raise RuntimeError("boom")

    seen: list[BaseException | None] = []

    class Watch(Recorder):
        def on_exception(self, state: TrainState) -> None:
            super().on_exception(state)
            seen.append(state.exception)

    watch = Watch()
    with pytest.raises(RuntimeError, match="boom") as excinfo:
        quiet(epochs=3, callbacks=[Boom(), watch]).fit(tiny_train)
    assert seen == [excinfo.value]
    assert watch.hooks[-1] == "on_exception"
    assert "on_fit_end" not in watch.hooks
    assert "on_epoch_end" not in watch.hooks  # Boom (same order, listed first) raised before


def test_failing_on_exception_hook_does_not_hide_the_error(tiny_train: ImageSet) -> None:
    class Boom(Callback):
        def on_batch_start(self, state: TrainState) -> None:
            raise ValueError("original")

    class BadHandler(Callback):
        def on_exception(self, state: TrainState) -> None:
            raise KeyError("handler")

    with pytest.warns(UserWarning, match="failed in on_exception"):  # noqa: SIM117
        with pytest.raises(ValueError, match="original"):
            quiet(epochs=1, callbacks=[Boom(), BadHandler()]).fit(tiny_train)


def test_callback_state_is_checkpointed_and_restored(tmp_path: Path, tiny_train: ImageSet) -> None:
    class Counter(Callback):
        def __init__(self) -> None:
            self.count = 0

        def on_batch_end(self, state: TrainState) -> None:
            self.count += 1

        def state_dict(self) -> dict[str, Any]:
            return {"count": self.count, "tensor": torch.tensor([self.count])}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            assert int(state["tensor"]) == state["count"]
            self.count = state["count"]

    first = Counter()
    quiet(epochs=3, callbacks=[first, Checkpoint(tmp_path), StopAfter(1)]).fit(tiny_train)
    assert first.count == 2
    _, saved = load_checkpoint(tmp_path)
    assert saved["callbacks"]["Counter"]["count"] == 2

    second = Counter()
    state = quiet(epochs=3, callbacks=[second, Checkpoint(tmp_path)]).fit(
        tiny_train, resume=tmp_path
    )
    assert state.global_step == 6
    assert second.count == 6  # 2 restored + 4 new steps


def test_duplicate_keys_warn() -> None:
    with pytest.warns(UserWarning, match="share the checkpoint key"):
        Trainer(callbacks=[CSVLogger("a.csv"), CSVLogger("b.csv")])


# ------------------------------------------------------------------- the built-ins


def test_early_stopping_stops(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    # No change can be an improvement of more than 1000 points: the second validation stops.
    stopper = EarlyStopping(patience=1, min_delta=1000.0)
    state = quiet(epochs=10, val_every=1, callbacks=[stopper]).fit(tiny_train, tiny_test)
    assert state.epoch == 2
    assert state.stop_reason is not None
    assert "val_accuracy did not improve for 1 validations" in state.stop_reason
    assert stopper.best_epoch == 1
    assert stopper.state_dict()["bad"] == 1


def test_early_stopping_patience_and_min_mode(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=2, min_delta=1000.0)
    state = quiet(epochs=10, val_every=1, callbacks=[stopper]).fit(tiny_train, tiny_test)
    assert state.epoch == 3
    assert stopper.best == state.history[0]["val_loss"]


def test_early_stopping_keeps_going_while_improving(
    train_1k: ImageSet, tiny_test: ImageSet
) -> None:
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=1)
    state = quiet(epochs=2, val_every=1, callbacks=[stopper]).fit(train_1k, tiny_test)
    assert not state.stop_requested
    assert state.epoch == 2


def test_early_stopping_arguments_and_missing_metric(tiny_train: ImageSet) -> None:
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    # val_split gives validation data; the monitored metric does not exist
    with pytest.raises(KeyError, match="val_f1"):
        quiet(epochs=1, val_split=16, callbacks=[EarlyStopping(monitor="val_f1")]).fit(tiny_train)


def test_csv_logger_writes_one_row_per_epoch(
    tmp_path: Path, tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    path = tmp_path / "logs" / "metrics.csv"
    quiet(epochs=3, val_every=2, callbacks=[CSVLogger(path)]).fit(tiny_train, tiny_test)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert list(rows[0])[: len(CSVLogger.COLUMNS)] == list(CSVLogger.COLUMNS)
    assert all(0 <= float(r["accuracy"]) <= 100 for r in rows)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["global_step"] for r in rows] == ["2", "4", "6"]
    assert all(float(r["loss"]) > 0 for r in rows)
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(1e-3)
    # validated after epoch 2 (every 2) and 3 (the last)
    assert [r["val_accuracy"] != "" for r in rows] == [False, True, True]
    assert 0 <= float(rows[1]["val_accuracy"]) <= 100
    assert not list(path.parent.glob("*.tmp"))


def test_csv_logger_rows_survive_a_resume(tmp_path: Path, tiny_train: ImageSet) -> None:
    path = tmp_path / "metrics.csv"
    ckpt = tmp_path / "ckpt"
    quiet(epochs=3, callbacks=[CSVLogger(path), Checkpoint(ckpt), StopAfter(1)]).fit(tiny_train)
    assert len(path.read_text().splitlines()) == 2
    quiet(epochs=3, callbacks=[CSVLogger(path), Checkpoint(ckpt)]).fit(tiny_train, resume=ckpt)
    with path.open(newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]


def test_console_logger_line_format(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    stream = io.StringIO()
    Trainer(
        epochs=3, val_every=2, device="cpu", verbose=True, callbacks=[ConsoleLogger(stream)]
    ).fit(tiny_train, tiny_test)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    for line, epoch in zip(lines, ("2", "3"), strict=True):
        match = LOG_LINE.match(line)
        assert match, line
        assert match.group(1) == epoch


def test_console_logger_prints_to_stdout_by_default(
    tiny_train: ImageSet, tiny_test: ImageSet, capsys: pytest.CaptureFixture[str]
) -> None:
    state = Trainer(epochs=2, val_every=1, device="cpu", verbose=True).fit(tiny_train, tiny_test)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert all(LOG_LINE.match(line) for line in out), out
    expected = state.history[1]
    assert out[1] == (
        f"Epoch 2 | Loss: {expected['loss']:.4f} | "
        f"Validation Accuracy: {expected['val_accuracy']:.2f}%"
    )


def test_quiet_runs_print_nothing(
    tiny_train: ImageSet, tiny_test: ImageSet, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet(epochs=1, val_every=1).fit(tiny_train, tiny_test)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_progress_bar_draws_and_closes(tiny_train: ImageSet) -> None:
    class StopMidEpoch(Callback):
        def on_batch_end(self, state: TrainState) -> None:
            if state.global_step == 3:
                state.stop()

    bar = ProgressBar(refresh=1, force=True)
    seen: list[object] = []

    class Watch(Callback):
        order = 150  # after the bar

        def on_batch_end(self, state: TrainState) -> None:
            seen.append(bar._bar)

    Trainer(epochs=3, device="cpu", verbose=True, callbacks=[bar, StopMidEpoch(), Watch()]).fit(
        tiny_train
    )
    assert len(seen) == 3
    assert all(b is not None for b in seen)
    assert bar._bar is None  # closed, although the last epoch was cut short


def test_user_subclass_replaces_the_default(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    class Shouting(ConsoleLogger):
        def __init__(self) -> None:
            super().__init__(io.StringIO())

        def on_epoch_end(self, state: TrainState) -> None:
            super().on_epoch_end(state)

    mine = Shouting()
    trainer = Trainer(epochs=1, verbose=True, device="cpu", callbacks=[mine])
    loggers = [cb for cb in trainer.callbacks if isinstance(cb, ConsoleLogger)]
    assert loggers == [mine]
    trainer.fit(tiny_train, tiny_test)
    assert mine.stream is not None
    assert LOG_LINE.match(mine.stream.getvalue().strip())  # type: ignore[attr-defined]
    # other defaults are still there
    assert sum(isinstance(cb, Seeding) for cb in trainer.callbacks) == 1


def test_defaults_can_be_turned_off() -> None:
    assert Trainer(default_callbacks=False).callbacks == []
    kinds = {type(cb) for cb in Trainer().callbacks}
    assert kinds == {
        Seeding,
        Timer,
        DevicePlacement,
        PeriodicValidation,
        ConsoleLogger,
        ProgressBar,
    }


def test_builtin_callbacks_by_name() -> None:
    trainer = Trainer(callbacks=["early_stopping", "timer"])
    assert sum(isinstance(cb, EarlyStopping) for cb in trainer.callbacks) == 1
    assert sum(isinstance(cb, Timer) for cb in trainer.callbacks) == 1  # replaced the default


@pytest.mark.parametrize(("every", "validated"), [(2, [2, 4, 5]), (1, [1, 2, 3, 4, 5]), (0, [])])
def test_periodic_validation(
    tiny_train: ImageSet, tiny_test: ImageSet, every: int, validated: list[int]
) -> None:
    state = quiet(epochs=5, val_every=every).fit(tiny_train.subset(slice(0, 32)), tiny_test)
    assert [i + 1 for i, h in enumerate(state.history) if "val_accuracy" in h] == validated


def no_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_checkpoint_folders(tmp_path: Path, tiny_train: ImageSet) -> None:
    trainer = quiet(epochs=3, callbacks=[Checkpoint(tmp_path, keep=0)])
    trainer.fit(tiny_train)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch-0001", "epoch-0002", "epoch-0003", "latest"]
    for name in names[:3]:
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "model.safetensors",
            "trainer.pt",
        ]
    assert (tmp_path / "latest").read_text().strip() == "epoch-0003"
    saved = load_file(tmp_path / "epoch-0003" / "model.safetensors")
    final = trainer.model.state_dict()
    assert set(saved) == set(final)
    assert all(torch.equal(saved[k], final[k]) for k in final)
    _, trainer_state = load_checkpoint(tmp_path)
    assert trainer_state["epoch"] == 3
    assert trainer_state["global_step"] == 6
    assert no_temp_files(tmp_path) == []


def test_checkpoint_every_and_keep(tmp_path: Path, tiny_train: ImageSet) -> None:
    quiet(epochs=5, callbacks=[Checkpoint(tmp_path, every=2, keep=2)]).fit(
        tiny_train.subset(slice(0, 32))
    )
    # saved at 2, 4 and 5 (the last), the newest two kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0004", "epoch-0005", "latest"]
    assert no_temp_files(tmp_path) == []
    with pytest.raises(ValueError, match="every"):
        Checkpoint(tmp_path, every=0)


def test_checkpoint_saved_when_stopped(tmp_path: Path, tiny_train: ImageSet) -> None:
    quiet(epochs=5, callbacks=[Checkpoint(tmp_path, every=3), StopAfter(2)]).fit(tiny_train)
    assert (tmp_path / "latest").read_text().strip() == "epoch-0002"


def test_a_stop_asked_after_the_checkpoint_of_an_epoch_is_still_saved(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    class LateStop(Callback):
        order = 95  # after Checkpoint: its on_epoch_end has already passed this epoch by

        def on_epoch_end(self, state: TrainState) -> None:
            state.stop("asked late")

    checkpoint = Checkpoint(tmp_path, every=5)
    state = quiet(epochs=5, callbacks=[checkpoint, LateStop()]).fit(tiny_train)
    assert (state.epoch, state.stop_reason) == (1, "asked late")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "latest"]
    assert checkpoint.last_path == tmp_path / "epoch-0001"


def test_failed_checkpoint_leaves_no_temp_files(tmp_path: Path, tiny_train: ImageSet) -> None:
    class Explodes(Callback):
        def state_dict(self) -> dict[str, Any]:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        quiet(epochs=1, callbacks=[Checkpoint(tmp_path), Explodes()]).fit(tiny_train)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------- one home for the hook list


def test_hooks_are_the_callback_methods_in_definition_order() -> None:
    assert list(HOOKS) == [name for name in vars(Callback) if name.startswith("on_")]
    assert HOOKS == (
        "on_fit_start",
        "on_epoch_start",
        "on_batch_start",
        "on_before_backward",
        "on_before_optimizer_step",
        "on_after_optimizer_step",
        "on_batch_end",
        "on_validation_end",
        "on_epoch_end",
        "on_fit_end",
        "on_exception",
    )


def test_a_fit_first_calls_each_hook_in_the_order_of_hooks(
    tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    recorder = Recorder()
    quiet(epochs=1, val_every=1, callbacks=[recorder]).fit(tiny_train, tiny_test)
    first_calls = list(dict.fromkeys(recorder.hooks))
    assert first_calls == [hook for hook in HOOKS if hook != "on_exception"]


def test_misspelt_hook_gets_the_shared_hint() -> None:
    from lenet5._hints import did_you_mean

    class Typo(Callback):
        def on_batch_ends(self, state: TrainState) -> None:
            pass

    with pytest.raises(CallbackError) as info:
        Trainer(callbacks=[Typo()])
    assert did_you_mean("on_batch_ends", HOOKS) in str(info.value)
    assert str(info.value).endswith(f"hooks: {', '.join(HOOKS)}")


def test_the_callback_api_has_one_public_path() -> None:
    import pickle

    import lenet5.callbacks
    import lenet5.training.callbacks as home

    for name in home.__all__:
        assert getattr(lenet5.callbacks, name) is getattr(home, name)
    # The older paths that lenet5.training still answers lead to the same objects.
    for name in ("HOOKS", "Callback", "CallbackError", "Checkpoint", "EarlyStopping", "Timer"):
        assert getattr(lenet5.training, name) is getattr(home, name)
    assert home.HOOKS is home._base.HOOKS
    stopper = pickle.loads(pickle.dumps(EarlyStopping(patience=4)))
    assert type(stopper) is EarlyStopping
    assert stopper.patience == 4


def test_on_after_optimizer_step_changes_what_the_ema_averages(tiny_train: ImageSet) -> None:
    """A projection in on_after_optimizer_step holds on the weights and on the EMA copy
    (which the fit returns): weight clipping to [-0.01, 0.01]."""
    seen: list[tuple[int, float]] = []

    class ClipWeights(Callback):
        def on_after_optimizer_step(self, state: TrainState) -> None:
            seen.append((state.global_step, float(state.optimizer.param_groups[0]["lr"])))
            with torch.no_grad():
                for p in state.model.parameters():
                    p.clamp_(-0.01, 0.01)

    trainer = quiet(epochs=2, ema_decay=0.9, scheduler="cosine", callbacks=[ClipWeights()])
    trainer.fit(tiny_train)
    assert [step for step, _ in seen] == [1, 2, 3, 4]  # global_step counts the step
    assert seen[0][1] == trainer.config.lr  # before the schedule steps
    assert all(float(p.abs().max()) <= 0.01 + 1e-7 for p in trainer.model.parameters())
