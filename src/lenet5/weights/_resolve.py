"""Find and read pretrained weights: a registry name, a folder, a file or a Hub repo id.

Whatever the source, the result is the same: the tensors, the header metadata and a
:class:`~lenet5.weights.Weights` record of them, with the constructor arguments already
checked against the tensor shapes, so that a model can be built from the record safely.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .._hints import did_you_mean
from .._io import CONFIG_NAME, WEIGHTS_NAME, loads_json
from ..data import DATASETS
from ._bundled import registry
from ._files import WeightsError, check_config, infer_config, read_config, read_safetensors
from ._hub import hub_files
from ._record import Weights, WeightsMeta, weights_meta

__all__ = ["Resolved", "check_weights_name", "header_meta", "resolve_pretrained"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Resolved:
    """Weights found by :func:`resolve_pretrained`.

    Attributes:
        tensors: The state dict read from the safetensors file.
        metadata: The safetensors header metadata.
        weights: The record to build the model from (bundled, or made from the header and
            ``config.json``).
        source: Where the weights came from, for messages.
    """

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    weights: Weights
    source: str

    @property
    def config(self) -> dict[str, int]:
        """Constructor arguments for the model (``weights.config()``)."""
        return self.weights.config()


#: The range of each number a header may hold: (low, high, whether low itself is refused).
_HEADER_RANGES = {
    "mean": (-1e6, 1e6, False),
    "std": (0.0, 1e6, True),
    "test_accuracy": (0.0, 100.0, False),
}
#: The most class names a header may list, and the longest name.
MAX_CLASSES = 100_000
MAX_CLASS_NAME = 1000


def _header_number(metadata: Mapping[str, str], key: str, source: str) -> float | None:
    """A number of the header, finite and in its range (:data:`_HEADER_RANGES`)."""
    if key not in metadata:
        return None
    low, high, low_open = _HEADER_RANGES[key]
    text = metadata[key]
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise WeightsError(
            f"{source}: header field {key!r} must be a number, got {text!r}"
        ) from None
    above = number > low if low_open else number >= low
    if not (math.isfinite(number) and above and number <= high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise WeightsError(
            f"{source}: header field {key!r} must be a finite number in {interval}, got "
            f"{text!r}; the file is damaged or was written by another program"
        )
    return number


def _header_classes(metadata: Mapping[str, str], source: str) -> tuple[str, ...] | None:
    """The class names of the header: a JSON list of strings, bounded in count and length."""
    if "classes" not in metadata:
        return None
    try:
        classes = loads_json(metadata["classes"], max_depth=1)
    except ValueError:
        classes = None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise WeightsError(f"{source}: header field 'classes' must be a JSON list of strings")
    if len(classes) > MAX_CLASSES or any(len(c) > MAX_CLASS_NAME for c in classes):
        raise WeightsError(
            f"{source}: header field 'classes' holds more than {MAX_CLASSES:,} names or a "
            f"name of more than {MAX_CLASS_NAME:,} characters; the file is damaged"
        )
    return tuple(classes)


def header_meta(
    metadata: Mapping[str, str],
    *,
    num_classes: int | None,
    in_channels: int = 1,
    num_params: int,
    file_size: int,
    source: str,
) -> WeightsMeta:
    """What a safetensors header says about its weights, the dataset's facts filling the gaps.

    Dataset, mean, std and classes come from the header when present, else from the
    dataset's entry in :data:`lenet5.data.DATASETS` (MNIST when the dataset is not known).
    Class names that do not match ``num_classes`` are replaced by the dataset's, or by
    ``"0"``, ``"1"``... if those do not match either.

    Raises:
        WeightsError: If a header field is malformed: ``mean`` or ``std`` not a finite
            number (``std`` not positive), ``test_accuracy`` not in [0, 100], ``classes``
            not a JSON list of strings.
    """
    dataset = metadata.get("dataset", "mnist")
    facts = DATASETS.get(dataset, DATASETS["mnist"])
    classes = _header_classes(metadata, source) or facts.classes
    if num_classes is not None and len(classes) != num_classes:
        same = len(facts.classes) == num_classes
        classes = facts.classes if same else tuple(str(i) for i in range(num_classes))
    mean = _header_number(metadata, "mean", source)
    std = _header_number(metadata, "std", source)
    return weights_meta(
        dataset,
        file_size=file_size,
        test_accuracy=_header_number(metadata, "test_accuracy", source),
        recipe=metadata.get("recipe"),
        notes=metadata.get("notes", ""),
        torch_version=metadata.get("torch_version"),
        classes=classes,
        mean=facts.mean if mean is None else mean,
        std=facts.std if std is None else std,
        in_channels=in_channels,
        num_params=num_params,
    )


def _from_file(file: Path, config_file: Path | None, source: str) -> Resolved:
    tensors, metadata = read_safetensors(file)
    config = infer_config(tensors)
    if config_file is not None and config_file.is_file():
        written = read_config(config_file)
        check_config(written, tensors, config_name=str(config_file), weights_name=str(file))
        config.update(written)
    meta = header_meta(
        metadata,
        num_classes=config.get("num_classes"),
        in_channels=config.get("in_channels", 1),
        num_params=sum(t.numel() for t in tensors.values()),
        file_size=file.stat().st_size,
        source=str(file),
    )
    record = Weights(name=source, file=os.path.abspath(file), sha256="", meta=meta)
    return Resolved(tensors=tensors, metadata=metadata, weights=record, source=source)


def _from_registry(entry: Weights) -> Resolved:
    file = entry.verified_path()
    tensors, metadata = read_safetensors(file)
    source = f"bundled weights {entry.name!r}"
    check_config(
        entry.config(), tensors, config_name=f"the record of {source}", weights_name=str(file)
    )
    return Resolved(tensors=tensors, metadata=metadata, weights=entry, source=source)


def check_weights_name(name_or_path: object) -> str:
    """The text of a weights name or path, refused when it cannot name weights.

    An empty or blank name would otherwise mean the working folder (``Path("")`` is
    ``.``), and a name with a NUL byte cannot be a path.

    Raises:
        WeightsError: For a name that is not a string or path, empty, blank, with spaces
            around it (unless such a file exists) or with a NUL byte.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise WeightsError(
            f"weights must be named by a string or a path, got {type(name_or_path).__name__}"
        )
    text = os.fspath(name_or_path)
    if not isinstance(text, str):
        raise WeightsError(f"weights path {text!r} must be text, not bytes")
    if not text.strip():
        raise WeightsError(
            f"empty weights name {text!r}: give a registry name ({', '.join(sorted(registry()))}),"
            " a folder, a .safetensors file or a Hub repo id (for the working folder, say '.')"
        )
    if "\0" in text:
        raise WeightsError(f"weights name {text!r} holds a NUL character")
    if text != text.strip() and not os.path.lexists(text):
        raise WeightsError(
            f"weights name {text!r} has spaces around it (and no such file exists); "
            f"did you mean {text.strip()!r}?"
        )
    return text


def resolve_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> Resolved:
    """Find and read pretrained weights: registry name, folder, file, or Hub repo id.

    See :meth:`lenet5.model.LeNet5.from_pretrained` for the accepted forms. No model is
    built: ``config.json`` is checked against the tensor shapes first.

    Raises:
        WeightsError: If the name is empty or blank (:func:`check_weights_name`), nothing
            matches, or the files are unreadable, fail their checksum or contradict each
            other.
    """
    text = check_weights_name(name_or_path)
    known = registry()
    if text in known:
        return _from_registry(known[text])
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
    if path.exists():
        raise WeightsError(f"{path} is neither a folder nor a regular file; give weights files")
    if _REPO_ID.match(text) and not text.endswith(".safetensors"):
        return _from_hub(
            text,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
    raise WeightsError(
        f"{text!r} is not a weights name{did_you_mean(text, known)} "
        f"({', '.join(sorted(known))}), an existing folder or .safetensors file, "
        "or a Hugging Face Hub repo id (org/name)"
    )


def _from_hub(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    token: str | bool | None,
    force_download: bool,
) -> Resolved:
    file, config_file = hub_files(
        repo_id,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
    )
    return _from_file(file, config_file, f"hf://{repo_id}")
