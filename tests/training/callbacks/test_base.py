"""The callback API on real (tiny) MNIST runs: the hooks and their order, callbacks sorted
by ``order`` among the defaults, what a callback may do (stop), and what is refused.

The built-ins have their own files beside this one; the Checkpoint callback is in
``tests/training/test_checkpoint.py``, with every checkpoint and resume test.
"""

from __future__ import annotations

import pytest

from helpers import StopAfter, quiet
from lenet5 import Callback, ImageSet, Trainer, TrainState
from lenet5.training import (
    HOOKS,
    CallbackError,
    ConsoleLogger,
    DevicePlacement,
    PeriodicValidation,
    ProgressBar,
    Seeding,
    Timer,
)

# ------------------------------------------------------------------------------- the hooks


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


def test_misspelt_hook_is_rejected() -> None:
    class Typo(Callback):
        def on_epoch_ends(self, state: TrainState) -> None:
            pass

    with pytest.raises(CallbackError, match=r"Typo\.on_epoch_ends is not a hook.*'on_epoch_end'"):
        Trainer(callbacks=[Typo()])


def test_misspelt_hook_gets_the_shared_hint() -> None:
    from lenet5._hints import did_you_mean

    class Typo(Callback):
        def on_batch_ends(self, state: TrainState) -> None:
            pass

    with pytest.raises(CallbackError) as info:
        Trainer(callbacks=[Typo()])
    assert did_you_mean("on_batch_ends", HOOKS) in str(info.value)
    assert str(info.value).endswith(f"hooks: {', '.join(HOOKS)}")


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


# ------------------------------------------ the order of the callbacks, among the defaults


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


# ----------------------------------------- what a callback can do: stop, see the exception


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
