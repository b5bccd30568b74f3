"""The Trainer: it sets a fit up, then loops over the epochs; it holds nothing else.

Setting up builds the fit's :class:`~lenet5.training.state.TrainState` (which keeps every
per-fit value), joins the process group under DDP, feeds the data, builds the optimizer,
schedule, EMA and step, and restores a checkpoint when resuming. The loop calls the hooks
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
from collections.abc import Iterable, Sized
from typing import Any, cast

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from ..augment import parse_augment
from ..data import DataError, ImageSet, as_image_set, collate
from ..inference import EvalResult, evaluate
from ..model import LeNet5
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
from .distributed import (
    ProcessGroup,
    ShardedBatchSampler,
    launch_ranks,
    lost_contact,
    resolve_strategy,
    steps_per_epoch,
    wrap_ddp,
)
from .engine import TrainStep
from .loop import Hook, run_epoch, stop_agreed, validate
from .optim import build_optimizer, build_scheduler
from .plugins import resolve_callbacks
from .state import TrainState

__all__ = ["Trainer"]


class Trainer:
    """Trains and evaluates a classifier with callbacks.

    Args:
        model: The model to train; a fresh :class:`~lenet5.LeNet5` (initialised from
            ``seed``) when ``None``. Any ``nn.Module`` that maps ``(N, C, H, W)`` to logits works.
        callbacks: Callback objects and/or names of built-in or plugin callbacks. A callback
            that is an instance of a default callback's class replaces that default.
        config: A :class:`~lenet5.TrainConfig`; keyword arguments override its fields.
        default_callbacks: Add the defaults (:class:`Seeding`, :class:`Timer`,
            :class:`DevicePlacement`, :class:`PeriodicValidation`, :class:`ConsoleLogger`,
            :class:`ProgressBar`) unless replaced.
        **kwargs: Fields of :class:`~lenet5.TrainConfig` (``epochs``, ``batch_size``, ``lr``...).

    Attributes:
        model: The model being trained.
        config: The settings of every fit.
        callbacks: The callbacks, in the order they run.
        state: The :class:`~lenet5.training.state.TrainState` of the latest fit (``None``
            before the first).

    Raises:
        ConfigError: For an unknown option or a bad value.
        CallbackError: For an unknown callback name or a malformed callback.

    Example:
        >>> from lenet5 import Trainer
        >>> trainer = Trainer(epochs=1, verbose=False)
        >>> trainer.config.batch_size
        32
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
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
        if model is None:
            # Initialise from the seed without touching the global random state.
            with torch.random.fork_rng(devices=[]):
                if self.config.seed is not None:
                    torch.manual_seed(self.config.seed)
                model = LeNet5()
        self.model: nn.Module = model
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
        train: ImageSet | Dataset[Any],
        val: ImageSet | Dataset[Any] | None = None,
        *,
        resume: str | os.PathLike[str] | None = None,
    ) -> TrainState:
        """Train the model.

        Args:
            train: Training data: an :class:`~lenet5.data.ImageSet` (fast path, resident on
                the device) or any map-style dataset of ``(image, label)``.
            val: Validation data, or ``None``. With ``None`` and ``config.val_split > 0``,
                that many training examples are held out instead.
            resume: A checkpoint folder (or a folder of checkpoints, or a run folder) to
                continue from; the run then ends as if it had never stopped.

        Returns:
            The final :class:`~lenet5.training.state.TrainState` (metrics, history...).
        """
        ddp = resolve_strategy(self.config.strategy) == "ddp"
        state = self._new_state(train, val)
        if ddp:
            state.rank, state.world_size, state.local_rank = launch_ranks()
        self._bind_hooks(state.rank)
        self.state = state
        try:
            self._call("on_fit_start", state)
            if ddp:
                state.process_group = ProcessGroup.join(state.device.type, self.config.dist_timeout)
            step = self._set_up(state, train, resume)
            self._loop(state, step)
            self._call("on_fit_end", state)
            if state.ema is not None:
                # The averaged weights are the result; the raw ones stay in checkpoints.
                state.model.load_state_dict(state.ema.module.state_dict())
            state.process_group.barrier()  # no process leaves while another still needs it
        except BaseException as exc:
            failure = self._fail(state, exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            state.model.to(memory_format=torch.contiguous_format)
            state.process_group.leave()
        return state

    def _new_state(
        self, train: ImageSet | Dataset[Any], val: ImageSet | Dataset[Any] | None
    ) -> TrainState:
        """The fit's state, with the training and validation data (and a held-out split)."""
        config = self.config
        train_set = as_image_set(train)
        val_set = as_image_set(val) if val is not None else None
        if val is None and config.val_split:
            if train_set is None:
                raise DataError("val_split needs ImageSet training data; pass val= instead")
            train_set, val_set = train_set.split(config.val_split, seed=config.seed or 0)
        if train_set is not None and len(train_set) == 0:
            raise DataError("the training data is empty")
        state = TrainState(
            trainer=self,
            model=self.model,
            config=config,
            device=torch.device("cpu"),
            train_data=train_set,
            val_data=val_set if val_set is not None else val,  # type: ignore[arg-type]
        )
        if train_set is not None:
            state.norm = (train_set.mean, train_set.std)
        return state

    def _set_up(
        self,
        state: TrainState,
        train: ImageSet | Dataset[Any],
        resume: str | os.PathLike[str] | None,
    ) -> TrainStep:
        """Everything after ``on_fit_start`` (which placed the model) and before the loop."""
        self._feed(state, train)
        if self.config.engine == "fast" and state.device.type == "cpu":
            # oneDNN's convolutions are about 30% faster on LeNet-5's small feature maps
            # in NHWC; the model goes back to the default layout when fit ends.
            state.model.to(memory_format=torch.channels_last)
        step = self._build_step(state)
        state.batch_in_epoch = state.steps_per_epoch  # "epoch 0" is complete
        if resume is not None:
            # stacklevel: a warning about a damaged checkpoint passed over names fit's caller.
            CheckpointConnector(state).restore(resume, stacklevel=4)
        # After the restore: an unseeded run's generator seed comes back from the checkpoint.
        state.augment_seed = state.generator.initial_seed()
        state.model.train()
        return step

    def _feed(self, state: TrainState, train: ImageSet | Dataset[Any]) -> None:
        """Count the training data; put it in a DataLoader unless it stays resident."""
        config = self.config
        resident = state.train_data if isinstance(state.train_data, ImageSet) else None
        state.train_size = len(cast("Sized", resident if resident is not None else train))
        if state.train_data is None or config.engine == "plain":
            dataset = (
                resident.to("cpu").as_dataset()
                if resident is not None
                else cast("Dataset[Any]", train)
            )
            sampler = ShardedBatchSampler(
                state.train_size, config.batch_size, state.rank, state.world_size, state.generator
            )
            state.train_data = DataLoader(
                dataset,
                batch_sampler=sampler,
                collate_fn=collate,
                pin_memory=state.device.type == "cuda",
                # Its own generator for the workers' seeds, drawn at every epoch's start:
                # otherwise that draw comes from torch's global one, and a run resumed
                # mid-epoch (which starts its epoch again) would be one draw off.
                generator=torch.Generator(),
            )
        state.steps_per_epoch = steps_per_epoch(
            state.train_size, config.batch_size, state.world_size
        )
        if state.steps_per_epoch == 0:
            raise DataError(
                f"{state.train_size} training examples cannot feed {state.world_size} "
                "processes; use more data or fewer processes"
            )

    def _build_step(self, state: TrainState) -> TrainStep:
        """The optimizer, schedule, augmentation and EMA the config names, and the step."""
        config = self.config
        state.optimizer = build_optimizer(config, state.model, state.device)
        state.scheduler = build_scheduler(
            config, state.optimizer, state.steps_per_epoch * config.epochs
        )
        state.augment = parse_augment(config.augment)
        state.ema = None
        if config.ema_decay:
            state.ema = AveragedModel(
                state.model,
                multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),  # type: ignore[no-untyped-call]
                use_buffers=True,
            )
        return TrainStep(
            wrap_ddp(state.model, state.device) if state.world_size > 1 else state.model,
            state.optimizer,
            nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
            state.scheduler,
            ema=state.ema,
            world_size=state.world_size,
        )

    def _loop(self, state: TrainState, step: TrainStep) -> None:
        """The epochs, from the first one not yet done, with the hooks around each."""
        assert state.optimizer is not None
        first = state.epoch + 1 if state.epoch_complete else state.epoch
        for epoch in range(first, self.config.epochs + 1):
            if state.epoch_complete or epoch != first:
                # A new epoch; otherwise a resumed one, whose progress the restore set.
                state.begin_epoch(epoch)
            state.validate = False
            state.metrics = {}
            self._call("on_epoch_start", state)
            run_epoch(state, step, self._hooks["on_batch_start"], self._hooks["on_batch_end"])
            if not state.epoch_complete:
                break  # stopped mid-epoch: no validation, no on_epoch_end
            state.metrics["lr"] = float(state.optimizer.param_groups[0]["lr"])
            if state.validate and state.val_data is not None:
                state.metrics["val_loss"], state.metrics["val_accuracy"] = validate(state)
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

    # ------------------------------------------------------------- evaluate

    def evaluate(
        self, data: ImageSet | Dataset[Any], *, batch_size: int | None = None
    ) -> EvalResult:
        """Evaluate the model: mean loss, accuracy and confusion matrix (see
        :func:`lenet5.inference.evaluate`).

        Args:
            data: An :class:`~lenet5.data.ImageSet` or a dataset of ``(image, label)``.
            batch_size: Examples per forward pass (``config.eval_batch_size`` by default).

        Returns:
            An :class:`~lenet5.inference.EvalResult`.
        """
        return evaluate(
            self.model,
            data,
            batch_size=batch_size or self.config.eval_batch_size,
            # Plain datasets of uint8 images are normalised as the latest fit's data was.
            norm=self.state.norm if self.state is not None else None,
        )


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
