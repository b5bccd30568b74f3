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
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..devices import DeviceError
from .config import ConfigError, TrainConfig, is_number
from .state import group_key

__all__ = [
    "Precision",
    "build_ema",
    "build_optimizer",
    "build_param_groups",
    "build_scheduler",
]


#: What a group's ``name`` may be: it becomes the metric ``lr_<name>``.
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def build_param_groups(config: TrainConfig, model: nn.Module) -> list[dict[str, Any]] | None:
    """The parameter groups the config asks for, checked; ``None`` for one plain group.

    ``no_decay`` gives two groups, ``"decay"`` (parameters of two or more dimensions:
    weight matrices, convolution kernels) and ``"no_decay"`` (the others: biases,
    normalisation scales; ``weight_decay=0``), the second left out when empty.
    ``param_groups`` gives the callable's groups, as lists.

    Raises:
        ConfigError: If the callable does not return an iterable of dicts with ``params``,
            a group is empty, holds a tensor that is not a parameter of the model or a
            misnamed ``name``, two groups share a name, or the groups do not hold every
            trainable parameter exactly once (naming the missing or repeated parameters).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if config.no_decay:
        decay = [p for _, p in named if p.dim() >= 2]
        plain = [p for _, p in named if p.dim() < 2]
        groups: list[dict[str, Any]] = [{"params": decay, "name": "decay"}]
        if plain:
            groups.append({"params": plain, "name": "no_decay", "weight_decay": 0.0})
        return groups
    if config.param_groups is None:
        return None
    try:
        given = list(config.param_groups(model))
    except TypeError as exc:
        raise ConfigError(
            f"param_groups must return an iterable of dicts, got: {exc}", "param_groups"
        ) from None
    groups = [_group(i, g) for i, g in enumerate(given)]
    if not groups:
        raise ConfigError("param_groups returned no groups", "param_groups")
    _check_cover(groups, model, named)
    return groups


def _group(index: int, given: object) -> dict[str, Any]:
    """One group of a ``param_groups`` callable, as a dict with a list of parameters."""
    if not isinstance(given, Mapping) or "params" not in given:
        raise ConfigError(
            f"param_groups: group {index} must be a dict with 'params' (and options such as "
            f"'lr'), got {type(given).__name__}",
            "param_groups",
        )
    group = dict(given)
    params = group["params"]
    group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
    if not group["params"]:
        raise ConfigError(f"param_groups: group {_label(index, group)} is empty", "param_groups")
    _check_options(index, group)
    name = group.get("name")
    if name is not None and not (isinstance(name, str) and _GROUP_NAME.match(name)):
        raise ConfigError(
            f"param_groups: group {index}'s name {name!r} must be 1-64 letters, digits, _ or -"
            " (it names the metric lr_<name>)",
            "param_groups",
        )
    return group


def _check_options(index: int, group: Mapping[str, Any]) -> None:
    """Refuse a group's ``lr``, ``weight_decay`` or ``momentum`` that TrainConfig would
    refuse (torch checks only the optimizer's defaults, not each group's)."""
    for key, low, high, what in (
        ("lr", 0.0, math.inf, "positive"),
        ("weight_decay", 0.0, math.inf, ">= 0"),
        ("momentum", 0.0, 1.0, "in [0, 1)"),
    ):
        if key not in group:
            continue
        value = group[key]
        label = f"param_groups: group {_label(index, group)}'s {key}"
        if not is_number(value) or not math.isfinite(value):
            raise ConfigError(f"{label} must be a finite number, got {value!r}", "param_groups")
        low_ok = value > low if key == "lr" else value >= low
        if not (low_ok and value < high):
            raise ConfigError(f"{label} must be {what}, got {value!r}", "param_groups")


def _label(index: int, group: Mapping[str, Any]) -> str:
    name = group.get("name")
    return f"{index} ({name!r})" if name is not None else str(index)


def _check_cover(
    groups: list[dict[str, Any]], model: nn.Module, named: list[tuple[str, nn.Parameter]]
) -> None:
    """Refuse groups that miss or repeat a trainable parameter, or hold a foreign tensor."""
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    seen: dict[int, int] = {}
    for index, group in enumerate(groups):
        for p in group["params"]:
            if id(p) not in names:
                shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
                raise ConfigError(
                    f"param_groups: group {_label(index, group)} holds a {shape} tensor that "
                    "is not a parameter of the model being trained",
                    "param_groups",
                )
            seen[id(p)] = seen.get(id(p), 0) + 1
    repeated = sorted({names[i] for i, count in seen.items() if count > 1})
    missing = [n for n, p in named if id(p) not in seen]
    problems = []
    if missing:
        problems.append(f"missing from every group: {', '.join(missing)}")
    if repeated:
        problems.append(f"in more than one group (or twice in one): {', '.join(repeated)}")
    if problems:
        raise ConfigError(
            "param_groups must hold every trainable parameter of the model exactly once; "
            + "; ".join(problems),
            "param_groups",
        )
    keys = [group_key(i, g) for i, g in enumerate(groups)]
    clashes = sorted({k for k in keys if keys.count(k) > 1})
    if clashes:
        raise ConfigError(
            f"param_groups: several groups are named {', '.join(clashes)} (a group without "
            "a name is named by its index); give each group its own name",
            "param_groups",
        )


def build_optimizer(
    config: TrainConfig, model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """Create the optimizer the config names, using the fastest correct implementation.

    The parameters are those of :func:`build_param_groups` (in groups), or the model's
    trainable ones in one group.

    Raises:
        ConfigError: For groups that do not fit the model (:func:`build_param_groups`), a
            group option the optimizer refuses, or a callable optimizer whose rate or decay
            contradicts the config (see :func:`_from_callable`).
    """
    groups = build_param_groups(config, model)
    if groups is None:
        params: list[Any] = [p for p in model.parameters() if p.requires_grad]
    else:
        params = groups
    factory = config.optimizer
    if callable(factory):
        return _from_callable(factory, params, config, model, grouped=groups is not None)
    try:
        return _named(factory.lower(), params, config, device)
    except ValueError as exc:  # torch's check of a group's options
        if groups is None:
            raise
        raise ConfigError(f"param_groups: {exc}", "param_groups") from None


def _named(
    name: str, params: list[Any], config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """A named optimizer over ``params`` (parameters or groups) with the config's options."""
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


