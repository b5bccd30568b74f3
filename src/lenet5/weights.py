"""Model weights: safetensors reading and writing with strict checks.

Weights are only ever read as safetensors, never unpickled. Loading compares the file's
tensors with the model's and names every missing, unexpected or misshaped tensor.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

__all__ = [
    "Resolved",
    "WeightsError",
    "infer_config",
    "load_weights",
    "read_safetensors",
    "resolve_pretrained",
    "save_weights",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class WeightsError(ValueError):
    """A weights file is missing, unreadable, tampered with, or does not fit the model."""


def save_weights(
    model: nn.Module, path: str | os.PathLike[str], *, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``model``'s state dict to a safetensors file, atomically.

    Args:
        model: The model.
        path: The ``.safetensors`` file to write.
        metadata: String metadata for the file header (``format: pt`` is always added).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", **(metadata or {})})
        from .training.checkpoint import make_readable

        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | dict[str, torch.Tensor],
    *,
    strict: bool = True,
    name: str | None = None,
) -> nn.Module:
    """Load safetensors weights into ``model`` in place.

    Args:
        model: The model to fill.
        source: A ``.safetensors`` file, or a state dict already read.
        strict: Refuse files whose tensor names do not match the model exactly.
        name: How to call the source in error messages.

    Returns:
        ``model``.

    Raises:
        WeightsError: Naming missing, unexpected and misshaped tensors.
    """
    if name is None:
        name = str(source) if not isinstance(source, dict) else "state dict"
    tensors = source if isinstance(source, dict) else read_safetensors(source)[0]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    misshaped = sorted(
        f"{k} (file {tuple(tensors[k].shape)}, model {tuple(expected[k].shape)})"
        for k in set(expected) & set(tensors)
        if tensors[k].shape != expected[k].shape
    )
    problems = []
    if misshaped:
        problems.append("misshaped: " + ", ".join(misshaped))
    if strict and missing:
        problems.append("missing: " + ", ".join(missing))
    if strict and unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    if problems:
        raise WeightsError(
            f"{name} does not fit {type(model).__name__}: "
            + "; ".join(problems)
            + " (were the weights saved from a model with other constructor arguments?)"
        )
    model.load_state_dict(tensors, strict=strict)
    return model


@dataclass(frozen=True)
class Resolved:
    """Weights found by :func:`resolve_pretrained`.

    Attributes:
        tensors: The state dict read from the safetensors file.
        config: Constructor arguments for the model.
        metadata: The safetensors header metadata.
        source: Where the weights came from, for messages.
    """

    tensors: dict[str, torch.Tensor]
    config: dict[str, Any]
    metadata: dict[str, str]
    source: str


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def infer_config(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """LeNet5 constructor arguments read off the tensor shapes of a state dict."""
    config: dict[str, Any] = {}
    if "features.0.weight" in tensors and tensors["features.0.weight"].dim() == 4:
        config["in_channels"] = int(tensors["features.0.weight"].shape[1])
    if "classifier.5.weight" in tensors and tensors["classifier.5.weight"].dim() == 2:
        config["num_classes"] = int(tensors["classifier.5.weight"].shape[0])
    return config


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read model config {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise WeightsError(f"{path} must hold a JSON object of constructor arguments")
    allowed = {"num_classes", "in_channels"}
    return {k: v for k, v in config.items() if k in allowed}


def _from_file(file: Path, config_file: Path | None, source: str) -> Resolved:
    tensors, metadata = read_safetensors(file)
    config = infer_config(tensors)
    if config_file is not None and config_file.is_file():
        config.update(_read_config(config_file))
    return Resolved(tensors=tensors, config=config, metadata=metadata, source=source)


def resolve_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Resolved:
    """Find and read pretrained weights: registry name, folder, file, or Hub repo id.

    See :meth:`lenet5.LeNet5.from_pretrained` for the accepted forms.

    Raises:
        WeightsError: If nothing matches, or the files are unreadable or fail their checksum.
    """
    text = os.fspath(name_or_path)
    registry = _registry()
    if text in registry:
        entry = registry[text]
        file = entry.verified_path()
        return _from_file(file, None, f"bundled weights {entry.name!r}")
    path = Path(text).expanduser()
    if path.is_dir():
        file = path / WEIGHTS_NAME
        if not file.is_file():
            raise WeightsError(
                f"{path} holds no {WEIGHTS_NAME}; expected a folder written by save_pretrained"
            )
        return _from_file(file, path / CONFIG_NAME, str(path))
    if path.is_file():
        if path.suffix != ".safetensors":
            raise WeightsError(
                f"{path}: only .safetensors weights are loaded (pickle-based .pt/.pth files can "
                "run arbitrary code); convert with safetensors.torch.save_file(state_dict, path)"
            )
        return _from_file(path, path.with_name(CONFIG_NAME), str(path))
    if _REPO_ID.match(text) and not text.endswith(".safetensors"):
        return _from_hub(
            text,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
    names = ", ".join(sorted(registry))
    raise WeightsError(
        f"{text!r} is not a weights name ({names}), an existing folder or .safetensors file, "
        "or a Hugging Face Hub repo id (org/name)"
    )


def _from_hub(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    token: str | bool | None,
) -> Resolved:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
    )

    def fetch(filename: str) -> Path:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=None if cache_dir is None else str(cache_dir),
                local_files_only=local_files_only,
                token=token,
            )
        )

    try:
        file = fetch(WEIGHTS_NAME)
    except LocalEntryNotFoundError as exc:
        raise WeightsError(
            f"{repo_id!r} is not in the Hugging Face cache and downloading is off (offline mode "
            f"or local_files_only): {exc}"
        ) from exc
    except (EntryNotFoundError, HfHubHTTPError, HFValidationError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot fetch {WEIGHTS_NAME} from Hub repo {repo_id!r}: {exc}") from exc
    try:
        config_file: Path | None = fetch(CONFIG_NAME)
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        config_file = None  # the shapes tell the constructor arguments
    return _from_file(file, config_file, f"hf://{repo_id}")


def registry() -> dict[str, Any]:
    """The bundled weight sets by name (filled in by the registry)."""
    return {}


_registry = registry
