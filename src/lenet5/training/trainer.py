"""The Trainer: the training loop and evaluation, and nothing else.

Everything around the loop (device, seeding, validation schedule, logging, checkpoints,
early stopping) is a callback; see :mod:`lenet5.training.callbacks`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sized
from typing import Any, cast

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from ..augment import parse_augment
from ..data import MNIST_MEAN, MNIST_STD, DataError, ImageSet, as_image_set, collate, normalize
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
from .checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig
from .distributed import (
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
from .engine import TrainStep
from .optim import build_optimizer, build_scheduler
from .plugins import resolve_callbacks
from .state import TrainState

__all__ = ["Trainer"]

#: Config fields that may differ between a checkpoint and the run resuming from it.
_RESUMABLE_CHANGES = {"epochs", "device", "verbose", "eval_batch_size", "val_every"}


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
        user = resolve_callbacks(callbacks)
        defaults: list[Callback] = []
        if default_callbacks:
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
        self.callbacks: list[Callback] = sorted(defaults + user, key=lambda cb: cb.order)
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
        self._hooks = {
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
        config = self.config
        strategy = resolve_strategy(config.strategy)
        train_set = as_image_set(train)
        val_set = as_image_set(val) if val is not None else None
        if val is None and config.val_split:
            if train_set is None:
                raise DataError("val_split needs ImageSet training data; pass val= instead")
            train_set, val_set = train_set.split(config.val_split, seed=config.seed or 0)
        if train_set is not None and len(train_set) == 0:
            raise DataError("the training data is empty")
        self._norm = (
            (train_set.mean, train_set.std) if train_set is not None else (MNIST_MEAN, MNIST_STD)
        )
        state = TrainState(
            trainer=self,
            model=self.model,
            config=config,
            device=torch.device("cpu"),
            train_data=train_set,
            val_data=val_set if val_set is not None else val,  # type: ignore[arg-type]
        )
        if strategy == "ddp":
            state.rank, state.world_size, state.local_rank = launch_ranks()
        self._bind_hooks(state.rank)
        self.state = state
        self._group = ProcessGroup()
        try:
            self._call("on_fit_start", state)
            if strategy == "ddp":
                self._group = ProcessGroup.join(state.device.type, config.dist_timeout)
            self._train_size = len(cast("Sized", train_set if train_set is not None else train))
            if state.train_data is None or config.engine == "plain":
                dataset = (
                    state.train_data.to("cpu").as_dataset()
                    if isinstance(state.train_data, ImageSet)
                    else cast("Dataset[Any]", train)
                )
                state.train_data = DataLoader(
                    dataset,
                    batch_sampler=ShardedBatchSampler(
                        self._train_size,
                        config.batch_size,
                        state.rank,
                        state.world_size,
                        state.generator,
                    ),
                    collate_fn=collate,
                    pin_memory=state.device.type == "cuda",
                )
            state.steps_per_epoch = steps_per_epoch(
                self._train_size, config.batch_size, state.world_size
            )
            if state.steps_per_epoch == 0:
                raise DataError(
                    f"{self._train_size} training examples cannot feed {state.world_size} "
                    "processes; use more data or fewer processes"
                )
            if config.engine == "fast" and state.device.type == "cpu":
                # oneDNN's convolutions are about 30% faster on LeNet-5's small feature maps
                # in NHWC; the model goes back to the default layout when fit ends.
                state.model.to(memory_format=torch.channels_last)
            state.optimizer = build_optimizer(config, state.model, state.device)
            state.scheduler = build_scheduler(
                config, state.optimizer, state.steps_per_epoch * config.epochs
            )
            self._augment = parse_augment(config.augment)
            state.ema = (
                AveragedModel(
                    state.model,
                    multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),  # type: ignore[no-untyped-call]
                    use_buffers=True,
                )
                if config.ema_decay
                else None
            )
            step = TrainStep(
                wrap_ddp(state.model, state.device) if state.world_size > 1 else state.model,
                state.optimizer,
                nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
                state.scheduler,
                ema=state.ema,
                world_size=state.world_size,
            )
            state.batch_in_epoch = state.steps_per_epoch  # "epoch 0" is complete
            if resume is not None:
                self._restore(state, resume)
            # After the restore: an unseeded run's generator seed comes back from the checkpoint.
            self._augment_seed = state.generator.initial_seed()
            state.model.train()
            first = state.epoch + 1 if state.epoch_complete else state.epoch
            for epoch in range(first, config.epochs + 1):
                if state.epoch_complete or epoch != first:
                    # A new epoch; otherwise a resumed one, whose progress _restore set.
                    state.epoch = epoch
                    state.batch_in_epoch = 0
                    state._epoch_loss_sum = torch.zeros((), device=state.device)
                    state._epoch_correct = torch.zeros((), dtype=torch.long, device=state.device)
                    state._epoch_seen = 0
                    state._epoch_generator_state = state.generator.get_state()
                state.validate = False
                state.metrics = {}
                self._call("on_epoch_start", state)
                self._run_epoch(state, step)
                if not state.epoch_complete:
                    break  # stopped mid-epoch: no validation, no on_epoch_end
                state.metrics["lr"] = float(state.optimizer.param_groups[0]["lr"])
                if state.validate and state.val_data is not None:
                    loss, accuracy = self._validate(state)
                    state.metrics["val_loss"] = loss
                    state.metrics["val_accuracy"] = accuracy
                    self._call("on_validation_end", state)
                state.history.append(state.metrics)
                self._call("on_epoch_end", state)
                if state.stop_requested:
                    break
            self._call("on_fit_end", state)
            if state.ema is not None:
                # The averaged weights are the result; the raw ones stay in checkpoints.
                state.model.load_state_dict(state.ema.module.state_dict())
            self._group.barrier()  # no process leaves while another still needs it
        except BaseException as exc:
            failure = lost_contact(exc, state.rank) if state.world_size > 1 else exc
            state.exception = failure
            for fn in self._hooks["on_exception"]:
                try:
                    fn(state)
                except Exception as hook_exc:  # never hide the original failure
                    warnings.warn(f"{fn!r} failed in on_exception: {hook_exc}", stacklevel=2)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            state.model.to(memory_format=torch.contiguous_format)
            self._group.leave()
        return state

    def _validate(self, state: TrainState) -> tuple[float, float]:
        """Validation loss and accuracy (percent); under DDP each process takes a slice."""
        model = state.ema.module if state.ema is not None else state.model
        data = state.val_data
        assert data is not None
        batch_size = self.config.eval_batch_size
        if state.world_size == 1:
            result = evaluate(model, data, batch_size=batch_size, norm=self._norm)
            return result.loss, result.accuracy
        indices = shard(torch.arange(len(data)), state.rank, state.world_size)
        part = (
            data.subset(indices)
            if isinstance(data, ImageSet)
            else torch.utils.data.Subset(data, indices.tolist())
        )
        totals = torch.zeros(3, dtype=torch.float64, device=state.device)
        if len(indices):
            result = evaluate(model, part, batch_size=batch_size, norm=self._norm)
            totals[0], totals[1], totals[2] = (
                result.loss * result.total,
                result.correct,
                result.total,
            )
        self._group.all_reduce(totals)
        loss_sum, correct, total = totals.tolist()
        return loss_sum / total, 100.0 * correct / total

    def _batches(self, state: TrainState, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches after the first ``skip`` (those a resumed run already did)."""
        data = state.train_data
        if isinstance(data, ImageSet):
            # The fast path: one permutation per epoch, batches sliced on the device. Under
            # DDP every process draws the same permutation and takes its slice of each
            # global batch.
            perm = torch.randperm(len(data), generator=state.generator).to(data.device)
            bs, world = self.config.batch_size, state.world_size
            for step in range(skip, state.steps_per_epoch):
                positions = global_batch(step, len(data), bs, world)
                idx = shard(perm[positions], state.rank, world)
                yield self._input(data.images[idx], data.mean, data.std, state), data.labels[idx]
        else:
            assert data is not None
            for index, (images, labels) in enumerate(data):
                if index < skip:
                    continue
                yield (
                    self._to_input(images, state),
                    labels.to(state.device, non_blocking=True),
                )

    def _to_input(self, images: torch.Tensor, state: TrainState) -> torch.Tensor:
        images = images.to(state.device, non_blocking=True)
        if images.dtype == torch.uint8:
            return self._input(images, *self._norm, state)
        return images if images.dim() == 4 else images.unsqueeze(1)

    def _input(
        self, images: torch.Tensor, mean: float, std: float, state: TrainState
    ) -> torch.Tensor:
        """``uint8`` images to the model's input: augmented (if asked), then normalised."""
        if self._augment is None:
            return normalize(images, mean, std)
        x = images.to(torch.float32).div_(255.0)
        x = x.unsqueeze(1) if x.dim() == 3 else x
        # A generator per step, from the seed and the step number: the draws do not depend
        # on anything that came before, so a resumed run augments exactly as the original.
        generator = torch.Generator().manual_seed(
            (self._augment_seed * 1_000_003 + state.global_step) % 2**63
        )
        return self._augment(x, generator).sub_(mean).div_(std)

    def _run_epoch(self, state: TrainState, step: TrainStep) -> None:
        loss_sum, correct_sum = state._epoch_loss_sum, state._epoch_correct
        assert loss_sum is not None
        assert correct_sum is not None
        assert state._epoch_generator_state is not None
        # Rewind to the epoch's start so that a resumed epoch draws the same batches.
        state.generator.set_state(state._epoch_generator_state)
        start_hooks, end_hooks = self._hooks["on_batch_start"], self._hooks["on_batch_end"]
        if state.stop_requested:  # asked for in on_fit_start or on_epoch_start
            return self._finish_epoch_metrics(state, loss_sum)
        bs, world = self.config.batch_size, state.world_size
        for inputs, targets in self._batches(state, skip=state.batch_in_epoch):
            for fn in start_hooks:
                fn(state)
            if world > 1:
                positions = global_batch(state.batch_in_epoch, self._train_size, bs, world)
                share = targets.shape[0] / (positions.stop - positions.start)
                loss, correct = step(inputs, targets, share)
            else:
                loss, correct = step(inputs, targets)
            state._batch_loss = loss
            loss_sum += loss
            correct_sum += correct
            state._epoch_seen += targets.shape[0]
            state.batch_in_epoch += 1
            state.global_step += 1
            for fn in end_hooks:
                fn(state)
            if state.stop_requested:  # before the next batch is even fetched
                break
        self._finish_epoch_metrics(state, loss_sum)

    def _finish_epoch_metrics(self, state: TrainState, loss_sum: torch.Tensor) -> None:
        # One synchronisation per epoch, not per step.
        if state.world_size > 1:
            assert state._epoch_correct is not None
            totals = torch.stack(
                [
                    loss_sum.to(torch.float64),
                    state._epoch_correct.to(torch.float64),
                    torch.tensor(
                        float(state._epoch_seen), dtype=torch.float64, device=state.device
                    ),
                ]
            )
            self._group.all_reduce(totals)
            loss_total, correct, seen = totals.tolist()
            state.metrics["loss"] = loss_total / max(state.batch_in_epoch, 1)
            state.metrics["accuracy"] = 100.0 * correct / seen if seen else float("nan")
            return
        state.metrics["loss"] = float(loss_sum) / max(state.batch_in_epoch, 1)
        state.metrics["accuracy"] = state.epoch_accuracy

    def _restore(self, state: TrainState, path: str | os.PathLike[str]) -> None:
        weights, saved = load_checkpoint(path)
        try:
            state.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {saved['path']} does not fit this model: {exc}"
            ) from exc
        saved_config = json.loads(saved["config"])
        current = self.config.to_dict()
        if state.scheduler is not None and saved_config.get("epochs") != current["epochs"]:
            raise CheckpointError(
                f"{saved['path']} was trained for {saved_config.get('epochs')} epochs with the "
                f"{current['scheduler']!r} learning-rate schedule, which is laid out for that "
                "length; resume it with the same number of epochs"
            )
        changed = sorted(
            k for k in current if k not in _RESUMABLE_CHANGES and saved_config.get(k) != current[k]
        )
        if changed:
            warnings.warn(
                f"resuming {saved['path']} with different settings for {changed}; the result "
                "will not match an uninterrupted run",
                stacklevel=3,
            )
        assert state.optimizer is not None
        if saved["optimizer"] is not None:
            # The implementation flags belong to this device, not to the saved run's.
            keys: tuple[str, ...] = ("fused", "foreach")
            flags = [{k: g[k] for k in keys if k in g} for g in state.optimizer.param_groups]
            state.optimizer.load_state_dict(saved["optimizer"])
            for group, kept in zip(state.optimizer.param_groups, flags, strict=True):
                group.update(kept)
        if state.scheduler is not None and saved["scheduler"] is not None:
            state.scheduler.load_state_dict(saved["scheduler"])
        if state.ema is not None and saved.get("ema") is not None:
            state.ema.load_state_dict(saved["ema"])
        state.epoch = int(saved["epoch"])
        state.global_step = int(saved["global_step"])
        progress = saved.get("epoch_progress")
        if progress is not None:  # a mid-epoch checkpoint
            state.batch_in_epoch = int(progress["batches"])
            state._epoch_loss_sum = progress["loss_sum"].to(state.device)
            state._epoch_correct = progress["correct"].to(state.device)
            state._epoch_seen = int(progress["seen"])
            state._epoch_generator_state = progress["generator"]
        else:
            state.batch_in_epoch = state.steps_per_epoch
        state.history = [dict(h) for h in saved["history"]]
        rng = saved["rng"]
        torch.set_rng_state(rng["torch"])
        state.generator.set_state(rng["generator"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        for cb in self.callbacks:
            if cb.key in saved["callbacks"]:
                cb.load_state_dict(saved["callbacks"][cb.key])

    # ------------------------------------------------------------- evaluate

    @torch.inference_mode()
    def evaluate(
        self, data: ImageSet | Dataset[Any], *, batch_size: int | None = None
    ) -> EvalResult:
        """Evaluate the model: mean loss, accuracy and confusion matrix.

        Args:
            data: An :class:`~lenet5.data.ImageSet` or a dataset of ``(image, label)``.
            batch_size: Examples per forward pass (``config.eval_batch_size`` by default).

        Returns:
            An :class:`EvalResult`.
        """
        return evaluate(
            self.model,
            data,
            batch_size=batch_size or self.config.eval_batch_size,
            norm=getattr(self, "_norm", None),
        )
