"""The Trainer: it sets a fit up, then loops over the epochs; it holds nothing else.

Setting up (:mod:`~lenet5.training._fit_setup`) builds the fit's
:class:`~lenet5.training.state.TrainState` (which keeps every per-fit value), joins the
process group under DDP, feeds the data (:mod:`~lenet5.training._feed`), builds the
optimizer, schedule, EMA and step, and restores a checkpoint when resuming. The loop calls the hooks
around each epoch. Everything else has its own module: the steps of one epoch and validation
(:mod:`~lenet5.training.loop`), one optimisation step (:mod:`~lenet5.training.engine`), the
checkpoint format (:mod:`~lenet5.training.checkpoint`), evaluation (:mod:`lenet5.inference`),
and what happens around the loop (device, seeding, validation schedule, logging,
checkpoints, early stopping), which is a callback (:mod:`~lenet5.training.callbacks`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Generic, overload

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from typing_extensions import TypeVar

from ..data import ImageSet
from ..inference import EvalResult, evaluate, predict_logits
from ..model import LeNet5
from ._fit_setup import build_step, new_state, prepare_model
from .callbacks import (
    HOOKS,
    Callback,
    ConsoleLogger,
    DevicePlacement,
    PeriodicValidation,
    ProgressBar,
    Seeding,
    Timer,
)
from .checkpoint import CheckpointConnector
from .config import TrainConfig
from .distributed import ProcessGroup, launch_ranks, lost_contact, resolve_strategy
from .engine import Hook, LossFn, TrainStep
from .loop import run_epoch, stop_agreed, validate
from .plugins import resolve_callbacks
from .state import TrainState

#: The type of the trained model (``Trainer(LeNet5())`` is a ``Trainer[LeNet5]``).
ModelT = TypeVar("ModelT", bound=nn.Module, default=nn.Module)
#: What ``fit``, ``evaluate`` and ``predict`` take as data.
Data = ImageSet | Dataset[Any] | DataLoader[Any] | Iterable[Any]

__all__ = ["Data", "ModelT", "Trainer"]


class Trainer(Generic[ModelT]):
    """Trains, evaluates and predicts with a classifier, shaped by callbacks.

    Args:
        model: The model to train; a fresh :class:`~lenet5.LeNet5` (initialised from
            ``seed``) when ``None``. Any ``nn.Module`` that maps ``(N, C, H, W)`` to logits
            ``(N, classes)`` works (a compiled one too).
        loss_fn: ``loss_fn(logits, targets) -> scalar tensor``, where targets are class
            indices ``(N,)`` or probabilities ``(N, C)``; the cross-entropy (with
            ``label_smoothing``) by default, which takes both.
        callbacks: Callback objects and/or names of built-in or plugin callbacks. A callback
            that is an instance of a default callback's class replaces that default.
        config: A :class:`~lenet5.TrainConfig`; keyword arguments override its fields.
        default_callbacks: Add the defaults (:class:`Seeding`, :class:`Timer`,
            :class:`DevicePlacement`, :class:`PeriodicValidation`, :class:`ConsoleLogger`,
            :class:`ProgressBar`) unless replaced.
        **kwargs: Fields of :class:`~lenet5.TrainConfig` (``epochs``, ``batch_size``, ``lr``...).

    Attributes:
        model: The model being trained (typed as given: ``Trainer(LeNet5()).model`` is a
            ``LeNet5``).
        loss_fn: The training loss.
        config: The settings of every fit.
        callbacks: The callbacks, in the order they run.
        state: The :class:`~lenet5.training.state.TrainState` of the latest fit (``None``
            before the first).

    Every :meth:`fit` is a run of its own: a second one continues from the current
    weights with a new optimizer, schedule and epoch count, and its checkpoints never
    overwrite the first's (see :class:`~lenet5.Checkpoint`).

    Raises:
        ConfigError: For an unknown option or a bad value.
        CallbackError: For an unknown callback name or a malformed callback.

    Example:
        >>> from lenet5 import Trainer
        >>> trainer = Trainer(epochs=1, verbose=False)
        >>> trainer.config.batch_size
        32
    """

    @overload
    def __init__(
        self: Trainer[LeNet5],
        model: None = None,
        *,
        loss_fn: LossFn | None = None,
        callbacks: Iterable[Callback | str] = (),
        config: TrainConfig | None = None,
        default_callbacks: bool = True,
        **kwargs: Any,
    ) -> None: ...

    @overload
    def __init__(
        self,
        model: ModelT,
        *,
        loss_fn: LossFn | None = None,
        callbacks: Iterable[Callback | str] = (),
        config: TrainConfig | None = None,
        default_callbacks: bool = True,
        **kwargs: Any,
    ) -> None: ...

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        loss_fn: LossFn | None = None,
        callbacks: Iterable[Callback | str] = (),
        config: TrainConfig | None = None,
        default_callbacks: bool = True,
        **kwargs: Any,
    ) -> None:
        if config is None:
            self.config = TrainConfig.from_kwargs(kwargs)
        else:
            # Copy the fields as they are: to_dict() would turn a callable optimizer or
            # scheduler into its name, which is not a valid setting.
            fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            self.config = TrainConfig.from_kwargs({**fields, **kwargs}) if kwargs else config
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(
                f"loss_fn must be a callable (logits, targets) -> loss, got {loss_fn!r}"
            )
        if model is None:
            # Initialise from the seed without touching the global random state.
            with torch.random.fork_rng(devices=[]):
                if self.config.seed is not None:
                    torch.manual_seed(self.config.seed)
                model = LeNet5()
        self.model: ModelT = model  # type: ignore[assignment]
        self.loss_fn: LossFn | None = loss_fn
        self.callbacks: list[Callback] = _ordered(resolve_callbacks(callbacks), default_callbacks)
        # Only callbacks that save state can collide in a checkpoint.
        keys = [cb.key for cb in self.callbacks if type(cb).state_dict is not Callback.state_dict]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            warnings.warn(
                f"several callbacks share the checkpoint key {duplicates}; give each a "
                "distinct `key` property so that their states are saved separately",
                stacklevel=2,
            )
        self.state: TrainState | None = None
        self.fits = 0
        self._bind_hooks(rank=0)

    def _bind_hooks(self, rank: int) -> None:
        """The overridden hooks of each kind, in order; rank-zero-only ones only on rank 0."""
        self._hooks: dict[str, list[Hook]] = {
            hook: [
                getattr(cb, hook)
                for cb in self.callbacks
                if getattr(type(cb), hook) is not getattr(Callback, hook)
                and (rank == 0 or not cb.rank_zero_only)
            ]
            for hook in HOOKS
        }

    def __repr__(self) -> str:
        lines = [f"Trainer(model={type(self.model).__name__}, config={self.config})"]
        lines.append(self.describe_callbacks())
        return "\n".join(lines)

    def describe_callbacks(self) -> str:
        """The callbacks in the order they run, one per line with their ``order``."""
        rows = [f"  {cb.order:>5}  {cb!r}" for cb in self.callbacks]
        return "callbacks (order, callback):\n" + "\n".join(rows)

    def _call(self, hook: str, state: TrainState) -> None:
        for fn in self._hooks[hook]:
            fn(state)

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        train: Data,
        val: Data | Mapping[str, Data] | None = None,
        *,
        resume: str | os.PathLike[str] | None = None,
    ) -> TrainState:
        """Train the model.

        Args:
            train: Training data: an :class:`~lenet5.data.ImageSet` (fast path, resident on
                the device), a map-style dataset or list of ``(image, target)`` (batched
                and shuffled by the trainer), or a DataLoader or IterableDataset (used as
                given). Targets are class indices or probability vectors.
            val: Validation data in any of those forms, a dict of name to data (metrics
                ``val_<name>_loss`` / ``val_<name>_accuracy``, and ``val_loss`` /
                ``val_accuracy`` of the first), or ``None``. With ``None`` and
                ``config.val_split > 0``, that many training examples are held out instead.
            resume: A checkpoint folder (or a folder of checkpoints, or a run folder) to
                continue from; the run then ends as if it had never stopped.

        Returns:
            The final :class:`~lenet5.training.state.TrainState` (metrics, history...).

        Raises:
            DataError: For data of a form it cannot use, or empty data.
            DeviceError: For a precision or device the machine cannot run.
        """
        ddp = resolve_strategy(self.config.strategy) == "ddp"
        self.fits += 1
        state = new_state(self, train, val, resume)
        if ddp:
            state.rank, state.world_size, state.local_rank = launch_ranks()
        self._bind_hooks(state.rank)
        self.state = state
        channels_last = False
        try:
            self._call("on_fit_start", state)
            if ddp:
                state.process_group = ProcessGroup.join(state.device.type, self.config.dist_timeout)
            channels_last = prepare_model(state)
            self._run(state, build_step(state, train, self.loss_fn, self._hooks), resume)
        except BaseException as exc:
            failure = self._fail(state, exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            state._locked = False
            if channels_last:
                state.model.to(memory_format=torch.contiguous_format)
            state.process_group.leave()
        return state

    def _run(
        self, state: TrainState, step: TrainStep, resume: str | os.PathLike[str] | None
    ) -> None:
        """Restore (when resuming), train the epochs, end the fit."""
        if resume is not None:
            # stacklevel: a warning about a damaged checkpoint passed over names fit's caller.
            CheckpointConnector(state).restore(resume, stacklevel=4)
        # After the restore: an unseeded run's generator seed comes back from it.
        state.augment_seed = state.generator.initial_seed()
        state.model.train()
        state._locked = True
        self._loop(state, step)
        self._call("on_fit_end", state)
        if state.ema is not None:
            # The averaged weights are the result; the raw ones stay in checkpoints.
            state.model.load_state_dict(state.ema.module.state_dict())
        state.process_group.barrier()  # no process leaves while another still needs it

    def _loop(self, state: TrainState, step: TrainStep) -> None:
        """The epochs, from the first one not yet done, with the hooks around each."""
        first = state.epoch + 1 if state.epoch_complete else state.epoch
        for epoch in range(first, self.config.epochs + 1):
            if state.epoch_complete or epoch != first:
                # A new epoch; otherwise a resumed one, whose progress the restore set.
                state.begin_epoch(epoch)
            state.validate = False
            state.metrics = {}
            self._call("on_epoch_start", state)
            run_epoch(state, step, self._hooks)
            if not state.epoch_complete:
                break  # stopped mid-epoch: no validation, no on_epoch_end
            state.metrics["lr"] = float(state.optimizer.param_groups[0]["lr"])
            if state.validate and state.val_sets:
                state.metrics.update(validate(state))
                self._call("on_validation_end", state)
            state.history.append(state.metrics)
            self._call("on_epoch_end", state)
            if stop_agreed(state):
                break

    def _fail(self, state: TrainState, exc: BaseException) -> BaseException:
        """Run the ``on_exception`` hooks; the exception to raise (explained under DDP)."""
        failure = lost_contact(exc, state.rank) if state.world_size > 1 else exc
        state.exception = failure
        for fn in self._hooks["on_exception"]:
            try:
                fn(state)
            except Exception as hook_exc:  # never hide the original failure
                warnings.warn(f"{fn!r} failed in on_exception: {hook_exc}", stacklevel=3)
        return failure

    # ------------------------------------------------- evaluate and predict

    def _norm(self) -> tuple[float, float] | None:
        """``(mean, std)`` for uint8 data without its own: the config's, else the latest
        fit's unless that one was a guess (``None``: MNIST's, with a warning)."""
        config = self.config
        if config.mean is not None and config.std is not None:
            return config.mean, config.std
        if self.state is not None and not self.state._norm_guessed:
            return self.state.norm
        return None

    def evaluate(self, data: Data, *, batch_size: int | None = None) -> EvalResult:
        """Evaluate the model: mean loss, accuracy and confusion matrix (see
        :func:`lenet5.inference.evaluate`).

        Args:
            data: Labelled data in any form :meth:`fit` takes.
            batch_size: Examples per forward pass (``config.eval_batch_size`` by default).

        Returns:
            An :class:`~lenet5.inference.EvalResult`.
        """
        return evaluate(
            self.model,
            self._configured(data),
            batch_size=batch_size or self.config.eval_batch_size,
            norm=self._norm(),
        )

    def predict(self, data: Data | torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """The model's logits for every image of ``data``: ``(N, C)`` on the CPU, in order.

        Args:
            data: Any form :meth:`fit` takes (labels are not needed: a dataset's items may
                be images alone), or a ``uint8`` / float image tensor ``(N, H, W)`` or
                ``(N, 1, H, W)``. ``uint8`` images are normalised as :meth:`evaluate` does;
                float ones are used as they are.
            batch_size: Images per forward pass (``config.eval_batch_size`` by default).

        Returns:
            A float32 tensor of logits (``.argmax(1)`` gives the classes,
            ``.softmax(1)`` the probabilities).
        """
        return predict_logits(
            self.model,
            self._configured(data),
            batch_size=batch_size or self.config.eval_batch_size,
            norm=self._norm(),
        )

    def _configured(self, data: Any) -> Any:
        """An ImageSet with the config's ``mean``/``std`` in place of its own, when set."""
        config = self.config
        if isinstance(data, ImageSet) and config.mean is not None and config.std is not None:
            return dataclasses.replace(data, mean=config.mean, std=config.std)
        return data


def _ordered(user: list[Callback], add_defaults: bool) -> list[Callback]:
    """The user's callbacks and the defaults they do not replace, sorted by ``order``."""
    defaults: list[Callback] = []
    if add_defaults:
        for default in (
            Seeding(),
            Timer(),
            DevicePlacement(),
            PeriodicValidation(),
            ConsoleLogger(),
            ProgressBar(),
        ):
            if not any(isinstance(cb, type(default)) for cb in user):
                defaults.append(default)
    # sorted() is stable: equal orders keep defaults first, then the user's list order.
    return sorted(defaults + user, key=lambda cb: cb.order)
