"""torch.hub entry points for lenet5.

    model = torch.hub.load("lenet5/lenet5", "lenet5", pretrained=True)

torch.hub downloads this repository without installing it, so the package is loaded from
``src/lenet5`` under a private module name: it never shadows (or is shadowed by) a
``lenet5`` the user has installed or a module of their own with that name.
"""

from __future__ import annotations

# Imported under private names: torch.hub.list shows every public callable here.
import importlib.util as _importlib_util
import sys as _sys
import types as _types
import typing as _typing
import warnings as _warnings
from pathlib import Path as _Path

dependencies = ["torch", "safetensors", "huggingface_hub"]

_PRIVATE_NAME = "_lenet5_hub"


def _package() -> _types.ModuleType:
    if _PRIVATE_NAME in _sys.modules:
        return _sys.modules[_PRIVATE_NAME]
    init = _Path(__file__).resolve().parent / "src" / "lenet5" / "__init__.py"
    spec = _importlib_util.spec_from_file_location(
        _PRIVATE_NAME, init, submodule_search_locations=[str(init.parent)]
    )
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with the repo
        raise ImportError(f"cannot load lenet5 from {init}")
    module = _importlib_util.module_from_spec(spec)
    _sys.modules[_PRIVATE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del _sys.modules[_PRIVATE_NAME]
        raise
    return module


def lenet5(
    pretrained: bool = False, weights: str | None = None, **kwargs: _typing.Any
) -> _typing.Any:
    """LeNet-5 for 28x28 greyscale digits (44,426 parameters at the defaults).

    Args:
        pretrained: Load the best bundled MNIST weights (``weights="DEFAULT"``).
        weights: Name of a bundled weight set (``"DEFAULT"``, ``"mnist-v1"``...), a folder
            written by ``save_pretrained``, a ``.safetensors`` file, or a Hugging Face Hub
            repo id. Overrides ``pretrained``.
        **kwargs: ``num_classes`` and ``in_channels`` for an untrained model. With weights,
            ``num_classes`` alone: a number other than the weights' loads every layer but
            the last, which is new and untrained (``LeNet5.from_pretrained(weights,
            num_classes=N)``, with its warning).

    Returns:
        A ``LeNet5`` model (in eval mode when weights are loaded). Inputs are
        ``(N, 1, 28, 28)`` floats, normalised with the mean and std of the weights. With
        weights, ``model.weights`` is their record: ``model.weights.transforms()`` turns a
        picture (PIL image, file path or tensor) into such an input, and
        ``model.weights.classes`` names the outputs.
    """
    package = _package()
    if weights is None and pretrained:
        weights = "DEFAULT"
    if weights is None:
        return package.LeNet5(**kwargs)
    unexpected = sorted(set(kwargs) - {"num_classes"})
    if unexpected:
        raise TypeError(
            f"lenet5(weights=...) takes its constructor arguments from the weights (but "
            f"num_classes, for a new head); unexpected {unexpected}"
        )
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        model = package.LeNet5.from_pretrained(weights, **kwargs)
    for warning in caught:  # said again at the line that called torch.hub.load
        _warnings.warn(warning.message, warning.category, stacklevel=_caller_level())
    return model


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this file and torch.hub."""
    frame = _sys._getframe(1)
    level = 1
    while frame is not None and _passed_over(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _passed_over(filename: str) -> bool:
    path = _Path(filename)
    return filename == __file__ or (path.name == "hub.py" and path.parent.name == "torch")
