"""Safetensors files: writing them atomically, reading them, and the checks before loading.

Weights are only ever read as safetensors, never unpickled. Before anything is loaded the
file's tensors are compared with the model's: every missing, unexpected, misshaped or
non-floating tensor is named. ``config.json`` is compared with the tensor shapes before
any model is built from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from .._io import atomic_write_bytes, read_json_file

__all__ = [
    "WeightsError",
    "check_config",
    "check_finite",
    "check_tensors",
    "infer_config",
    "load_weights",
    "read_config",
    "read_safetensors",
    "save_weights",
]

#: The constructor arguments a ``config.json`` may set, and the tensor (name, number of
#: dimensions, axis) whose shape tells each one.
_SHAPE_OF = {
    "in_channels": ("features.0.weight", 4, 1),
    "num_classes": ("classifier.5.weight", 2, 0),
}


class WeightsError(ValueError):
    """A weights file is missing, unreadable, tampered with, or does not fit the model."""


def check_finite(tensors: Mapping[str, torch.Tensor], *, what: str = "the model") -> None:
    """Refuse weights that hold NaN or infinite values (a diverged run's): saved, they
    would load without a word and predict nonsense.

    Raises:
        WeightsError: Naming the tensors and what to do.
    """
    bad = [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise WeightsError(
            f"{what} holds NaN or infinite weights ({shown}); not saved. The training "
            "diverged: lower the learning rate, or resume from an earlier checkpoint"
        )


def save_weights(
    model: nn.Module, path: str | os.PathLike[str], *, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``model``'s state dict to a safetensors file, atomically.

    Args:
        model: The model.
        path: The ``.safetensors`` file to write (its folder is created if needed).
        metadata: String metadata for the file header (``format: pt`` is always added).

    Returns:
        The path written.

    Raises:
        TypeError: If a metadata key or value is not a string.
        WeightsError: If a weight is NaN or infinite (:func:`check_finite`); nothing is
            written.
    """
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"safetensors metadata must map strings to strings; {key!r}: {value!r} is not"
            )
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    check_finite(tensors, what=f"{type(model).__name__} (for {path})")
    # Serialised in memory first (a LeNet-5 is 180 kB), so that a failed write is an OS error
    # that _io names ("cannot write PATH: No space left on device"), not safetensors' own.
    data = save(tensors, metadata={"format": "pt", **(metadata or {})})
    return atomic_write_bytes(path, data)


def read_safetensors(
    path: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read all tensors and the header metadata of a safetensors file.

    Raises:
        WeightsError: If the file is missing or not a valid safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated or "
            "corrupt, or in another format (only .safetensors weights are loaded)"
        ) from exc
    return tensors, metadata


def check_tensors(
    expected: Mapping[str, torch.Tensor],
    tensors: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    name: str = "state dict",
    model_name: str = "LeNet5",
) -> None:
    """Compare a file's tensors with a model's state dict (which may live on ``meta``).

    Args:
        expected: The model's state dict: only names, shapes and dtypes are read.
        tensors: The tensors read from the file.
        strict: Also refuse missing and unexpected tensors.
        name: How to call the file in the message.
        model_name: How to call the model in the message.

    Raises:
        WeightsError: Naming every misshaped and non-floating tensor, and with ``strict``
            every missing and unexpected one.
    """
    common = sorted(set(expected) & set(tensors))
    misshaped = [
        f"{k} (file {tuple(tensors[k].shape)}, model {tuple(expected[k].shape)})"
        for k in common
        if tensors[k].shape != expected[k].shape
    ]
    problems = []
    if misshaped:
        problems.append("misshaped: " + ", ".join(misshaped))
    if strict and (missing := sorted(set(expected) - set(tensors))):
        problems.append("missing: " + ", ".join(missing))
    if strict and (unexpected := sorted(set(tensors) - set(expected))):
        problems.append("unexpected: " + ", ".join(unexpected))
    if problems:
        problems[-1] += " (were the weights saved from a model with other constructor arguments?)"
    not_float = [
        f"{k} ({tensors[k].dtype})"
        for k in common
        if expected[k].is_floating_point() and not tensors[k].is_floating_point()
    ]
    if not_float:
        problems.append("not floating point: " + ", ".join(not_float))
    if problems:
        raise WeightsError(f"{name} does not fit {model_name}: " + "; ".join(problems))


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    name: str | None = None,
) -> nn.Module:
    """Load safetensors weights into ``model`` in place, after :func:`check_tensors`.

    Args:
        model: The model to fill.
        source: A ``.safetensors`` file, or a state dict already read.
        strict: Refuse files whose tensor names do not match the model exactly.
        name: How to call the source in error messages.

    Returns:
        ``model``.

    Raises:
        WeightsError: Naming missing, unexpected, misshaped and non-floating tensors.
    """
    if isinstance(source, Mapping):
        tensors, name = source, name or "state dict"
    else:
        tensors, name = read_safetensors(source)[0], name or str(source)
    check_tensors(
        model.state_dict(), tensors, strict=strict, name=name, model_name=type(model).__name__
    )
    model.load_state_dict(tensors, strict=strict)
    return model


def infer_config(tensors: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """LeNet5 constructor arguments read off the tensor shapes of a state dict."""
    config = {}
    for key, (tensor, dims, axis) in _SHAPE_OF.items():
        if tensor in tensors and tensors[tensor].dim() == dims:
            config[key] = int(tensors[tensor].shape[axis])
    return config


#: The largest ``num_classes`` or ``in_channels`` a ``config.json`` may ask for.
MAX_CONSTRUCTOR_VALUE = 100_000


#: The largest ``config.json`` read (lenet5 writes about 40 bytes).
MAX_CONFIG_BYTES = 2**20
#: The deepest nesting a ``config.json`` may have.
MAX_CONFIG_DEPTH = 16


def read_config(path: Path) -> dict[str, int]:
    """The constructor arguments of a ``config.json`` (other keys are ignored).

    The file is bounded: at most :data:`MAX_CONFIG_BYTES` bytes, nested at most
    :data:`MAX_CONFIG_DEPTH` levels, strict JSON (no ``NaN``).

    Raises:
        WeightsError: If the file is unreadable, too large or deep, not a JSON object, or
            an argument is not a positive integer.
    """
    try:
        config = read_json_file(path, max_bytes=MAX_CONFIG_BYTES, max_depth=MAX_CONFIG_DEPTH)
    except OSError as exc:
        raise WeightsError(f"cannot read model config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise WeightsError(f"cannot read model config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{path} must hold a JSON object of constructor arguments")
    arguments = {k: v for k, v in config.items() if k in _SHAPE_OF}
    for key, value in arguments.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise WeightsError(f"{path}: {key} must be a positive integer, got {value!r}")
        # A bound, as for every read: the record names each class, and a hostile file
        # could otherwise make the loader spend minutes and gigabytes on 10**8 names.
        if value > MAX_CONSTRUCTOR_VALUE:
            raise WeightsError(
                f"{path}: {key}={value} is more than lenet5 loads (at most "
                f"{MAX_CONSTRUCTOR_VALUE:,}); the file is damaged or not a LeNet-5 config"
            )
    return arguments


def check_config(
    config: Mapping[str, int],
    tensors: Mapping[str, torch.Tensor],
    *,
    config_name: str,
    weights_name: str,
) -> None:
    """Refuse constructor arguments that contradict the tensor shapes, before any model exists.

    Args:
        config: Constructor arguments (from ``config.json`` or a registry record).
        tensors: The tensors they are to be loaded with.
        config_name: Where ``config`` comes from, for the message.
        weights_name: Where ``tensors`` come from, for the message.

    Raises:
        WeightsError: Naming ``config_name``, the argument and the tensor that disagree.
    """
    shapes = infer_config(tensors)
    for key, value in config.items():
        if key in shapes and shapes[key] != value:
            tensor, _dims, axis = _SHAPE_OF[key]
            raise WeightsError(
                f"{config_name} says {key}={value}, but {tensor} in {weights_name} has shape "
                f"{tuple(tensors[tensor].shape)}, i.e. {key}={shapes[key]} (axis {axis}): the "
                "config and the weights do not belong together"
            )
