"""The Trainer: one fit, read top to bottom.

:meth:`Trainer.fit` sets the fit up, then runs the epochs; this module holds all of it, in
the order it happens:

1. **Set-up**: the fit's :class:`~lenet5.training.state.TrainState` with its data and their
   normalisation; ``on_fit_start`` (device placement and seeding are callbacks); the data
   fed to the step (resident, sampled, or as given); the optimizer, schedule, augmentation,
   EMA and precision (:mod:`~lenet5.training.optim` builds them); a checkpoint restored when
   resuming.
2. **The epochs**: ``on_epoch_start``, the batches, validation and ``on_validation_end``,
   ``on_epoch_end``.
3. **One step**: ``on_batch_start``; forward and loss; ``on_before_backward``; backward; at
   the end of an accumulation group ``on_before_optimizer_step``, clipping, the optimizer
   step, ``on_after_optimizer_step``, the schedule and the EMA; ``on_batch_end``.
4. **Validation**, and :meth:`~Trainer.evaluate` / :meth:`~Trainer.predict`.

Every hook is called where it runs, in :data:`~lenet5.training.callbacks.HOOKS` order.
Around the loop, what is a policy is a callback (:mod:`~lenet5.training.callbacks`): device,
seeding, validation schedule, logging, checkpoints, early stopping. What a checkpoint holds
is :mod:`~lenet5.training.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, cast, overload

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from typing_extensions import TypeVar

from .._hints import warn
from ..augment import parse_augment
from ..data import (
    MNIST_MEAN,
    MNIST_STD,
    DataError,
    ImageSet,
    as_image_set,
    check_data,
    collate,
    data_length,
    is_given_loader,
    known_norm,
    warn_default_norm,
)
from ..inference import EvalResult, evaluate, model_input, predict_logits
from ..model import LeNet5
from ._modules import unwrap
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
from .config import ConfigError, TrainConfig
from .distributed import (
    STOP_CHECK_EVERY,
    ProcessGroup,
    ShardedBatchSampler,
    global_batch,
    launch_ranks,
    lost_contact,
    resolve_strategy,
    shard,
    steps_per_epoch,
    wrap_ddp,
)
from .optim import Precision, build_ema, build_optimizer, build_scheduler
from .plugins import resolve_callbacks
from .state import TrainState

#: The type of the trained model (``Trainer(LeNet5())`` is a ``Trainer[LeNet5]``).
ModelT = TypeVar("ModelT", bound=nn.Module, default=nn.Module)
#: What ``fit``, ``evaluate`` and ``predict`` take as data.
Data = ImageSet | Dataset[Any] | DataLoader[Any] | Iterable[Any]
#: The loss, ``loss_fn(logits, targets)`` giving a scalar tensor. Targets are class
#: indices ``(N,)`` or probabilities ``(N, C)``.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: The name of a validation set given alone (not in a dict), whose metrics are only
#: ``val_loss`` and ``val_accuracy``.
UNNAMED = ""

__all__ = ["UNNAMED", "Data", "LossFn", "ModelT", "NonFiniteLossError", "Trainer"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: the run diverged and stops (the weights
    are no longer usable; checkpoints written before stay as they were)."""


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
            :class:`ProgressBar`) unless replaced. Without them nothing schedules
            validation: ``fit(val=...)`` then needs a callback that sets
            ``state.validate`` (:class:`PeriodicValidation`, or one of your own).
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
            warn(
                f"several callbacks share the checkpoint key {duplicates}; give each a "
                "distinct `key` property so that their states are saved separately"
            )
        self.state: TrainState | None = None
        self.fits = 0
        self._bind_hooks(rank=0)
        # What one fit's step runs, built by _build_step (the forward module may be a
        # compiled or DDP wrapper of the model; the state keeps the model itself).
        self._forward: nn.Module = self.model
        self._loss: LossFn = nn.CrossEntropyLoss()
        self._precision = Precision("32", torch.device("cpu"))

    def _bind_hooks(self, rank: int) -> None:
        """The overridden hooks of each kind, in order; rank-zero-only ones only on rank 0."""
        self._hooks: dict[str, list[Callable[[TrainState], None]]] = {
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

    # ================================================================== 1. set-up

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
            ConfigError: For validation data that no callback would ever validate (see
                ``default_callbacks``).
            NonFiniteLossError: If the loss becomes NaN or infinite.
        """
        ddp = resolve_strategy(self.config.strategy) == "ddp"
        self.fits += 1
        state = self._new_state(train, val, resume)
        self._check_validation_scheduled(state)
        if ddp:
            state.rank, state.world_size, state.local_rank = launch_ranks()
        self._bind_hooks(state.rank)
        self.state = state
        try:
            self._run(state, train, resume, ddp)
        except BaseException as exc:
            failure = self._fail(state, exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            state._locked = False
            state.process_group.leave()
        return state

    def _run(
        self, state: TrainState, train: object, resume: str | os.PathLike[str] | None, ddp: bool
    ) -> None:
        """``on_fit_start``; the step built; a checkpoint restored; the epochs; ``on_fit_end``."""
        self._call("on_fit_start", state)
        if ddp:
            state.process_group = ProcessGroup.join(state.device.type, self.config.dist_timeout)
        channels_last = _to_channels_last(state)
        try:
            self._build_step(state, train)
            if resume is not None:
                CheckpointConnector(state).restore(resume)
            # After the restore: an unseeded run's generator seed comes back from it.
            state.augment_seed = state.generator.initial_seed()
            state.model.train()
            state._locked = True
            self._run_epochs(state)
            self._call("on_fit_end", state)
            if state.ema is not None:
                # The averaged weights are the result; the raw ones stay in checkpoints.
                state.model.load_state_dict(state.ema.module.state_dict())
            state.process_group.barrier()  # no process leaves while another still needs it
        finally:
            if channels_last:
                state.model.to(memory_format=torch.contiguous_format)

    def _new_state(
        self, train: object, val: object, resume: str | os.PathLike[str] | None
    ) -> TrainState:
        """The fit's state, with its training and validation data and their normalisation."""
        config = self.config
        check_data(train, "training data")
        given = (
            (config.mean, config.std)
            if config.mean is not None and config.std is not None
            else None
        )
        train_set = _with_norm(as_image_set(train, given), given)
        if isinstance(val, Mapping):
            sets = {_set_name(name): data for name, data in val.items()}
            if not sets:
                raise DataError("val is an empty dict; give at least one validation set, or None")
        else:
            sets = {UNNAMED: val} if val is not None else {}
        if not sets and config.val_split:
            if train_set is None:
                raise DataError("val_split needs ImageSet training data; pass val= instead")
            train_set, held_out = train_set.split(config.val_split, seed=config.seed or 0)
            sets = {UNNAMED: held_out}
        if train_set is not None and len(train_set) == 0:
            raise DataError("the training data is empty")
        carried = (train_set.mean, train_set.std) if train_set is not None else known_norm(train)
        if carried is not None:
            norm, guessed = carried, False
        else:
            norm, guessed = (given, False) if given is not None else ((MNIST_MEAN, MNIST_STD), True)
        val_sets: dict[str, Any] = {}
        for name, data in sets.items():
            check_data(data, f"validation set {name!r}" if name else "validation data")
            val_sets[name] = _with_norm(as_image_set(data, norm), given) or data
        state = TrainState(
            model=unwrap(self.model),
            config=config,
            device=torch.device("cpu"),
            callbacks=self.callbacks,
            train_data=train_set,
            val_sets=val_sets,
            norm=norm,
            fit_index=self.fits,
            resume_from=Path(resume) if resume is not None else None,
        )
        state._norm_guessed = state._norm_unknown = guessed
        return state

    def _check_validation_scheduled(self, state: TrainState) -> None:
        """Refuse validation data that nothing would ever validate: the validation schedule
        is a callback (:class:`PeriodicValidation`), and ``default_callbacks=False`` drops
        it."""
        scheduled = any(isinstance(cb, PeriodicValidation) for cb in self.callbacks)
        if state.val_sets and not scheduled and self.config.val_every > 0:
            raise ConfigError(
                "fit() has validation data but no callback schedules validation "
                "(default_callbacks=False leaves PeriodicValidation out), so it would never "
                "run; add callbacks=[PeriodicValidation()], or val_every=0 when a callback of "
                "your own sets state.validate"
            )

    def _build_step(self, state: TrainState, train: object) -> None:
        """Feed the data; build the optimizer, schedule, augmentation, EMA, scaler and what
        the step's forward pass runs."""
        config = state.config
        if self.loss_fn is not None and config.label_smoothing:
            raise ConfigError(
                "label_smoothing shapes the built-in cross-entropy, and loss_fn= replaces it; "
                "smooth the targets in loss_fn, or leave loss_fn out"
            )
        self._precision = Precision(config.precision, state.device)  # refused before any work
        self._feed(state, train)
        groups = math.ceil(state.steps_per_epoch / config.accumulate_grad_batches)
        state.optimizer = build_optimizer(config, state.model, state.device)
        state.scheduler = build_scheduler(config, state.optimizer, groups * config.epochs)
        state.augment = parse_augment(config.augment)
        state.ema = build_ema(config, state.model)
        state.scaler = self._precision.new_scaler()
        forward: nn.Module = self.model  # a model compiled by the user stays compiled
        if state.world_size > 1:
            forward = wrap_ddp(state.model, state.device)
        if config.compile:
            forward = torch.compile(forward)  # type: ignore[assignment]
        self._forward = forward
        self._loss = self.loss_fn or nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        state.batch_in_epoch = state.steps_per_epoch  # "epoch 0" is complete
        state._exhausted = True

    def _feed(self, state: TrainState, train: object) -> None:
        """Set ``state.train_data``, ``train_size`` and ``steps_per_epoch``, by one of three
        paths: an :class:`~lenet5.data.ImageSet` on the ``fast`` engine stays resident on
        the device and is sliced into shuffled batches there (no per-sample Python); other
        map-style data goes through a DataLoader whose batches the trainer samples
        (:class:`~lenet5.training.distributed.ShardedBatchSampler`: DDP shards it, and a
        resumed epoch skips its done batches without reading them); a DataLoader or
        IterableDataset is iterated as given (see :func:`_given_batches`)."""
        config = state.config
        resident = state.train_data if isinstance(state.train_data, ImageSet) else None
        if is_given_loader(train) and resident is None:
            if state.world_size > 1:
                raise DataError(
                    "under DDP the trainer shards the training data itself: give an ImageSet "
                    f"or a map-style dataset, not a {type(train).__name__}"
                )
            if not isinstance(train, DataLoader):
                train = DataLoader(
                    cast("Dataset[Any]", train), batch_size=config.batch_size, collate_fn=collate
                )
            state.train_data = train
            # A loader's length is its number of batches; an iterable's may be unknown (0).
            state.steps_per_epoch = data_length(train) or 0
            size = data_length(state.train_data.dataset)
            state.train_size = size if size is not None else 0
            return
        state.train_size = len(cast("Any", resident if resident is not None else train))
        if resident is None or config.engine == "plain":
            dataset = resident.to("cpu").as_dataset() if resident is not None else train
            sampler = ShardedBatchSampler(
                state.train_size, config.batch_size, state.rank, state.world_size, state.generator
            )
            state.train_data = DataLoader(
                cast("Dataset[Any]", dataset),
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
        if state.train_size == 0:
            raise DataError("the training data is empty")
        if state.steps_per_epoch == 0:
            raise DataError(
                f"{state.train_size} training examples cannot feed {state.world_size} "
                "processes; use more data or fewer processes"
            )

    # ================================================================ 2. the epochs

    def _run_epochs(self, state: TrainState) -> None:
        """The epochs, from the first one not yet done, with the hooks around each."""
        first = state.epoch + 1 if state.epoch_complete else state.epoch
        for epoch in range(first, self.config.epochs + 1):
            if state.epoch_complete or epoch != first:
                # A new epoch; otherwise a resumed one, whose progress the restore set.
                state.begin_epoch(epoch)
            state.validate = False
            state.metrics = {}
            self._call("on_epoch_start", state)
            self._run_batches(state)
            if not state.epoch_complete:
                break  # stopped mid-epoch: no validation, no on_epoch_end
            # lr (the first group's) and, with several groups, lr_<name> for each.
            state.metrics.update(state.learning_rates)
            if state.validate and state.val_sets:
                state.metrics.update(self._validate(state))
                self._call("on_validation_end", state)
            state.history.append(state.metrics)
            self._call("on_epoch_end", state)
            if _stop_agreed(state):
                break

    def _run_batches(self, state: TrainState) -> None:
        """Train the current epoch from ``state.batch_in_epoch`` on, and set its metrics.

        A stop, and a validation every ``val_every_steps``, happen only between
        accumulation groups, so that no summed gradient is ever lost to a checkpoint.
        """
        loss_sum, correct_sum = state._epoch_loss_sum, state._epoch_correct
        assert loss_sum is not None
        assert correct_sum is not None
        assert state._epoch_generator_state is not None
        # Rewind to the epoch's start so that a resumed epoch draws the same batches.
        state.generator.set_state(state._epoch_generator_state)
        if _stop_agreed(state):  # asked for in on_fit_start or on_epoch_start
            return _epoch_metrics(state)
        k, steps = state.config.accumulate_grad_batches, state.steps_per_epoch
        pending = 0  # batches of the current group whose gradients await the optimizer step
        for inputs, targets in _batches(state, skip=state.batch_in_epoch):
            state._inputs, state._targets, state._labels = inputs, targets, targets
            state._logits = state._loss = None
            self._call("on_batch_start", state)  # may replace state.inputs and state.targets
            b = state.batch_in_epoch
            ends_group = (b + 1) % k == 0 or b + 1 == steps
            # A sized epoch's short last group is averaged over its own size.
            group = min(k, steps - (b - b % k)) if steps else k
            loss, correct = self._step(state, group=group, last=ends_group, share=_share(state))
            pending = 0 if ends_group else pending + 1
            state._batch_loss = loss
            loss_sum += loss
            correct_sum += correct
            state._epoch_seen += int(state.targets.shape[0])
            state.batch_in_epoch += 1
            self._call("on_batch_end", state)
            if ends_group and self._between_groups(state):
                break
        else:
            state._exhausted = True
            if pending:  # data without a length ended inside a group: step on what it has
                self._optimizer_step(state, correction=k / pending)
        state._inputs = state._targets = state._labels = state._logits = state._loss = None
        _epoch_metrics(state)

    def _between_groups(self, state: TrainState) -> bool:
        """After an optimizer step: validate if ``val_every_steps`` says so; whether to stop."""
        every_steps = state.config.val_every_steps
        at_epoch_end = state.epoch_complete and state.validate  # validated there anyway
        due = every_steps and state.global_step % every_steps == 0 and not at_epoch_end
        if due and state.val_sets:
            state.metrics.update(self._validate(state))
            self._call("on_validation_end", state)
        groups_done = -(-state.batch_in_epoch // state.config.accumulate_grad_batches)
        every = STOP_CHECK_EVERY if state.world_size > 1 else 1
        # Before the next batch is even fetched.
        return (groups_done % every == 0 or state.epoch_complete) and _stop_agreed(state)

    # ================================================================== 3. one step

    def _step(
        self, state: TrainState, *, group: int, last: bool, share: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on the state's batch (``on_batch_start`` has run); its loss and number of
        correct predictions as detached device tensors (the loop never waits for the device).

        The back-propagated loss is divided by the accumulation ``group``'s size and, under
        DDP, weighted by ``share * world_size`` (``share``: this process's fraction of the
        global batch), so that DDP's gradient average over processes, summed over the
        group, is the gradient of the mean loss over the group's examples even when the
        slices differ in size. The returned loss is weighted by ``share``, so that the
        processes' values sum to the global batch's mean loss. ``last``: this batch ends its
        group, and the optimizer steps.
        """
        inputs, targets = state.inputs, state.targets  # as on_batch_start left them
        # Between optimizer steps DDP need not average the gradients: they are summed.
        no_sync = getattr(self._forward, "no_sync", None)
        sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with sync:
            with self._precision.autocast():
                state.logits = self._forward(inputs)
                state.loss = self._loss(state.logits, targets)
            self._call("on_before_backward", state)  # may replace state.loss
            loss = _checked_loss(state.loss)
            weight = share * state.world_size / group
            scaled = loss * weight if weight != 1.0 else loss
            if state.scaler is not None:
                scaled = state.scaler.scale(scaled)
            scaled.backward()  # type: ignore[no-untyped-call]
        if last:
            self._optimizer_step(state)
        # The data's labels, not targets a callback mixed or softened.
        labels = state.labels
        hard = labels.argmax(dim=1) if labels.dim() == 2 else labels
        correct = (state.logits.detach().argmax(dim=1) == hard).sum()
        reported = loss.detach().float()
        return (reported * share if state.world_size > 1 else reported), correct

    def _optimizer_step(self, state: TrainState, correction: float = 1.0) -> None:
        """Unscale, ``on_before_optimizer_step``, clip, step the optimizer and zero the
        gradients, ``on_after_optimizer_step``, step the schedule and the EMA.

        Args:
            state: The fit, with the group's summed gradients in place.
            correction: Factor for those gradients: ``k/n`` for a group of ``n`` batches
                whose losses were divided by ``k`` (the short last group of data without a
                length, found out only when the data ran out).
        """
        optimizer, scaler = state.optimizer, state.scaler
        if scaler is not None:
            scaler.unscale_(optimizer)
        if correction != 1.0:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(correction)
        self._call("on_before_optimizer_step", state)
        clip = state.config.grad_clip_norm
        if clip is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            state.grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.global_step += 1
        self._call("on_after_optimizer_step", state)  # may change the new weights in place
        if state.scheduler is not None:
            state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(state.model)

    # ================================================================ 4. validation

    def _validate(self, state: TrainState) -> dict[str, float]:
        """The validation metrics of every set in ``state.val_sets``: ``val_<name>_loss``
        and ``val_<name>_accuracy`` (percent) for named sets, and ``val_loss`` /
        ``val_accuracy`` for the first one. The model is evaluated as it is, or its EMA when
        there is one; the loss is the cross-entropy against the validation labels, whatever
        ``loss_fn`` trains."""
        metrics: dict[str, float] = {}
        for i, (name, data) in enumerate(state.val_sets.items()):
            loss, accuracy = _validate_one(state, data)
            if i == 0:
                metrics["val_loss"], metrics["val_accuracy"] = loss, accuracy
            if name != UNNAMED:
                metrics[f"val_{name}_loss"], metrics[f"val_{name}_accuracy"] = loss, accuracy
        return metrics

    def _fail(self, state: TrainState, exc: BaseException) -> BaseException:
        """Run the ``on_exception`` hooks; the exception to raise (explained under DDP)."""
        failure = lost_contact(exc, state.rank) if state.world_size > 1 else exc
        state.exception = failure
        for fn in self._hooks["on_exception"]:
            try:
                fn(state)
            except Exception as hook_exc:  # never hide the original failure
                warn(f"{fn!r} failed in on_exception: {hook_exc}")
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


# ------------------------------------------------------------------ the set-up's helpers


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


def _with_norm(data: ImageSet | None, norm: tuple[float, float] | None) -> ImageSet | None:
    """``data`` normalised with ``norm`` (the config's ``mean``/``std``) when that is set."""
    if data is None or norm is None:
        return data
    return dataclasses.replace(data, mean=norm[0], std=norm[1])


def _set_name(name: object) -> str:
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        raise DataError(
            f"validation set names become metric names (val_<name>_accuracy): {name!r} is "
            "not one; use letters, digits, _ or -"
        )
    return name


def _to_channels_last(state: TrainState) -> bool:
    """Put the model in channels-last where that is known to be safe and faster; returns
    whether it did."""
    config = state.config
    if config.engine == "fast" and state.device.type == "cpu" and type(state.model) is LeNet5:
        # oneDNN's convolutions are about 30% faster on LeNet-5's small feature maps in
        # NHWC. Only for LeNet5 itself: a model that flattens with .view() (or a subclass
        # that does) fails on the non-contiguous activations channels-last gives.
        state.model.to(memory_format=torch.channels_last)
        return True
    return False


# ------------------------------------------------------------------- the epoch's batches


def _batches(state: TrainState, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's ``(inputs, targets)`` after the first ``skip`` (those a resumed run did)."""
    data = state.train_data
    if isinstance(data, ImageSet):
        # The fast path: one permutation per epoch, batches sliced on the device. Under
        # DDP every process draws the same permutation and takes its slice of each
        # global batch.
        perm = torch.randperm(len(data), generator=state.generator).to(data.device)
        bs, world = state.config.batch_size, state.world_size
        for step in range(skip, state.steps_per_epoch):
            positions = global_batch(step, len(data), bs, world)
            idx = shard(perm[positions], state.rank, world)
            yield _model_input(state, data.images[idx], data.mean, data.std), data.labels[idx]
        return
    assert isinstance(data, DataLoader)
    if isinstance(data.batch_sampler, ShardedBatchSampler):
        # Skipped in the sampler, not by reading and dropping batches: a transform that
        # draws random numbers then draws exactly as in a run that never stopped.
        data.batch_sampler.start = skip
        loader: Iterator[Any] = iter(data)
    else:
        loader = _given_batches(state, data, skip)
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(
                f"the training data gives {type(batch).__name__} batches; training needs "
                "(images, targets)"
            )
        images, targets = batch[0], batch[1]
        images = images.to(state.device, non_blocking=True)
        targets = targets.to(state.device, non_blocking=True)
        yield _model_input(state, images, *state.norm), targets


def _given_batches(state: TrainState, data: DataLoader[Any], skip: int) -> Iterator[Any]:
    """A given loader's iterator with the ``skip`` done batches read and dropped.

    A resumed epoch rewinds torch's global generator to where the epoch's iteration began,
    reads and drops the done batches, and puts the generator back, so a loader whose order
    comes from that generator (``shuffle=True`` without a generator of its own) resumes
    exactly.
    """
    if skip == 0:
        state._epoch_torch_rng = torch.get_rng_state()  # where this epoch's order is drawn
        return iter(data)
    assert state._epoch_torch_rng is not None
    now = torch.get_rng_state()
    torch.set_rng_state(state._epoch_torch_rng)
    it = iter(data)
    for done in range(skip):
        if next(it, None) is None:
            raise DataError(
                f"the resumed epoch's data ran out after {done} batches, before the "
                f"{skip} that the checkpoint had done; resume with the same data"
            )
    torch.set_rng_state(now)
    return it


def _model_input(state: TrainState, images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """A training batch as the model's input: ``uint8`` images augmented (if the run asks
    for it), then normalised; float images as they are (see
    :func:`lenet5.inference.model_input`)."""
    if images.dtype == torch.uint8 and state._norm_unknown:
        warn_default_norm()  # once per fit: the statistics are a guess
        state._norm_unknown = False
    if state.augment is None or images.dtype != torch.uint8:
        return model_input(images, mean, std)
    x = images.to(torch.float32).div_(255.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    # A generator per batch, from the seed and the batch's place in the run: the draws
    # do not depend on anything that came before, so a resumed run augments exactly as
    # the original.
    generator = torch.Generator().manual_seed(
        (state.augment_seed * 1_000_003 + state.batch_index) % 2**63
    )
    return state.augment(x, generator).sub_(mean).div_(std)


def _share(state: TrainState) -> float:
    """This process's fraction of the current global batch (1 without DDP)."""
    if state.world_size == 1:
        return 1.0
    bs = state.config.batch_size
    positions = global_batch(state.batch_in_epoch, state.train_size, bs, state.world_size)
    return float(state.targets.shape[0] / (positions.stop - positions.start))


def _checked_loss(loss: object) -> torch.Tensor:
    """The loss to back-propagate, or an error naming what is wrong with it."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(
            f"the loss must be a scalar tensor (loss_fn or state.loss), got {shape}; "
            "reduce it, e.g. with .mean()"
        )
    if not loss.requires_grad:
        raise TypeError(
            "the loss has no gradient graph: compute it from state.logits (or other "
            "tensors that require grad) inside the step, not under torch.no_grad()"
        )
    return loss.reshape(())


def _stop_agreed(state: TrainState) -> bool:
    """Whether the run stops here: ``state.stop()`` was called on this process or, under
    DDP, on any process (then every process adopts the lowest-ranked one's reason).

    Under DDP this is a collective, which every process reaches at the same points of the
    run (see :data:`~lenet5.training.distributed.STOP_CHECK_EVERY`); a stop asked for in
    between waits for the next of them.
    """
    if state.world_size == 1:
        return state.stop_requested
    reason = state.process_group.first_stop(state.stop_reason)
    if reason is not None and not state.stop_requested:
        state.stop(reason)
    return reason is not None


def _epoch_metrics(state: TrainState) -> None:
    """``loss`` and ``accuracy`` of the epoch so far, over all processes; a non-finite loss
    stops the run (one check per epoch: reading the sum waits for the device)."""
    loss_sum, correct = state._epoch_loss_sum, state._epoch_correct
    assert loss_sum is not None
    assert correct is not None
    batches_done = max(state.batch_in_epoch, 1)
    if state.world_size == 1:
        loss_total, accuracy = float(loss_sum), state.epoch_accuracy
    else:
        # One synchronisation per epoch, not per step.
        loss_total, correct_total, seen = _sum_over_processes(
            state, loss_sum, correct, float(state._epoch_seen)
        )
        accuracy = 100.0 * correct_total / seen if seen else float("nan")
    if not math.isfinite(loss_total):
        raise NonFiniteLossError(
            f"the training loss became {loss_total} in epoch {state.epoch} (by step "
            f"{state.global_step}): the run diverged; lower the learning rate (lr="
            f"{state.config.lr:g}), or clip the gradients (grad_clip_norm); checkpoints "
            "written before are kept"
        )
    state.metrics["loss"] = loss_total / batches_done
    state.metrics["accuracy"] = accuracy


def _sum_over_processes(state: TrainState, *values: torch.Tensor | float) -> list[float]:
    """Each of ``values`` summed over the processes, in float64 (one collective for all)."""
    totals = torch.stack(
        [torch.as_tensor(v, dtype=torch.float64, device=state.device) for v in values]
    )
    state.process_group.all_reduce(totals)
    return cast("list[float]", totals.tolist())


def _validate_one(state: TrainState, data: Any) -> tuple[float, float]:
    """Validation loss and accuracy (percent) on one set.

    Under DDP each process evaluates its slice of a set it can slice (an ImageSet or a
    map-style dataset) and the totals are summed, so every process gets the numbers of the
    whole set; a DataLoader or an iterable is evaluated whole by every process.
    """
    model = state.ema.module if state.ema is not None else state.model
    batch_size = state.config.eval_batch_size
    sliceable = isinstance(data, ImageSet) or not is_given_loader(data)
    if state.world_size == 1 or not sliceable:
        result = evaluate(model, data, batch_size=batch_size, norm=state.norm)
        return result.loss, result.accuracy
    indices = shard(torch.arange(len(data)), state.rank, state.world_size)
    part: ImageSet | Dataset[Any] = (
        data.subset(indices)
        if isinstance(data, ImageSet)
        else Subset(cast("Dataset[Any]", data), indices.tolist())
    )
    totals: tuple[float, float, float] = (0.0, 0.0, 0.0)
    if len(indices):
        result = evaluate(model, part, batch_size=batch_size, norm=state.norm)
        totals = (result.loss * result.total, float(result.correct), float(result.total))
    loss_sum, correct, total = _sum_over_processes(state, *totals)
    return loss_sum / total, 100.0 * correct / total
