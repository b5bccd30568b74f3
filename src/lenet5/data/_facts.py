"""Dataset facts (files, MD5 sums, classes, mean and std) and normalisation, in one place.

Everything that knows MNIST's statistics reads them here: the loaders, the Trainer, the
weights registry and the preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .._hints import did_you_mean

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "IMAGE_SIZE",
    "MNIST_MEAN",
    "MNIST_STD",
    "DataError",
    "DatasetInfo",
    "Split",
    "dataset_info",
    "identify_file",
    "normalize",
]

# The constants are described where the API reference reads them: lenet5/data/__init__.py.
DATA_DIR_ENV = "LENET5_DATA_DIR"

IMAGE_SIZE = 28

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


Split = Literal["train", "test"]


class DataError(ValueError):
    """A data file or folder is missing, malformed or not what was expected."""


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about one MNIST-format dataset.

    Attributes:
        name: The name used by :func:`load_dataset` (``"mnist"``, ``"fashion-mnist"``).
        torchvision_folder: The folder name torchvision uses under its ``root``.
        classes: Human-readable class names, indexed by label.
        mean: Mean training pixel, scaled to [0, 1].
        std: Standard deviation of the training pixels, scaled to [0, 1].
        files: File name (without ``.gz``) for each split and kind.
        md5: MD5 of each file's decompressed bytes, by file name.
        download_hint: Where the files come from, shown when they are missing.
    """

    name: str
    torchvision_folder: str
    classes: tuple[str, ...]
    mean: float
    std: float
    files: dict[tuple[Split, str], str]
    md5: dict[str, str]
    download_hint: str


_MNIST_FILES: dict[tuple[Split, str], str] = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

# MD5 sums are of the decompressed files, so a gzipped copy, a re-gzipped copy and
# torchvision's decompressed copy all verify.
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        torchvision_folder="MNIST",
        classes=tuple(str(d) for d in range(10)),
        mean=MNIST_MEAN,
        std=MNIST_STD,
        files=_MNIST_FILES,
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        download_hint="pass download=True (lenet5: --download) to fetch them with torchvision",
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        torchvision_folder="FashionMNIST",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mean=0.2860,
        std=0.3530,
        files=_MNIST_FILES,
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        download_hint="pass download=True (lenet5: --download) to fetch them with torchvision",
    ),
}


def identify_file(file_name: str, md5: str) -> str | None:
    """The known dataset whose file ``file_name`` has this MD5 (decompressed), or ``None``."""
    for info in DATASETS.values():
        if info.md5.get(file_name) == md5:
            return info.name
    return None


def dataset_info(name: str) -> DatasetInfo:
    """The facts of the dataset called ``name``.

    Raises:
        DataError: For an unknown name, with the closest known one suggested.
    """
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(
            f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; choose one of: {known}"
        ) from None


def normalize(
    images: torch.Tensor,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Turn ``uint8`` images into the normalised float input the model expects.

    Args:
        images: ``uint8`` tensor of shape ``(N, H, W)`` or ``(N, 1, H, W)``, values 0-255.
        mean: Mean in [0, 1] units.
        std: Standard deviation in [0, 1] units.
        dtype: Floating dtype of the result.

    Returns:
        A tensor of shape ``(N, 1, H, W)`` holding ``(images / 255 - mean) / std``.
    """
    if images.dtype != torch.uint8:
        raise DataError(f"normalize expects uint8 images (0-255), got {images.dtype}")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    # One fused multiply-add: x * (1 / (255 std)) - mean / std.
    scale = 1.0 / (255.0 * std)
    return images.to(dtype).mul_(scale).sub_(mean / std)
