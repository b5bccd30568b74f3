"""What updates the weights: optimizer, schedule, EMA and precision from a TrainConfig.

The optimizer, the learning-rate schedule, the weights' moving average (EMA) and the
numeric precision (autocast, and the gradient scaler of float16), each built from a
:class:`~lenet5.TrainConfig`.

The trainer builds each of these once per fit (:meth:`Trainer.fit <lenet5.Trainer.fit>`)
and uses them in its step; nothing here runs a step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..devices import DeviceError
from .config import ConfigError, TrainConfig

__all__ = ["Precision", "build_ema", "build_optimizer", "build_scheduler"]


def build_optimizer(
    config: TrainConfig, model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """Create the optimizer the config names, using the fastest correct implementation."""
    params = [p for p in model.parameters() if p.requires_grad]
    factory = config.optimizer
    if callable(factory):
        return _from_callable(factory, params, config)
    name = factory.lower()
    # Fused kernels do the same arithmetic as the for-loop version in one launch; they
    # exist for CUDA and, since torch 2.4, for the CPU. The plain engine keeps the default.
    fused = _fused_available(device) if config.engine == "fast" else None
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, weight_decay=config.weight_decay, fused=fused
        )
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def _from_callable(
    factory: Callable[..., torch.optim.Optimizer], params: list[nn.Parameter], config: TrainConfig
) -> torch.optim.Optimizer:
    """The optimizer a callable builds, given ``lr`` and ``weight_decay`` when it takes them.

    A callable that sets its own rate or decay while the config leaves that setting at its
    default gives the config its value (so that the run records and resumes with what it
    used).

    Raises:
        ConfigError: If the optimizer's rate or decay differs from one the config sets,
            which the run would then record although it never used it.
    """
    settings = {"lr": config.lr, "weight_decay": config.weight_decay}
    kwargs = {k: v for k, v in settings.items() if _accepts(factory, k)}
    optimizer = factory(params, **kwargs)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, wanted in settings.items():
        used = {g.get(name, wanted) for g in optimizer.param_groups}
        if used == {wanted}:
            continue
        if len(used) == 1 and wanted == defaults[name]:
            setattr(config, name, used.pop())
            continue
        shown = ", ".join(f"{u!r}" for u in sorted(used, key=str))
        raise ConfigError(
            f"the optimizer callable uses {name}={shown} but the run is set to "
            f"{name}={wanted!r}, which it would record: let the callable take {name}= "
            f"(it is called with it), or set {name}={shown} on the Trainer too"
        )
    return optimizer


def _fused_available(device: torch.device) -> bool | None:
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        major, minor = (int(p) for p in torch.__version__.split(".")[:2])
        return True if (major, minor) >= (2, 4) else None
    return None


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Create the learning-rate scheduler the config names, or ``None``; it is stepped after
    every optimizer step, ``total_steps`` of them (``0``: unknown, for data without a length).

    Raises:
        ConfigError: If a schedule needs the number of steps and it is unknown.
    """
    sched = config.scheduler
    if sched is None:
        return None
    if total_steps == 0 and not (isinstance(sched, str) and sched.lower() == "none"):
        raise ConfigError(
            f"scheduler {config.to_dict()['scheduler']!r} needs the number of steps, and the "
            "training data has no length; give the data a __len__, or scheduler=None"
        )
    if callable(sched):
        return sched(optimizer, total_steps)
    name = sched.lower()
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(total_steps, 1)
    )


def build_ema(config: TrainConfig, model: nn.Module) -> AveragedModel | None:
    """The exponential moving average of ``model``'s weights that ``config.ema_decay`` asks
    for (buffers averaged too), or ``None`` when it is ``0``."""
    if not config.ema_decay:
        return None
    return AveragedModel(
        model,
        multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),  # type: ignore[no-untyped-call]
        use_buffers=True,
    )


_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class Precision:
    """What ``TrainConfig.precision`` means on one device.

    ``"32"`` runs everything in float32. ``"bf16-mixed"`` and ``"16-mixed"`` run the forward
    pass and the loss under :func:`torch.autocast` (matrix products and convolutions in the
    low precision, reductions such as the cross-entropy in float32) while the weights, the
    gradients and the optimizer stay in float32; ``"16-mixed"`` also scales the loss with a
    :class:`torch.amp.GradScaler`, since float16 gradients of small losses underflow
    (bfloat16 has float32's range and needs no scaling).

    Args:
        precision: One of :data:`~lenet5.training.config.PRECISIONS`.
        device: The training device.

    Raises:
        DeviceError: If the device cannot autocast to that type, naming what can.
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        self.name = precision
        self.device = device
        self.dtype = _DTYPES.get(precision)
        if self.dtype is None:
            return
        supported = torch.amp.is_autocast_available(device.type)
        if supported and device.type == "cuda" and self.dtype == torch.bfloat16:
            supported = torch.cuda.is_bf16_supported()
        if not supported:
            raise DeviceError(
                f"precision={precision!r} cannot run on {device}: it has no {self.dtype} "
                "autocast; use precision='32'"
                + (" or '16-mixed'" if self.dtype == torch.bfloat16 else "")
                + ", or another device"
            )

    def new_scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for float16, else ``None``."""
        if self.dtype != torch.float16:
            return None
        return torch.amp.GradScaler(self.device.type)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass and the loss run inside this."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield
