"""TrainConfig: every training setting in one validated dataclass.

Keyword arguments of :class:`~lenet5.Trainer` and the flags of ``lenet5 train`` map one to one
onto these fields (``batch_size`` is ``--batch-size``). The command line is generated from the
fields, so a new field gets its flag without touching :mod:`lenet5.cli`. Each field's
``metadata`` says how:

``"help"``
    The flag's help text (argparse adds the default; do not type it here).
``"choices"``
    The values the flag accepts (one of the tuples below, written once).
``"metavar"``
    The placeholder shown in the help, when the field name does not read well.
``"flag"``
    The flag's name when it is not ``--field-name`` (``verbose`` is ``--quiet``), or ``None``
    for a setting the command line cannot express (one that only takes a callable).
``"negate"``
    ``True`` when the flag means the opposite of the field (``--quiet`` is ``verbose=False``).

The flag's type comes from the field's annotation (``int``, ``float``, ``str``; a ``bool``
becomes ``--name`` / ``--no-name``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from .._hints import did_you_mean
from ..devices import is_device_spec, is_meta
from .recipes import RECIPES as _RECIPES

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "ENGINES",
    "MAX_COUNT",
    "MAX_DIST_TIMEOUT",
    "MAX_SEED",
    "OPTIMIZERS",
    "PRECISIONS",
    "RECIPES",
    "SCHEDULERS",
    "STRATEGIES",
    "ConfigError",
    "OptimizerFactory",
    "ParamGroupsFactory",
    "SchedulerFactory",
    "TrainConfig",
]

#: Builds an optimizer from the model's parameters: called with a list of parameters, or of
#: parameter-group dicts (with ``param_groups`` or ``no_decay``), and, when it takes them,
#: ``lr=``, ``weight_decay=`` and ``model=`` (see :class:`TrainConfig`).
OptimizerFactory: TypeAlias = "Callable[..., torch.optim.Optimizer]"
#: Splits the model's parameters into torch.optim parameter groups: dicts with ``params``
#: and any option of the optimizer (``lr``, ``weight_decay``...), and optionally ``name``.
ParamGroupsFactory: TypeAlias = "Callable[[nn.Module], Iterable[Mapping[str, Any]]]"
#: Builds a learning-rate scheduler from the optimizer and the total number of steps.
SchedulerFactory: TypeAlias = (
    "Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]"
)

#: Optimizer names accepted by ``optimizer=``.
OPTIMIZERS = ("adam", "adamw", "sgd")
#: Scheduler names accepted by ``scheduler=`` (stepped once per batch).
SCHEDULERS = ("none", "cosine", "onecycle")
#: Training engines accepted by ``engine=``.
ENGINES = ("fast", "plain")
#: Named sets of settings (``lenet5 train --recipe NAME``, ``TrainConfig.from_recipe``), defined
#: in :mod:`lenet5.training.recipes`; explicit options override them.
RECIPES: dict[str, dict[str, Any]] = _RECIPES
#: Process layouts accepted by ``strategy=`` (see :mod:`lenet5.training.distributed`).
STRATEGIES = ("auto", "single", "ddp")
#: Numeric precisions accepted by ``precision=`` (float32, or autocast to bfloat16 / float16).
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


class ConfigError(ValueError):
    """A training setting has a value that cannot work.

    Attributes:
        field: The :class:`TrainConfig` field concerned, when one is (the command line
            names its flag); ``None`` otherwise.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


#: The largest count (epochs, batch sizes, steps...) a setting may hold, what every index
#: type torch uses can hold, and far beyond any real run.
MAX_COUNT = 2**31 - 1
#: The largest seed (torch's generators take 64-bit unsigned seeds).
MAX_SEED = 2**64 - 1
#: The longest ``dist_timeout``, in seconds (a year).
MAX_DIST_TIMEOUT = 365 * 24 * 3600.0


def is_number(value: object) -> bool:
    """Whether ``value`` is an ``int`` or a ``float`` (not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return is_number(value) and math.isfinite(value)  # type: ignore[arg-type]


def one_of(
    name: str, value: object, choices: tuple[str, ...], alternative: str = "", *, shown: str = ""
) -> None:
    """Refuse a name that is not among ``choices``, listing them."""
    if not isinstance(value, str) or value not in choices:
        message = f"unknown {name} {shown or value!r}; choose one of {', '.join(choices)}"
        raise ConfigError(f"{message} {alternative}" if alternative else message, name)


def _int_in(name: str, value: object, low: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be {what} (at most {high:,}), got {value!r}", name)


def positive_int(name: str, value: object) -> None:
    """Refuse anything but an ``int`` in ``[1, MAX_COUNT]``."""
    _int_in(name, value, 1, MAX_COUNT, "a positive integer")


def non_negative_int(name: str, value: object) -> None:
    """Refuse anything but an ``int`` in ``[0, MAX_COUNT]``."""
    _int_in(name, value, 0, MAX_COUNT, "a non-negative integer")


def check_norm(mean: object, std: object) -> None:
    """Refuse a normalisation that is half given, not finite, or with ``std <= 0``."""
    if (mean is None) != (std is None):
        raise ConfigError(
            f"give mean and std together (got mean={mean!r}, std={std!r}); "
            "None for both uses the data's own statistics",
            "mean" if mean is None else "std",
        )
    if mean is None:
        return
    if not _finite(mean):
        raise ConfigError(f"mean must be a finite number (in [0, 1] units), got {mean!r}", "mean")
    if not (_finite(std) and std > 0):  # type: ignore[operator]
        raise ConfigError(
            f"std must be a positive finite number (in [0, 1] units), got {std!r}", "std"
        )


@dataclass
class TrainConfig:
    """Settings of a training run. The defaults are the reference recipe.

    Attributes:
        epochs: Number of passes over the training data.
        batch_size: Examples per optimisation step.
        lr: Learning rate (the peak rate for ``onecycle``).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"``, or a callable that takes the model
            parameters (or their groups, see ``param_groups``) and returns a
            :class:`torch.optim.Optimizer`; it also gets ``lr=``, ``weight_decay=`` and
            ``model=`` (the model being trained) when its signature names them.
        weight_decay: Weight decay passed to a named optimizer.
        no_decay: Apply ``weight_decay`` to weight matrices and convolution kernels only:
            the parameters of two or more dimensions form the group ``"decay"``, the
            others (biases, normalisation scales and shifts, other 1-D and 0-D parameters)
            the group ``"no_decay"`` with ``weight_decay=0``. Not with ``param_groups``.
        param_groups: A callable ``(model) -> iterable of dicts``, torch.optim's parameter
            groups: each dict has ``params`` (parameters of the model) and any option of
            the optimizer for that group (``lr``, ``weight_decay``, ``momentum``...), and
            optionally a ``name`` (letters, digits, ``_``, ``-``) for the logs; an option a
            group leaves out is the config's. Together the groups must hold every trainable
            parameter of the model exactly once. ``None``: one group of all parameters.
        momentum: Momentum for ``sgd`` (Nesterov).
        scheduler: ``None``/``"none"``, ``"cosine"``, ``"onecycle"``, or a callable
            ``(optimizer, total_steps) -> LRScheduler``; stepped after every batch.
        label_smoothing: Label smoothing of the cross-entropy loss.
        augment: Training-time augmentation, run in batches on the training device:
            ``"affine"``, ``"elastic"`` and the pixel corruptions ``"noise"``, ``"impulse"``,
            ``"blur"``, ``"contrast"``, ``"brightness"``, ``"fog"``, ``"thickness"``,
            ``"lines"``, ``"erase"``, comma-separated, with optional arguments such as
            ``"affine(degrees=15,translate=0.1),noise(std=0.3)"`` (see
            :mod:`lenet5.augment`); ``None`` for none. Applies to ``uint8`` image data.
        ema_decay: Keep an exponential moving average of the weights with this decay per step
            (e.g. ``0.999``); validation uses it and the trained model ends with it. ``0``
            turns it off.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: Seed for every random number generator; ``None`` leaves them alone.
        deterministic: Use only deterministic algorithms (slower on CUDA).
        val_every: Validate every this many epochs (and after the last); ``0`` never.
        val_split: Hold out this many training examples for validation when ``fit`` is given
            no validation data; ``0`` holds out none.
        eval_batch_size: Examples per forward pass in evaluation.
        verbose: Print log lines and draw the progress bar.
        engine: ``"fast"``: the data resident on the device as ``uint8`` and sliced into
            batches there, normalised on the fly, a fused optimizer, no host synchronisation
            per step. ``"plain"``: the textbook loop (a ``DataLoader``, the optimizer's default
            implementation), for comparison and debugging; same mathematics.
        strategy: ``"auto"`` (DDP when launched by ``torchrun``, else one process),
            ``"single"``, or ``"ddp"`` (:class:`~torch.nn.parallel.DistributedDataParallel`,
            NCCL on CUDA and gloo on the CPU). Under DDP ``batch_size`` is per process.
        dist_timeout: Seconds a distributed collective waits for the other processes
            before the run fails (so that a crashed process cannot hang the others).
        precision: ``"32"`` (float32), ``"bf16-mixed"`` or ``"16-mixed"``: the forward pass
            and the loss under :func:`torch.autocast` to bfloat16 or float16, the weights and
            the optimizer in float32; ``"16-mixed"`` scales the loss with a
            :class:`torch.amp.GradScaler`. A device that cannot run one raises
            :class:`~lenet5.devices.DeviceError` when the fit starts.
        grad_clip_norm: Clip the gradients' total 2-norm to this before every optimizer
            step (after ``on_before_optimizer_step``, on unscaled gradients); ``None``: no
            clipping.
        accumulate_grad_batches: One optimizer step per this many batches, their gradients
            summed with each batch's loss divided by their number (a last, shorter group of
            an epoch is averaged over its own size). ``global_step`` and the schedule count
            optimizer steps.
        compile: Run the forward pass of training through :func:`torch.compile`; the
            model, its state dict, checkpoints and ``save_pretrained`` stay those of the
            uncompiled module.
        val_every_steps: Also validate every this many optimizer steps; ``0``: only at the
            epochs ``val_every`` names.
        mean: Normalisation mean, in [0, 1] units, of every ``uint8`` image of the fit
            (training, validation, ``Trainer.evaluate`` and ``predict``); for data that does
            not carry its own statistics (anything but an :class:`~lenet5.data.ImageSet`, a
            torchvision MNIST-family dataset, or a loader of them). ``None``: the data's own,
            or MNIST's with a :class:`~lenet5.data.NormalizationWarning`.
        std: Normalisation standard deviation to go with ``mean`` (both or neither).
    """

    epochs: int = field(default=100, metadata={"help": "passes over the training data"})
    batch_size: int = field(
        default=32, metadata={"help": "examples per step (per process under DDP)"}
    )
    lr: float = field(default=1e-3, metadata={"help": "learning rate (the peak rate for onecycle)"})
    optimizer: str | OptimizerFactory = field(
        default="adam", metadata={"help": "the optimizer", "choices": OPTIMIZERS}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay of the optimizer"})
    no_decay: bool = field(
        default=False,
        metadata={
            "help": "weight decay on weight matrices and kernels only, none on biases and "
            "other 1-D parameters",
            # Not --no-decay: argparse reads any --no-X switch as False.
            "flag": "--decay-matrices-only",
        },
    )
    param_groups: ParamGroupsFactory | None = field(
        default=None,
        metadata={
            "help": "a callable (model) -> torch.optim parameter groups (Python only)",
            "flag": None,
        },
    )
    momentum: float = field(default=0.9, metadata={"help": "momentum of sgd (Nesterov)"})
    scheduler: str | SchedulerFactory | None = field(
        default=None,
        metadata={
            "help": "learning-rate schedule, stepped after every batch; none: a constant rate",
            "choices": SCHEDULERS,
        },
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "label smoothing of the cross-entropy loss"}
    )
    augment: str | None = field(
        default=None,
        metadata={
            "help": "on-device augmentation: affine, elastic, noise, impulse, blur, contrast, "
            "brightness, fog, thickness, lines, erase, comma-separated, with optional "
            "arguments, e.g. 'affine(degrees=15),noise(std=0.3)'; none: no augmentation",
            "metavar": "SPEC",
        },
    )
    ema_decay: float = field(
        default=0.0, metadata={"help": "average the weights with this decay per step; 0: off"}
    )
    device: str = field(
        default="auto",
        metadata={"help": "auto (CUDA when present), cpu, cuda or cuda:N", "metavar": "DEVICE"},
    )
    seed: int | None = field(default=0, metadata={"help": "seed of every random generator"})
    deterministic: bool = field(
        default=False, metadata={"help": "use only deterministic algorithms (slower on CUDA)"}
    )
    val_every: int = field(
        default=20, metadata={"help": "validate every N epochs and after the last; 0: never"}
    )
    val_split: int = field(
        default=0,
        metadata={
            "help": "hold out N training images for validation instead of using the test set"
        },
    )
    eval_batch_size: int = field(
        default=2048, metadata={"help": "examples per forward pass in evaluation"}
    )
    verbose: bool = field(
        default=True,
        metadata={
            "help": "no log lines or progress bar (--no-quiet undoes it on --resume)",
            "flag": "--quiet",
            "negate": True,
        },
    )
    engine: str = field(
        default="fast",
        metadata={
            "help": "fast (data resident on the device, fused optimizer) or plain (a "
            "DataLoader loop, for comparison)",
            "choices": ENGINES,
        },
    )
    strategy: str = field(
        default="auto",
        metadata={
            "help": "auto (DDP when started by torchrun), single or ddp",
            "choices": STRATEGIES,
        },
    )
    dist_timeout: float = field(
        default=300.0,
        metadata={
            "help": "seconds a process waits for the others before the run fails",
            "metavar": "SECONDS",
        },
    )

    precision: str = field(
        default="32",
        metadata={
            "help": "32, or autocast to bfloat16 (bf16-mixed) or float16 (16-mixed)",
            "choices": PRECISIONS,
        },
    )
    grad_clip_norm: float | None = field(
        default=None,
        metadata={"help": "clip the gradients' total norm to X before every optimizer step"},
    )
    accumulate_grad_batches: int = field(
        default=1, metadata={"help": "one optimizer step per N batches (gradients summed)"}
    )
    compile: bool = field(
        default=False, metadata={"help": "run the training forward pass through torch.compile"}
    )
    val_every_steps: int = field(
        default=0, metadata={"help": "also validate every N optimizer steps; 0: never"}
    )
    mean: float | None = field(
        default=None,
        metadata={"help": "normalisation mean of uint8 images, with --std; unset: the data's own"},
    )
    std: float | None = field(
        default=None,
        metadata={"help": "normalisation std of uint8 images, with --mean"},
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field.

        Raises:
            ConfigError: Naming the field, the bad value and what is allowed.
        """
        self._validate_counts()
        self._validate_rates()
        self._validate_names()
        self._validate_augment()

    def _validate_counts(self) -> None:
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        positive_int("eval_batch_size", self.eval_batch_size)
        non_negative_int("val_every", self.val_every)
        non_negative_int("val_split", self.val_split)
        non_negative_int("val_every_steps", self.val_every_steps)
        positive_int("accumulate_grad_batches", self.accumulate_grad_batches)
        if self.seed is not None:
            _int_in("seed", self.seed, 0, MAX_SEED, "a non-negative integer or None")
        timeout = self.dist_timeout
        if not (_finite(timeout) and 0 < timeout <= MAX_DIST_TIMEOUT):
            raise ConfigError(
                f"dist_timeout must be a positive number of seconds (at most "
                f"{MAX_DIST_TIMEOUT:,.0f}, a year), got {timeout!r}",
                "dist_timeout",
            )

    def _validate_rates(self) -> None:
        for name in ("lr", "weight_decay", "momentum", "label_smoothing", "ema_decay"):
            value = getattr(self, name)
            if not _finite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}", name)
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}", "lr")
        if self.weight_decay < 0:
            raise ConfigError(
                f"weight_decay must be >= 0, got {self.weight_decay!r}", "weight_decay"
            )
        for name in ("momentum", "ema_decay", "label_smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}", name)
        clip = self.grad_clip_norm
        if clip is not None and not (_finite(clip) and clip > 0):
            raise ConfigError(
                f"grad_clip_norm must be a positive finite number or None (no clipping), "
                f"got {clip!r}",
                "grad_clip_norm",
            )
        check_norm(self.mean, self.std)

    def _validate_names(self) -> None:
        one_of("engine", self.engine, ENGINES)
        one_of("strategy", self.strategy, STRATEGIES)
        one_of("precision", self.precision, PRECISIONS)
        for name in ("compile", "deterministic", "verbose", "no_decay"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{name} must be True or False, got {getattr(self, name)!r}", name
                )
        if isinstance(self.optimizer, str):
            one_of(
                "optimizer",
                self.optimizer.lower(),
                OPTIMIZERS,
                "or pass a callable that builds a torch.optim.Optimizer",
                shown=self.optimizer,
            )
        elif not callable(self.optimizer):
            raise ConfigError(
                f"optimizer must be a name or a callable, got {self.optimizer!r}", "optimizer"
            )
        self._validate_groups()
        if isinstance(self.scheduler, str):
            one_of(
                "scheduler",
                self.scheduler.lower(),
                SCHEDULERS,
                "or pass a callable (optimizer, total_steps) -> LRScheduler",
                shown=self.scheduler,
            )
        elif self.scheduler is not None and not callable(self.scheduler):
            raise ConfigError(
                f"scheduler must be a name, a callable or None, got {self.scheduler!r}",
                "scheduler",
            )
        if not isinstance(self.device, str):
            raise ConfigError(
                f"device must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}",
                "device",
            )
        if not is_device_spec(self.device):
            raise ConfigError(
                f"unknown device {self.device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
                + (" (meta holds no data: it cannot train)" if is_meta(self.device) else ""),
                "device",
            )

    def _validate_groups(self) -> None:
        if self.param_groups is not None and not callable(self.param_groups):
            raise ConfigError(
                f"param_groups must be a callable (model) -> parameter groups, or None, got "
                f"{self.param_groups!r}",
                "param_groups",
            )
        if self.param_groups is not None and self.no_decay:
            raise ConfigError(
                "no_decay splits the parameters into groups of its own, and param_groups "
                "gives the groups: use one of them (a group of the callable sets its own "
                "weight_decay, e.g. 0 for the 1-D parameters)",
                "no_decay",
            )

    def _validate_augment(self) -> None:
        if self.augment is None:
            return
        if not isinstance(self.augment, str):
            raise ConfigError(
                f"augment must be a spec string or None, got {self.augment!r}", "augment"
            )
        from ..augment import parse_augment

        try:
            parse_augment(self.augment)
        except ValueError as exc:
            raise ConfigError(f"augment: {exc}", "augment") from None

    @classmethod
    def from_recipe(cls, name: str, **overrides: Any) -> TrainConfig:
        """The settings of a named recipe (see :data:`RECIPES`), with some overridden.

        Raises:
            ConfigError: For an unknown recipe or option.
        """
        if name not in RECIPES:
            raise ConfigError(
                f"unknown recipe {name!r}{did_you_mean(name, RECIPES)}; "
                f"choose one of {', '.join(RECIPES)}"
            )
        return cls.from_kwargs({**RECIPES[name], **overrides})

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> TrainConfig:
        """Build a config from keyword arguments, rejecting unknown names.

        Raises:
            ConfigError: If a name is not a field, with the closest field suggested.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            hints = [f"{name!r}{did_you_mean(name, names)}" for name in unknown]
            raise ConfigError(f"unknown training option {', '.join(hints)}")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-friendly values (callables become their qualified names)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if callable(value):
                module = getattr(value, "__module__", "?")
                value = f"{module}.{getattr(value, '__qualname__', repr(value))}"
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` for configs whose optimizer and scheduler are names
        and without a ``param_groups`` callable."""
        return cls.from_kwargs(dict(data))
