"""TrainState: what every callback hook sees, and what a checkpoint restores.

The state is data: it holds every value of one fit and no reference back to the
:class:`~lenet5.Trainer` that runs it, so a callback sees everything through it and nothing
here imports the trainer or the callbacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from ..data import MNIST_MEAN, MNIST_STD
from .config import TrainConfig
from .distributed import ProcessGroup

if TYPE_CHECKING:
    from ..augment import Augmentation
    from ..data import ImageSet

__all__ = ["Override", "StatefulCallback", "TrainState", "group_key", "learning_rates"]


def group_key(index: int, group: Mapping[str, Any]) -> str:
    """How a parameter group is named in the metrics (``lr_<key>``): its ``name``, or its
    index in ``optimizer.param_groups``."""
    name = group.get("name")
    return name if isinstance(name, str) else str(index)


def learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The optimizer's learning rates as metrics: ``lr``, the first parameter group's, and
    with several groups ``lr_<name>`` for each (its ``name``, or its index)."""
    groups = optimizer.param_groups
    rates = {"lr": float(groups[0]["lr"])}
    if len(groups) > 1:
        rates.update({f"lr_{group_key(i, g)}": float(g["lr"]) for i, g in enumerate(groups)})
    return rates


@dataclass(frozen=True)
class Override:
    """A setting that a resumed run changed, applied from the step it resumed at.

    Attributes:
        setting: The :class:`~lenet5.TrainConfig` field.
        before: Its value in the checkpoint (as :meth:`~lenet5.TrainConfig.to_dict` writes it).
        after: Its value from then on.
        step: The global step the run resumed at: steps up to it ran with ``before``, the
            steps after it with ``after``.
    """

    setting: str
    before: Any
    after: Any
    step: int

    def to_dict(self) -> dict[str, Any]:
        """The override as plain values (for JSON and for ``trainer.pt``)."""
        return dataclasses.asdict(self)


class StatefulCallback(Protocol):
    """What a checkpoint needs of a callback: its key and its state, both ways
    (:class:`~lenet5.Callback` has all three)."""

    @property
    def key(self) -> str: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(eq=False)
