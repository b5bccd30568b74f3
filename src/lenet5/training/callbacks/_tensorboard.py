"""The built-in that writes a run's scalars as TensorBoard event files."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..state import TrainState, learning_rates
from ._base import Callback

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["TensorBoardLogger"]

#: What to install when tensorboard is missing (the extra pins a working version).
INSTALL_HINT = 'pip install "lenet5[tensorboard]"'


class TensorBoardLogger(Callback):
    """Write the epoch metrics and the step loss and learning rate for TensorBoard.

    After every epoch, each scalar of ``state.metrics`` is written as ``epoch/<name>`` at
    step ``state.epoch``; every ``every_n_steps`` optimisation steps, the batch loss and the
    learning rate of the first parameter group are written as ``step/loss`` and
    ``step/lr`` at step ``state.global_step`` (with several parameter groups, also
    ``step/lr_<name>`` for each group, as in the epoch metrics). View them with
    ``tensorboard --logdir LOG_DIR``.

    Each fit opens a new event file in ``log_dir`` (TensorBoard reads them all as one run),
    so a resumed run continues the curves from the restored step without keeping any state
    in the checkpoint.

    Args:
        log_dir: The folder to write the event files into; created if missing.
        every_n_steps: Steps between two ``step/*`` points. Reading the loss waits for the
            device, so a small value slows training down.

    Raises:
        ValueError: If ``every_n_steps`` is below 1.
    """

    # Next to CSVLogger (85): after the callbacks that add metrics, before Checkpoint (90),
    # so a checkpoint is only written once the epoch's points are on disk.
    order = 86
    rank_zero_only = True

    def __init__(
        self, log_dir: str | os.PathLike[str] = "runs/tensorboard", every_n_steps: int = 50
    ) -> None:
        # bool is an int, and `every_n_steps=True` is certainly a mistake.
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int):
            raise ValueError(
                f"every_n_steps must be an integer >= 1, got {every_n_steps!r}; "
                "pass e.g. every_n_steps=50"
            )
        if every_n_steps < 1:
            raise ValueError(
                f"every_n_steps must be >= 1, got {every_n_steps}; pass every_n_steps=1 to "
                "log every step, or a larger number to log less often"
            )
        self.log_dir = Path(log_dir)
        self.every_n_steps = every_n_steps
        self._writer: SummaryWriter | None = None
        # The global_step before the current batch. Under gradient accumulation only the
        # last batch of a group steps the optimizer; the others end with the step unchanged
        # and must write nothing (else a step, or the one a run resumes at, would be
        # written twice, and step 0 with the loss of a batch no optimizer step followed).
        self._step_before: int | None = None

    def on_fit_start(self, state: TrainState) -> None:
        # Imported here, not at module level: `import lenet5` must work without tensorboard,
        # which only runs that use this callback need.
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(
                f"TensorBoardLogger needs the tensorboard package ({exc}); install it with: "
                f"{INSTALL_HINT}"
            ) from exc
        self._close()  # a writer left open by an earlier fit that was never ended
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_batch_start(self, state: TrainState) -> None:
        self._step_before = state.global_step

    def on_batch_end(self, state: TrainState) -> None:
        writer, step = self._writer, state.global_step
        stepped = step != self._step_before
        if writer is None or not stepped or step % self.every_n_steps != 0:
            return
        # Written even when NaN: unlike a missing epoch metric, a NaN loss is news (the run
        # diverged), and reading it is this callback's one wait for the device per point.
        writer.add_scalar("step/loss", state.batch_loss, step)
        if state.optimizer is not None:
            # lr (the first group's) and, with several parameter groups, lr_<name> for each.
            for name, rate in learning_rates(state.optimizer).items():
                writer.add_scalar(f"step/{name}", rate, step)

    def on_epoch_end(self, state: TrainState) -> None:
        writer = self._writer
        if writer is None:
            return
        for name, value in state.metrics.items():
            value = float(value)
            # NaN stands for "not measured this epoch"; TensorBoard would draw it as a gap
            # or break the chart's scale, so such points are left out.
            if not math.isnan(value):
                writer.add_scalar(f"epoch/{name}", value, state.epoch)
        # Once per epoch, so the points are on disk (and visible in TensorBoard) while the
        # run goes on, without a flush per step.
        writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        self._close()

    def on_exception(self, state: TrainState) -> None:
        self._close()  # keep what was written up to the failure

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(log_dir={str(self.log_dir)!r}, "
            f"every_n_steps={self.every_n_steps}, order={self.order})"
        )
