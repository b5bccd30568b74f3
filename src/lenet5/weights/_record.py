"""The record of a weight set (:class:`Weights`) and its ``meta``, with the shared defaults.

A record holds what identifies the file (name, file, SHA-256) and, in :attr:`Weights.meta`,
everything known about the weights (torchvision's ``meta``): the dataset, its classes and
normalisation, the parameter count, the file size, the accuracy and the recipe. The records
drive their use: the model is built from them (``num_classes = len(classes)``) and
:meth:`Weights.transforms` prepares pictures with their normalisation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from ..data import dataset_info
from ..preprocess import MNISTTransform
from ._files import WeightsError

__all__ = ["Weights", "WeightsMeta", "weights_meta"]

_PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"

#: Parameters of ``LeNet5()`` at the default constructor arguments.
_DEFAULT_NUM_PARAMS = 44_426


class WeightsMeta(TypedDict):
    """What is known about a weight set (:attr:`Weights.meta`).

    Attributes:
        dataset: The dataset trained on (``"mnist"``, ``"fashion-mnist"``).
        classes: Class names, indexed by output; ``num_classes`` is their number.
        mean: Normalisation mean the weights expect (inputs are ``(x / 255 - mean) / std``).
        std: Normalisation standard deviation.
        in_channels: Model constructor argument.
        num_params: Number of parameters of the model.
        file_size: Size of the file in bytes.
        test_accuracy: Accuracy in percent on the dataset's 10,000 test images, measured with
            ``lenet5 evaluate --weights NAME`` (``None`` when not known).
        seed_accuracies: Test accuracy (percent) of the same recipe run with seeds 0, 1, 2...;
            these weights are the seed-0 run. Empty when only one run was made.
        corruption_accuracy: Mean accuracy in percent over the fixed corruptions of the test
            images (:data:`lenet5.corruptions.CORRUPTIONS`, seed 0), measured with
            ``benchmarks/robustness.py`` (``None`` when not measured).
        recipe: The exact command that trained them (``None`` when not known).
        torch_version: The torch version they were trained with (``None`` when not known).
        notes: How the recipe was chosen and anything else worth knowing.
    """

    dataset: str
    classes: tuple[str, ...]
    mean: float
    std: float
    in_channels: int
    num_params: int
    file_size: int
    test_accuracy: float | None
    seed_accuracies: tuple[float, ...]
    corruption_accuracy: float | None
    recipe: str | None
    torch_version: str | None
    notes: str


def weights_meta(
    dataset: str = "mnist",
    *,
    file_size: int,
    test_accuracy: float | None = None,
    recipe: str | None = None,
    notes: str = "",
    seed_accuracies: tuple[float, ...] = (),
    corruption_accuracy: float | None = None,
    torch_version: str | None = None,
    classes: tuple[str, ...] | None = None,
    mean: float | None = None,
    std: float | None = None,
    in_channels: int = 1,
    num_params: int = _DEFAULT_NUM_PARAMS,
) -> WeightsMeta:
    """The :class:`WeightsMeta` of a weight set: the given facts over the shared defaults.

    ``classes``, ``mean`` and ``std`` default to the dataset's (:data:`lenet5.data.DATASETS`),
    ``in_channels`` and ``num_params`` to those of ``LeNet5()`` on MNIST-format images.

    Raises:
        DataError: If ``dataset`` is unknown and one of ``classes``, ``mean``, ``std`` is
            not given.
    """
    if classes is None or mean is None or std is None:
        info = dataset_info(dataset)
        classes = info.classes if classes is None else classes
        mean = info.mean if mean is None else mean
        std = info.std if std is None else std
    return WeightsMeta(
        dataset=dataset,
        classes=tuple(classes),
        mean=mean,
        std=std,
        in_channels=in_channels,
        num_params=num_params,
        file_size=file_size,
        test_accuracy=test_accuracy,
        seed_accuracies=tuple(seed_accuracies),
        corruption_accuracy=corruption_accuracy,
        recipe=recipe,
        torch_version=torch_version,
        notes=notes,
    )


@dataclass(frozen=True)
class Weights:
    """One weight set: where its file is, how to check it, and what is known about it.

    The bundled records are in :data:`REGISTRY`. :meth:`lenet5.model.LeNet5.from_pretrained`
    keeps the record of what it loaded as ``model.weights``; for a folder, file or Hub repo
    that is a record made from the file's header and ``config.json`` (no SHA-256: nothing
    bundled to compare with).

    Attributes:
        name: Registry name, e.g. ``"mnist-v1"`` (for other weights, where they came from).
        file: File name inside the package's ``pretrained/`` folder (or an absolute path).
        sha256: SHA-256 of that file, checked before every load; ``""`` if not bundled.
        meta: What is known about the weights (:class:`WeightsMeta`); the properties below
            read it.
    """

    name: str
    file: str
    sha256: str
    meta: WeightsMeta = field(hash=False)

    # ----------------------------------------------------------- views of meta

    @property
    def dataset(self) -> str:
        """The dataset trained on."""
        return self.meta["dataset"]

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, indexed by output."""
        return self.meta["classes"]

    @property
    def num_classes(self) -> int:
        """The number of classes (a model constructor argument)."""
        return len(self.meta["classes"])

    @property
    def in_channels(self) -> int:
        """The number of input channels (a model constructor argument)."""
        return self.meta["in_channels"]

    @property
    def mean(self) -> float:
        """Normalisation mean the weights expect."""
        return self.meta["mean"]

    @property
    def std(self) -> float:
        """Normalisation standard deviation the weights expect."""
        return self.meta["std"]

    @property
    def num_params(self) -> int:
        """Number of parameters of the model."""
        return self.meta["num_params"]

    @property
    def file_size(self) -> int:
        """Size of the file in bytes."""
        return self.meta["file_size"]

    @property
    def test_accuracy(self) -> float | None:
        """Test accuracy in percent (``None`` when not known)."""
        return self.meta["test_accuracy"]

    @property
    def seed_accuracies(self) -> tuple[float, ...]:
        """Test accuracy of the recipe with seeds 0, 1, 2... (empty for a single run)."""
        return self.meta["seed_accuracies"]

    @property
    def corruption_accuracy(self) -> float | None:
        """Mean accuracy over the test set's fixed corruptions (``None`` if not measured)."""
        return self.meta["corruption_accuracy"]

    @property
    def recipe(self) -> str | None:
        """The command that trained the weights (``None`` when not known)."""
        return self.meta["recipe"]

    @property
    def torch_version(self) -> str | None:
        """The torch version the weights were trained with (``None`` when not known)."""
        return self.meta["torch_version"]

    @property
    def notes(self) -> str:
        """How the recipe was chosen and anything else worth knowing."""
        return self.meta["notes"]

    @property
    def recipe_mean_accuracy(self) -> float | None:
        """Mean test accuracy of the recipe over :attr:`seed_accuracies` (``None`` if empty)."""
        if not self.seed_accuracies:
            return None
        return sum(self.seed_accuracies) / len(self.seed_accuracies)

    # ------------------------------------------------------------------- use

    def config(self) -> dict[str, int]:
        """The model's constructor arguments: ``num_classes = len(classes)``, ``in_channels``."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels}

    def reheaded(self, num_classes: int, *, num_params: int) -> Weights:
        """The record of a model that has these weights' layers but a new, untrained last
        layer with ``num_classes`` outputs (``LeNet5.from_pretrained(name,
        num_classes=N)``).

        What the body brings stays: the dataset it was trained on, its normalisation (so
        :meth:`transforms` prepares inputs as the body expects), the recipe, the torch
        version and the file. What belonged to the old head goes: the classes are ``"0"``,
        ``"1"``... (the new task's names are not known here; ``save_pretrained(classes=...)``
        records them), and the accuracies are ``None`` or empty. The name says so:
        ``"mnist-v3 (new 3-class head)"``; the notes, which layers are whose.

        Args:
            num_classes: The new head's number of outputs.
            num_params: The new model's parameter count.

        Returns:
            A new record (this one is unchanged).
        """
        meta = WeightsMeta(
            **{
                **self.meta,
                "classes": tuple(str(i) for i in range(num_classes)),
                "num_params": num_params,
                "test_accuracy": None,
                "seed_accuracies": (),
                "corruption_accuracy": None,
                "notes": (
                    f"Every layer of {self.name!r} ({self.dataset}, {self.num_classes} "
                    f"classes) but the last, which is new: {num_classes} outputs, initialised "
                    "at random, not trained."
                ),
            }
        )
        return Weights(
            name=f"{self.name} (new {num_classes}-class head)",
            file=self.file,
            sha256=self.sha256,
            meta=meta,
        )

    def transforms(self) -> MNISTTransform:
        """The preprocessing these weights expect, as torchvision's ``weights.transforms()``.

        Returns:
            A callable taking a PIL image, a file path or an image tensor (``uint8`` 0-255 or
            float 0-1): :func:`lenet5.preprocess.to_mnist`, then normalisation with
            :attr:`mean` and :attr:`std`; it returns a float tensor of shape ``(1, 28, 28)``.
        """
        return MNISTTransform(self.mean, self.std)

    @property
    def path(self) -> Path:
        """Where the file lies (in the installed package for bundled weights)."""
        return _PRETRAINED_DIR / self.file

    def verified_path(self) -> Path:
        """The file's path, after checking its size and SHA-256 (if the record has one).

        At most the recorded size plus one byte is read: a file of another size cannot
        have the recorded SHA-256, so it is refused without being read to its end.

        Raises:
            WeightsError: If the file is missing, truncated, replaced or altered.
        """
        path = self.path
        if not path.is_file():
            where = "reinstall lenet5" if self.sha256 else "it was moved or deleted"
            raise WeightsError(f"weights {self.name!r} are missing ({path}); {where}")
        if not self.sha256:
            return path  # not bundled: nothing to compare with
        with path.open("rb") as file:
            data = file.read(self.file_size + 1)
        if len(data) != self.file_size:
            size = f"{path.stat().st_size:,}" if len(data) > self.file_size else f"{len(data):,}"
            raise WeightsError(
                f"bundled weights {self.name!r} at {path} fail their SHA-256 check: the file "
                f"is {size} bytes, the recorded one {self.file_size:,} (truncated, or replaced "
                "by another file); reinstall lenet5"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise WeightsError(
                f"bundled weights {self.name!r} at {path} fail their SHA-256 check (got "
                f"{digest}, expected {self.sha256}): the file is corrupt or tampered with; "
                "reinstall lenet5"
            )
        return path

    def metadata(self) -> dict[str, str]:
        """The fields stored in the safetensors header of the file: the name, ``meta`` (but
        the file size and seed accuracies, which the notes state in words) and the
        constructor arguments. Unknown fields are left out."""
        fields = {
            "name": self.name,
            "dataset": self.dataset,
            "test_accuracy": None if self.test_accuracy is None else f"{self.test_accuracy:.2f}",
            "num_params": str(self.num_params),
            "num_classes": str(self.num_classes),
            "in_channels": str(self.in_channels),
            "mean": repr(self.mean),
            "std": repr(self.std),
            "classes": json.dumps(list(self.classes)),
            "recipe": self.recipe,
            "torch_version": self.torch_version,
            "notes": self.notes,
        }
        return {k: v for k, v in fields.items() if v is not None}