class TrainState:
    """The mutable state of one ``fit`` call, passed to every hook.

    The model and the optimizer are fixed for the whole fit: :attr:`model` and
    :attr:`optimizer` cannot be assigned once the fit has built its step (change the model's
    weights or the optimizer's ``param_groups`` in place instead). The batch properties
    (:attr:`inputs`, :attr:`targets`, :attr:`logits`, :attr:`loss`) are how a callback
    shapes a step: see :class:`~lenet5.Callback` for which hook may replace which. They
    and :attr:`optimizer` are typed non-optional, so hooks need no ``None`` checks; read
    where they do not exist yet, they raise and say from which hook on they do.

    Attributes:
        model: The model being trained (already on ``device`` after ``on_fit_start``): the
            module itself (``trainer.model``), never a compiled or DDP wrapper.
        callbacks: The fit's callbacks, in the order they run (a checkpoint saves and
            restores the state of each).
        config: The run's :class:`~lenet5.TrainConfig`.
        device: The training device; callbacks may change it in ``on_fit_start``.
        scheduler: The learning-rate scheduler, or ``None``; stepped after every optimizer
            step.
        ema: The exponential moving average of the model (``config.ema_decay``), or ``None``.
        scaler: The gradient scaler of ``precision="16-mixed"``, or ``None``.
        train_data: The training data: an :class:`~lenet5.data.ImageSet` (fast path) or a
            :class:`~torch.utils.data.DataLoader` (the one given, or one the trainer built).
        val_sets: Every validation set by name (``{"": data}`` when one was given without
            a name); its metrics are ``val_<name>_loss`` and ``val_<name>_accuracy``, and
            ``val_loss`` / ``val_accuracy`` are the first set's. A callback that moves the
            data (:class:`~lenet5.DevicePlacement`) replaces the sets here.
        generator: The random number generator that shuffles (and augments) batches.
        epoch: The current epoch, counted from 1 (0 before the first epoch starts).
        global_step: Optimizer steps taken so far (with ``accumulate_grad_batches = k``, one
            per ``k`` batches).
        steps_per_epoch: Batches in one epoch (``0`` for data without a length).
        metrics: Scalars of the latest epoch: ``loss`` (mean training loss), ``accuracy``
            (training accuracy in percent, on the augmented batches), and after a
            validation ``val_loss`` and ``val_accuracy`` (percent), ``lr``, and anything
            callbacks add.
        history: One ``metrics`` dict per finished epoch.
        validate: Set to ``True`` (e.g. in ``on_epoch_start``) to validate at the end of this epoch.
        batch_in_epoch: Batches done in the current epoch (``steps_per_epoch`` once it is complete).
        exception: The exception that ended the fit, in ``on_exception``.
        rank: This process's rank in distributed training (0 otherwise).
        world_size: Number of training processes (1 otherwise).
        local_rank: This process's rank on its machine (its CUDA device index under DDP).
        process_group: This process's place among the training processes (joined after
            ``on_fit_start``; a group of one otherwise).
        train_size: Number of training examples (all processes together).
        norm: ``(mean, std)`` that normalises ``uint8`` training and validation images: the
            training :class:`~lenet5.data.ImageSet`'s, or MNIST's for other data.
        augment: The augmentation that ``config.augment`` names, or ``None``.
        augment_seed: The seed from which each step's augmentation draws are derived (the
            shuffling generator's initial seed, known once a resumed run is restored).
        overrides: The settings changed on resume, each with the step it took effect at
            (:class:`Override`): those of earlier resumes, read
            from the checkpoint, then this fit's; empty for a run never resumed with changes.
        grad_norm: The gradients' total 2-norm before clipping, as a device tensor, at the
            latest optimizer step of a run with ``grad_clip_norm`` (``None`` without).
        fit_index: Which of its trainer's fits this is (1 for the first).
        resume_from: The ``resume=`` path of this fit, or ``None`` for a new run.
    """

    model: nn.Module
    config: TrainConfig
    device: torch.device
    callbacks: Sequence[StatefulCallback] = ()
    train_data: ImageSet | torch.utils.data.DataLoader[Any] | None = None
    val_sets: dict[str, Any] = field(default_factory=dict)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None
    scaler: torch.amp.GradScaler | None = None
    _inputs: torch.Tensor | None = field(default=None, repr=False)
    _targets: torch.Tensor | None = field(default=None, repr=False)
    _logits: torch.Tensor | None = field(default=None, repr=False)
    _loss: torch.Tensor | None = field(default=None, repr=False)
    _labels: torch.Tensor | None = field(default=None, repr=False)
    grad_norm: torch.Tensor | None = field(default=None, repr=False)
    generator: torch.Generator = field(default_factory=torch.Generator)
    epoch: int = 0
    global_step: int = 0
    steps_per_epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    validate: bool = False
    exception: BaseException | None = None
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    batch_in_epoch: int = 0
    process_group: ProcessGroup = field(default_factory=ProcessGroup, repr=False)
    train_size: int = 0
    norm: tuple[float, float] = (MNIST_MEAN, MNIST_STD)
    augment: Augmentation | None = field(default=None, repr=False)
    augment_seed: int = 0
    overrides: list[Override] = field(default_factory=list)
    fit_index: int = 1
    resume_from: Path | None = None
    _batch_loss: torch.Tensor | None = field(default=None, repr=False)
    _epoch_loss_sum: torch.Tensor | None = field(default=None, repr=False)
    _epoch_correct: torch.Tensor | None = field(default=None, repr=False)
    _epoch_seen: int = field(default=0, repr=False)
    _epoch_generator_state: torch.Tensor | None = field(default=None, repr=False)
    _stop_reason: str | None = field(default=None, repr=False)
    _optimizer: torch.optim.Optimizer | None = field(default=None, repr=False)
    _exhausted: bool = field(default=False, repr=False)
    _epoch_torch_rng: torch.Tensor | None = field(default=None, repr=False)
    _norm_unknown: bool = field(default=False, repr=False)
    _norm_guessed: bool = field(default=False, repr=False)
    _locked: bool = field(default=False, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "model":
            self._refuse_during_fit("model", "change its weights in place (load_state_dict)")
        object.__setattr__(self, name, value)

    @property
    def val_data(self) -> Any:
        """The first validation set (of :attr:`val_sets`), or ``None``."""
        return next(iter(self.val_sets.values()), None)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, built after ``on_fit_start`` (so that a device change applies).

        Raises:
            RuntimeError: If read in ``on_fit_start``, before it exists.
        """
        if self._optimizer is None:
            raise RuntimeError(
                "the optimizer is built after on_fit_start; read state.optimizer in a later "
                "hook (on_epoch_start, on_batch_start...)"
            )
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self._refuse_during_fit(
            "optimizer",
            "pass optimizer= to the Trainer (a name or a callable), or change "
            "state.optimizer.param_groups in place",
        )
        self._optimizer = optimizer

    @property
    def learning_rates(self) -> dict[str, float]:
        """The current learning rates, as the epoch metrics record them: ``lr`` (the first
        parameter group's) and, with several groups, ``lr_<name>`` for each group (its
        ``name``, or its index in ``optimizer.param_groups``).

        Raises:
            RuntimeError: If read in ``on_fit_start``, before the optimizer exists.
        """
        return learning_rates(self.optimizer)

    # The batch of the current step. Typed non-optional, so that hooks need no checks: read
    # outside the part of a step where it exists, each raises and says when it does.

    @property
    def inputs(self) -> torch.Tensor:
        """The current batch's model input ``(N, C, H, W)``, normalised and augmented; set
        before ``on_batch_start``, which may replace it (mixup)."""
        return self._batch_field("_inputs", "inputs", "from on_batch_start on")

    @inputs.setter
    def inputs(self, value: torch.Tensor) -> None:
        self._inputs = value

    @property
    def targets(self) -> torch.Tensor:
        """The current batch's targets, class indices ``(N,)`` or probabilities ``(N, C)``;
        ``on_batch_start`` may replace them (soft targets)."""
        return self._batch_field("_targets", "targets", "from on_batch_start on")

    @targets.setter
    def targets(self, value: torch.Tensor) -> None:
        self._targets = value

    @property
    def labels(self) -> torch.Tensor:
        """The current batch's targets as the data gave them, whatever a callback set as
        :attr:`targets` (the true labels for a distillation loss); the training accuracy
        counts against them."""
        return self._batch_field("_labels", "labels", "from on_batch_start on")

    @property
    def logits(self) -> torch.Tensor:
        """The model's output for :attr:`inputs`, from ``on_before_backward`` on."""
        return self._batch_field("_logits", "logits", "from on_before_backward on")

    @logits.setter
    def logits(self, value: torch.Tensor) -> None:
        self._logits = value

    @property
    def loss(self) -> torch.Tensor:
        """The scalar loss that is back-propagated, from ``on_before_backward`` on, which
        may replace it (an auxiliary loss) with a scalar tensor that has a graph."""
        return self._batch_field("_loss", "loss", "from on_before_backward on")

    @loss.setter
    def loss(self, value: torch.Tensor) -> None:
        self._loss = value

    @property
    def in_step(self) -> bool:
        """Whether a batch is being trained on (its :attr:`inputs` and :attr:`targets` set)."""
        return self._inputs is not None

    def _batch_field(self, attr: str, name: str, when: str) -> torch.Tensor:
        value: torch.Tensor | None = getattr(self, attr)
        if value is None:
            raise RuntimeError(f"state.{name} exists during a training step, {when}")
        return value

    def _refuse_during_fit(self, name: str, instead: str) -> None:
        if self.__dict__.get("_locked", False):
            raise AttributeError(
                f"state.{name} cannot be replaced during a fit: the step, the checkpoints "
                f"and the metrics all use the one built for it; {instead}"
            )

    def begin_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch: zero its running totals, note where the
        shuffling generator stands (a resumed epoch rewinds to it)."""
        self.epoch = epoch
        self.batch_in_epoch = 0
        self._epoch_loss_sum = torch.zeros((), device=self.device)
        self._epoch_correct = torch.zeros((), dtype=torch.long, device=self.device)
        self._epoch_seen = 0
        self._epoch_generator_state = self.generator.get_state()
        self._exhausted = False

    @property
    def batch_loss(self) -> float:
        """Loss of the latest batch. Reading it waits for the device, so read it sparingly."""
        if self._batch_loss is None:
            return float("nan")
        return float(self._batch_loss)

    @property
    def epoch_accuracy(self) -> float:
        """Training accuracy (percent) over the batches of this epoch so far; waits for the
        device, so read it sparingly."""
        if self._epoch_correct is None or not self._epoch_seen:
            return float("nan")
        return 100.0 * float(self._epoch_correct) / self._epoch_seen

    @property
    def batch_index(self) -> int:
        """Batches trained so far over the whole run, this one included once it has run;
        with ``accumulate_grad_batches = 1`` this equals :attr:`global_step`."""
        if self.steps_per_epoch == 0:  # data without a length: unique, if not consecutive
            return self.epoch * 2**32 + self.batch_in_epoch
        return max(self.epoch - 1, 0) * self.steps_per_epoch + self.batch_in_epoch

    @property
    def batch_loss_tensor(self) -> torch.Tensor | None:
        """Loss of the latest batch as a device tensor (no synchronisation)."""
        return self._batch_loss

    @property
    def epoch_complete(self) -> bool:
        """Whether every batch of the current epoch has run (False after a stop mid-epoch)."""
        if self.steps_per_epoch == 0:  # data without a length: known when it runs out
            return self._exhausted
        return self._exhausted or self.batch_in_epoch >= self.steps_per_epoch

    @property
    def is_main_process(self) -> bool:
        """True on the process that logs and writes files (rank 0)."""
        return self.rank == 0

    def stop(self, reason: str = "stopped by a callback") -> None:
        """Ask the trainer to stop cleanly after the current batch.

        Called during an epoch, the epoch is cut short: it gets no validation and no
        ``on_epoch_end``, but ``on_fit_end`` runs, and a :class:`~lenet5.callbacks.Checkpoint`
        saves a mid-epoch checkpoint from which a resumed run continues exactly where this
        one stopped. Called in ``on_validation_end`` or ``on_epoch_end``, training ends after
        the current epoch.

        Under DDP it may be called on any one process (a signal handler, say): the
        processes agree on it every :data:`~lenet5.training.distributed.STOP_CHECK_EVERY` batches,
        after the last batch of an epoch and after every epoch, and all of them stop after
        the same batch with the reason of the lowest-ranked process that asked.
        """
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`stop` was called (on this process; under DDP the others learn of
        it at the next agreement)."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        """The reason given to :meth:`stop`, or ``None``."""
        return self._stop_reason
