"""The built-ins that report a run: the console line, the progress bar and the CSV file."""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from pathlib import Path
from typing import IO, Any, ClassVar

from ..._io import atomic_write_text
from ..state import TrainState
from ._base import Callback

__all__ = ["CSVLogger", "ConsoleLogger", "ProgressBar"]


class ConsoleLogger(Callback):
    """Print the reference log line after each validated epoch.

    ``Epoch 20 | Loss: 0.0093 | Validation Accuracy: 98.81%``, where ``Loss`` is the mean
    training loss of the epoch. Silent unless ``config.verbose`` and on the main process.

    Args:
        stream: Where to print; standard output by default.
    """

    order = 80
    rank_zero_only = True

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def on_epoch_end(self, state: TrainState) -> None:
        if not (state.config.verbose and state.is_main_process and state.validate):
            return
        line = f"Epoch {state.epoch} | Loss: {state.metrics['loss']:.4f}"
        if "val_accuracy" in state.metrics:
            line += f" | Validation Accuracy: {state.metrics['val_accuracy']:.2f}%"
        if state.stop_requested:
            line += f" | stopped: {state.stop_reason}"
        print(line, file=self.stream or sys.stdout, flush=True)


class ProgressBar(Callback):
    """A tqdm progress bar per epoch with the latest loss and the epoch's training accuracy.

    Drawn only on an interactive terminal (and when ``config.verbose``); the loss shown is
    read from the device every ``refresh`` steps, not every step.

    Args:
        refresh: Steps between updates of the displayed loss.
        force: Draw even when standard error is not a terminal.
    """

    order = 100
    rank_zero_only = True

    def __init__(self, refresh: int = 50, force: bool = False) -> None:
        self.refresh = refresh
        self.force = force
        self._bar: Any = None

    def _enabled(self, state: TrainState) -> bool:
        return bool(
            state.config.verbose and state.is_main_process and (self.force or sys.stderr.isatty())
        )

    def on_epoch_start(self, state: TrainState) -> None:
        if not self._enabled(state):
            return
        # Imported when a bar is drawn: runs without a terminal never load tqdm.
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=state.steps_per_epoch,
            desc=f"Epoch {state.epoch}/{state.config.epochs}",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def on_batch_end(self, state: TrainState) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.update(1)
        if bar.n % self.refresh == 0:
            bar.set_postfix(
                loss=f"{state.batch_loss:.4f}", acc=f"{state.epoch_accuracy:.2f}%", refresh=False
            )

    def on_epoch_end(self, state: TrainState) -> None:
        self._close()

    def on_fit_end(self, state: TrainState) -> None:
        self._close()  # a run stopped mid-epoch gets no on_epoch_end

    def on_exception(self, state: TrainState) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class CSVLogger(Callback):
    """Write one CSV row per epoch: epoch, step, loss, lr, validation metrics, time.

    Any other metric gets a column after those, in name order (``lr_<name>`` of each
    parameter group, named validation sets, a callback's own); a row without it leaves
    the cell empty. The whole file is rewritten atomically after every epoch, so a crash
    never leaves a half-written row, and on resume the rows come back from the checkpoint.

    Args:
        path: The CSV file to write.
    """

    order = 85
    rank_zero_only = True
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "epoch",
        "global_step",
        "loss",
        "accuracy",
        "lr",
        "val_loss",
        "val_accuracy",
        "epoch_seconds",
    )

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.is_main_process:
            return
        row = {"epoch": float(state.epoch), "global_step": float(state.global_step)}
        row.update(state.metrics)
        self.rows.append(row)
        columns = list(self.COLUMNS) + sorted({k for r in self.rows for k in r} - set(self.COLUMNS))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _csv_value(k, r.get(k)) for k in columns})
        atomic_write_text(self.path, buffer.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]


def _csv_value(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key in ("epoch", "global_step"):
        return str(int(value))
    return f"{value:.6g}"
