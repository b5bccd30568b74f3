"""The callbacks that report a run: the console line, the progress bar and the CSV file."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from helpers import quiet
from lenet5 import Callback, ImageSet, Trainer, TrainState
from lenet5.training import ConsoleLogger, CSVLogger, ProgressBar, Seeding

LOG_LINE = re.compile(r"^Epoch (\d+) \| Loss: \d+\.\d{4} \| Validation Accuracy: \d{1,3}\.\d{2}%$")


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


def test_a_progress_bar_can_be_forced_without_a_terminal(
    tiny_train: ImageSet, capsys: pytest.CaptureFixture[str]
) -> None:
    Trainer(epochs=1, device="cpu", callbacks=[ProgressBar(refresh=2, force=True)]).fit(tiny_train)
    assert "Epoch 1/1" in capsys.readouterr().err
