"""Setting a fit up: its state and data, the model's layout, and the step with everything it
steps (optimizer, schedule, EMA, scaler). :class:`~lenet5.Trainer` calls these in order;
they live here only to keep that module small.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..augment import parse_augment
from ..data import (
    MNIST_MEAN,
    MNIST_STD,
    DataError,
    ImageSet,
    as_image_set,
    check_data,
    known_norm,
)
from ..model import LeNet5
from ._feed import feed
from ._modules import unwrap
from .config import ConfigError
from .distributed import wrap_ddp
from .engine import Hook, LossFn, TrainStep
from .loop import UNNAMED
from .optim import build_optimizer, build_scheduler
from .precision import Precision
from .state import TrainState

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["build_step", "new_state", "prepare_model"]


def new_state(
    trainer: Trainer[Any], train: object, val: object, resume: str | os.PathLike[str] | None
) -> TrainState:
    """The fit's state, with its training and validation data and their normalisation."""
    config = trainer.config
    check_data(train, "training data")
    given = (
        (config.mean, config.std) if config.mean is not None and config.std is not None else None
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
        trainer=trainer,
        model=unwrap(trainer.model),
        config=config,
        device=torch.device("cpu"),
        train_data=train_set,
        val_data=next(iter(val_sets.values()), None),
        val_sets=val_sets,
        norm=norm,
        fit_index=trainer.fits,
        resume_from=Path(resume) if resume is not None else None,
    )
    state._norm_guessed = state._norm_unknown = guessed
    return state


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


def prepare_model(state: TrainState) -> bool:
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


def build_step(
    state: TrainState,
    train: object,
    loss_fn: LossFn | None,
    hooks: Mapping[str, Sequence[Hook]],
) -> TrainStep:
    """Feed the data; build the optimizer, schedule, augmentation, EMA, scaler and step."""
    config = state.config
    if loss_fn is not None and config.label_smoothing:
        raise ConfigError(
            "label_smoothing shapes the built-in cross-entropy, and loss_fn= replaces it; "
            "smooth the targets in loss_fn, or leave loss_fn out"
        )
    precision = Precision(config.precision, state.device)  # refused before any other work
    feed(state, train)
    groups = math.ceil(state.steps_per_epoch / config.accumulate_grad_batches)
    state.optimizer = build_optimizer(config, state.model, state.device)
    state.scheduler = build_scheduler(config, state.optimizer, groups * config.epochs)
    state.augment = parse_augment(config.augment)
    state.ema = None
    if config.ema_decay:
        state.ema = AveragedModel(
            state.model,
            multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),  # type: ignore[no-untyped-call]
            use_buffers=True,
        )
    state.scaler = precision.new_scaler()
    forward: nn.Module = state.trainer.model  # a model compiled by the user stays compiled
    if state.world_size > 1:
        forward = wrap_ddp(state.model, state.device)
    if config.compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    state.batch_in_epoch = state.steps_per_epoch  # "epoch 0" is complete
    state._exhausted = True
    return TrainStep(
        forward,
        loss_fn or nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        precision,
        hooks,
        world_size=state.world_size,
    )