def _accepts(fn: Callable[..., Any], name: str, *, var_keyword: bool = True) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == name or (var_keyword and p.kind is p.VAR_KEYWORD) for p in parameters)


def _from_callable(
    factory: Callable[..., torch.optim.Optimizer],
    params: list[Any],
    config: TrainConfig,
    model: nn.Module,
    *,
    grouped: bool = False,
) -> torch.optim.Optimizer:
    """The optimizer a callable builds, given ``lr`` and ``weight_decay`` when it takes them,
    and ``model`` when it names a parameter so (a ``**kwargs`` does not get it).

    ``params`` are the trainable parameters, or (``grouped``) the groups of
    :func:`build_param_groups`.
    A callable that sets its own rate or decay while the config leaves that setting at its
    default gives the config its value (so that the run records and resumes with what it
    used). A group that sets an option itself (``no_decay``'s ``weight_decay=0``, a
    ``param_groups`` group's own ``lr``) keeps it and is not compared.

    Raises:
        ConfigError: If the optimizer's rate or decay differs from one the config sets,
            which the run would then record although it never used it.
    """
    settings = {"lr": config.lr, "weight_decay": config.weight_decay}
    kwargs: dict[str, Any] = {k: v for k, v in settings.items() if _accepts(factory, k)}
    if _accepts(factory, "model", var_keyword=False):
        kwargs["model"] = model
    # The options each group chose itself, read before torch fills in the others.
    chosen: list[set[str]] = [set(g) for g in params] if grouped else []
    optimizer = factory(params, **kwargs)
    if len(chosen) != len(optimizer.param_groups):  # the callable made groups of its own
        chosen = [set() for _ in optimizer.param_groups]
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, wanted in settings.items():
        used = {
            g.get(name, wanted)
            for g, own in zip(optimizer.param_groups, chosen, strict=True)
            if name not in own
        }
        if not used or used == {wanted}:
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
    # One peak per group: each group's own rate (the config's lr, unless a group sets one).
    peaks = [float(g["lr"]) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=peaks if len(peaks) > 1 else peaks[0], total_steps=max(total_steps, 1)
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
