"""TensorBoardLogger on real (small) MNIST fits, its event files read back with TensorBoard."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch

from helpers import StopAtStep, quiet
from lenet5 import Callback, ImageSet, TrainState
from lenet5.training import Checkpoint
from lenet5.training.callbacks import TensorBoardLogger
from lenet5.training.plugins import BUILTIN, create_callback

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason='needs tensorboard: pip install "lenet5[tensorboard]"',
)


def f32(value: float) -> float:
    """``value`` as TensorBoard stores a scalar: a float32."""
    return torch.tensor(value, dtype=torch.float32).item()


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar point of every event file in ``folder``: ``{tag: [(step, value), ...]}``.

    Nothing is purged or sampled, so a point written twice is read twice.
    """
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.SCALARS: 0}, purge_orphaned_data=False
    )
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


class StepRecorder(Callback):
    """Records ``{global_step: (batch loss, lr)}`` after TensorBoardLogger, from the first
    batch that ends with that step (the one whose optimizer step made it)."""

    order: ClassVar[int] = TensorBoardLogger.order + 1

    def __init__(self) -> None:
        self.steps: dict[int, tuple[float, float]] = {}

    def on_batch_end(self, state: TrainState) -> None:
        assert state.optimizer is not None
        lr = state.optimizer.param_groups[0]["lr"]
        self.steps.setdefault(state.global_step, (state.batch_loss, lr))


def test_a_fit_writes_the_epoch_metrics_and_the_step_loss_and_lr(
    tmp_path: Path, data: ImageSet, tiny_test: ImageSet
) -> None:
    recorder = StepRecorder()
    # A schedule, so that the lr differs from step to step and the values are really read.
    logger = TensorBoardLogger(tmp_path / "tb", every_n_steps=3)
    state = quiet(epochs=2, val_every=1, scheduler="cosine", callbacks=[logger, recorder]).fit(
        data, tiny_test
    )
    scalars = read_scalars(tmp_path / "tb")

    metric_names = set(state.history[0]) | set(state.history[1])
    assert {"loss", "accuracy", "lr", "val_loss", "val_accuracy", "epoch_seconds"} <= metric_names
    assert set(scalars) == {f"epoch/{n}" for n in metric_names} | {"step/loss", "step/lr"}
    for name in metric_names:
        expected = [(e, f32(m[name])) for e, m in enumerate(state.history, 1) if name in m]
        assert scalars[f"epoch/{name}"] == expected, name

    steps = [3, 6, 9, 12, 15]  # 16 steps in all
    assert state.global_step == 16
    assert scalars["step/loss"] == [(s, f32(recorder.steps[s][0])) for s in steps]
    assert scalars["step/lr"] == [(s, f32(recorder.steps[s][1])) for s in steps]
    assert len({lr for _, lr in scalars["step/lr"]}) > 1
    assert logger._writer is None  # closed at the end of the fit


def test_a_resumed_run_continues_the_curves_without_duplicates(
    tmp_path: Path, data: ImageSet
) -> None:
    checkpoints, tb = tmp_path / "checkpoints", tmp_path / "tb"
    first = [TensorBoardLogger(tb, every_n_steps=2), Checkpoint(checkpoints), StopAtStep(5)]
    quiet(epochs=2, seed=3, callbacks=first).fit(data)
    assert read_scalars(tb)["step/loss"][-1][0] == 4  # stopped mid-epoch 1, at step 5

    state = quiet(epochs=2, seed=3, callbacks=[TensorBoardLogger(tb, every_n_steps=2)]).fit(
        data, resume=checkpoints
    )
    scalars = read_scalars(tb)
    assert len(list(tb.glob("events.out.tfevents.*"))) == 2  # one event file per fit
    assert [s for s, _ in scalars["step/loss"]] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert [s for s, _ in scalars["step/lr"]] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert scalars["epoch/loss"] == [(e, f32(m["loss"])) for e, m in enumerate(state.history, 1)]


def test_under_gradient_accumulation_each_optimizer_step_is_written_once(
    tmp_path: Path, data: ImageSet
) -> None:
    recorder = StepRecorder()
    logger = TensorBoardLogger(tmp_path, every_n_steps=2)
    trainer = quiet(epochs=1, accumulate_grad_batches=3, callbacks=[logger, recorder])
    state = trainer.fit(data)  # 8 batches: groups of 3, 3 and 2, so 3 optimizer steps
    assert state.global_step == 3
    scalars = read_scalars(tmp_path)
    assert scalars["step/loss"] == [(2, f32(recorder.steps[2][0]))]
    assert scalars["step/lr"] == [(2, f32(recorder.steps[2][1]))]


@pytest.mark.parametrize("start", [0, 4])
def test_only_batches_that_step_the_optimizer_are_written(tmp_path: Path, start: int) -> None:
    # Under gradient accumulation (here groups of 3 batches) only the last batch of a group
    # steps the optimizer: the others end with global_step unchanged, also the first ones,
    # at step 0 or at the step a run resumes at (4, already written before the resume).
    logger = TensorBoardLogger(tmp_path, every_n_steps=2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    state: Any = SimpleNamespace(global_step=start, batch_loss=1.0, optimizer=optimizer)
    logger.on_fit_start(state)
    for batch in range(12):
        logger.on_batch_start(state)
        state.batch_loss = float(batch)
        if batch % 3 == 2:
            state.global_step += 1
        logger.on_batch_end(state)
    logger.on_fit_end(state)
    scalars = read_scalars(tmp_path)
    written = [start + 2, start + 4]  # 4 optimizer steps, every second one
    assert scalars["step/loss"] == [(start + 2, 5.0), (start + 4, 11.0)]
    assert scalars["step/lr"] == [(s, 0.5) for s in written]


def test_hooks_outside_a_fit_write_nothing_and_a_missing_optimizer_is_no_error(
    tmp_path: Path,
) -> None:
    logger = TensorBoardLogger(tmp_path, every_n_steps=1)
    state: Any = SimpleNamespace(epoch=1, global_step=1, batch_loss=0.5, optimizer=None)
    state.metrics = {"loss": 0.5}
    logger.on_batch_end(state)  # no on_fit_start yet: no writer, nothing to write to
    logger.on_epoch_end(state)
    logger.on_fit_end(state)
    assert list(tmp_path.iterdir()) == []
    logger.on_fit_start(state)
    logger.on_batch_start(state)
    state.global_step = 2
    logger.on_batch_end(state)
    logger.on_fit_end(state)
    assert read_scalars(tmp_path) == {"step/loss": [(2, 0.5)]}


def test_nan_metrics_are_left_out(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    state: Any = SimpleNamespace(epoch=1, metrics={"loss": 0.25, "val_loss": math.nan})
    logger.on_fit_start(state)
    logger.on_epoch_end(state)
    logger.on_exception(state)  # closes the file like on_fit_end
    assert logger._writer is None
    assert read_scalars(tmp_path) == {"epoch/loss": [(1, 0.25)]}


def test_the_name_tensorboard_makes_one_with_the_defaults(
    tmp_path: Path, tiny_train: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert BUILTIN["tensorboard"] is TensorBoardLogger
    made = create_callback("tensorboard")
    assert isinstance(made, TensorBoardLogger)
    assert (made.log_dir, made.every_n_steps) == (Path("runs/tensorboard"), 50)
    assert (made.order, made.rank_zero_only) == (86, True)
    assert repr(made) == "TensorBoardLogger(log_dir='runs/tensorboard', every_n_steps=50, order=86)"

    monkeypatch.chdir(tmp_path)
    trainer = quiet(epochs=1, callbacks=["tensorboard"])
    assert [cb for cb in trainer.callbacks if isinstance(cb, TensorBoardLogger)]
    trainer.fit(tiny_train)
    assert set(read_scalars(tmp_path / "runs" / "tensorboard")) >= {"epoch/loss", "epoch/lr"}


@pytest.mark.parametrize("every", [0, -1, True, 2.0])
def test_every_n_steps_must_be_a_positive_integer(every: Any) -> None:
    with pytest.raises(ValueError, match=r"every_n_steps must be .*>= 1.*; pass"):
        TensorBoardLogger(every_n_steps=every)


def test_without_tensorboard_the_fit_fails_naming_the_extra(
    tmp_path: Path, tiny_train: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    trainer = quiet(epochs=1, callbacks=[TensorBoardLogger(tmp_path / "tb")])
    with pytest.raises(ImportError, match=r'pip install "lenet5\[tensorboard\]"'):
        trainer.fit(tiny_train)
    assert not (tmp_path / "tb").exists()


def test_importing_the_callbacks_does_not_import_tensorboard() -> None:
    code = (
        "import sys, lenet5.training.callbacks, lenet5.training.plugins; "
        "prefixes = ('tensorboard', 'torch.utils.tensorboard'); "
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "[]"
