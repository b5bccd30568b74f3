"""MNIST-format data: the IDX reader, dataset loaders and the normalisation constants.

The loaders return an :class:`ImageSet`: all images as one ``uint8`` tensor of shape
``(N, 28, 28)`` and all labels as one ``int64`` tensor. Training slices shuffled batches
from these tensors on the training device, so no per-sample Python code runs per step.
For code that wants torchvision transforms, :meth:`ImageSet.as_dataset` gives a
map-style :class:`torch.utils.data.Dataset`.

Where the files are looked for, in order: the ``root`` argument, then the
``LENET5_DATA_DIR`` environment variable. Inside that folder the four files may lie
directly, or in torchvision's layout (``<root>/MNIST/raw/`` or
``<root>/FashionMNIST/raw/``), gzipped or not.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "MNIST_MEAN",
    "MNIST_STD",
    "DataError",
    "DatasetInfo",
    "ImageSet",
    "ImageSetDataset",
    "find_data_dir",
    "load_dataset",
    "load_mnist",
    "normalize",
    "read_idx",
]

#: Environment variable naming the folder that holds the IDX files.
DATA_DIR_ENV = "LENET5_DATA_DIR"

#: Mean of the MNIST training pixels, scaled to [0, 1].
MNIST_MEAN = 0.1307
#: Standard deviation of the MNIST training pixels, scaled to [0, 1].
MNIST_STD = 0.3081

_IDX_DTYPES = {0x08: torch.uint8}
_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801

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

#: The datasets this module knows, by name. MD5 sums are of the decompressed files, so a
#: gzipped copy, a re-gzipped copy and torchvision's decompressed copy all verify.
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


def _dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}; choose one of: {known}") from None


def read_idx(path: str | os.PathLike[str], *, md5: str | None = None) -> torch.Tensor:
    """Read an IDX file (gzipped or not) into a tensor.

    The header is validated against the file: the magic number, the element type, the
    number of dimensions and the payload length must all agree.

    Args:
        path: The file to read. A name ending in ``.gz`` is decompressed.
        md5: If given, the expected MD5 of the decompressed bytes. A mismatch only warns:
            the file is structurally valid, but it is not the official one.

    Returns:
        A ``uint8`` tensor with the shape the header gives (``(N,)`` for labels,
        ``(N, rows, cols)`` for images).

    Raises:
        DataError: If the file cannot be read or is truncated, corrupt or not IDX.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: cannot read ({exc}); the file is truncated or corrupt, download it again"
        ) from exc
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise DataError(
            f"{path}: bad magic number 0x{raw[:4].hex()}; expected 0x{_IMAGE_MAGIC:08x} (images) "
            f"or 0x{_LABEL_MAGIC:08x} (labels): this is not an MNIST-format IDX file"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    count = 1
    for d in dims:
        count *= d
    if len(raw) - header_len != count:
        raise DataError(
            f"{path}: header promises {'x'.join(map(str, dims))} = {count:,} values but the file "
            f"holds {len(raw) - header_len:,}; the file is truncated or corrupt"
        )
    if md5 is not None:
        actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if actual != md5:
            warnings.warn(
                f"{path}: MD5 of the decompressed data is {actual}, expected {md5}; the file is "
                "well-formed but differs from the official release, so results may not be "
                "comparable with published ones",
                stacklevel=2,
            )
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header_len, count=count)
    return data.reshape(dims)


def find_data_dir(root: str | os.PathLike[str] | None = None, dataset: str = "mnist") -> Path:
    """Find the folder that holds a dataset's IDX files.

    Args:
        root: The folder to look in; ``None`` uses ``$LENET5_DATA_DIR``.
        dataset: A name from :data:`DATASETS`.

    Returns:
        The folder that holds the files: ``root`` itself, or torchvision's
        ``root/<Folder>/raw``.

    Raises:
        DataError: If no folder is given, the folder does not exist, or the files are not in it.
    """
    info = _dataset_info(dataset)
    if root is None:
        env = os.environ.get(DATA_DIR_ENV)
        if not env:
            raise DataError(
                f"no data folder given: pass a folder (lenet5: --data-dir DIR) or set "
                f"{DATA_DIR_ENV}; {info.download_hint}"
            )
        root = env
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"data folder {base} does not exist; {info.download_hint}")
    needed = sorted(set(info.files.values()))
    for candidate in (base, base / info.torchvision_folder / "raw"):
        if all(_locate(candidate, name) is not None for name in needed):
            return candidate
    raise DataError(
        f"{base} does not hold the {dataset} files ({', '.join(n + '[.gz]' for n in needed)}), "
        f"neither directly nor in {info.torchvision_folder}/raw/; {info.download_hint}"
    )


def _locate(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(root: Path, dataset: str) -> Path:
    """Fetch the files with torchvision into ``root/<Folder>/raw`` and return that folder."""
    from torchvision import datasets as tv_datasets

    cls = {"mnist": tv_datasets.MNIST, "fashion-mnist": tv_datasets.FashionMNIST}[dataset]
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        try:
            cls(str(root), train=train, download=True)
        except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError
            raise DataError(f"could not download {dataset} into {root}: {exc}") from exc
    return root / _dataset_info(dataset).torchvision_folder / "raw"


@dataclass(frozen=True)
class ImageSet:
    """A whole split of an MNIST-format dataset as two tensors.

    Attributes:
        images: ``uint8`` tensor of shape ``(N, H, W)``.
        labels: ``int64`` tensor of shape ``(N,)``.
        classes: Class names, indexed by label.
        mean: Normalisation mean for these images, in [0, 1] units.
        std: Normalisation standard deviation, in [0, 1] units.
        name: Where the data came from, for messages (``"mnist/train"``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    name: str = "data"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 3:
            raise DataError(
                f"{self.name}: images must be a uint8 tensor of shape (N, H, W), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise DataError(
                f"{self.name}: {self.images.shape[0]} images but labels of shape "
                f"{tuple(self.labels.shape)}"
            )
        if self.labels.dtype != torch.int64:
            object.__setattr__(self, "labels", self.labels.long())

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        size = "x".join(str(d) for d in self.images.shape[1:])
        return (
            f"ImageSet(name={self.name!r}, {len(self):,} images of {size}, "
            f"{len(self.classes)} classes, device={self.device})"
        )

    @property
    def device(self) -> torch.device:
        """The device the tensors live on."""
        return self.images.device

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> ImageSet:
        """Return a copy on ``device`` (the same object if it is already there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        images = self.images
        labels = self.labels
        if device.type == "cuda" and images.device.type == "cpu":
            # Pinned host memory lets the one large copy run at full bus speed.
            images, labels = images.pin_memory(), labels.pin_memory()
            non_blocking = True
        return self._replace(
            images=images.to(device, non_blocking=non_blocking),
            labels=labels.to(device, non_blocking=non_blocking),
        )

    def subset(self, indices: torch.Tensor | Sequence[int] | slice) -> ImageSet:
        """Return the images and labels at ``indices`` (a slice, index list or tensor)."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return self._replace(images=self.images[indices], labels=self.labels[indices])

    def split(self, n: int, *, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """Split off ``n`` random examples, e.g. a validation set carved from training data.

        Args:
            n: Size of the second part, ``0 < n < len(self)``.
            seed: Seed of the permutation, so the split is reproducible.

        Returns:
            ``(rest, held_out)``.
        """
        if not 0 < n < len(self):
            raise DataError(f"{self.name}: cannot hold out {n} of {len(self)} examples")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        perm = perm.to(self.images.device)
        rest, held = perm[:-n].sort().values, perm[-n:].sort().values
        return (
            self.subset(rest)._replace(name=f"{self.name}[train]"),
            self.subset(held)._replace(name=f"{self.name}[val]"),
        )

    def normalized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """All images as a normalised float tensor of shape ``(N, 1, H, W)``."""
        return normalize(self.images, self.mean, self.std, dtype=dtype)

    def class_counts(self) -> torch.Tensor:
        """Number of examples per class, as an ``int64`` tensor of length ``len(classes)``."""
        return torch.bincount(self.labels, minlength=len(self.classes))

    def as_dataset(self, transform: Callable[[Any], Any] | None = None) -> ImageSetDataset:
        """A map-style dataset over this set (see :class:`ImageSetDataset`)."""
        return ImageSetDataset(self, transform=transform)

    def _replace(self, **changes: Any) -> ImageSet:
        return dataclasses.replace(self, **changes)


class ImageSetDataset(Dataset[tuple[Any, int]]):
    """A map-style dataset over an :class:`ImageSet`, for use with torchvision transforms.

    Without a transform an item is ``(image, label)`` with ``image`` a ``uint8`` tensor of
    shape ``(1, H, W)``. With a transform, the image is given to it as a PIL image (as
    torchvision's ``MNIST`` does), so ``transforms.ToTensor()`` and friends work unchanged.

    Args:
        images: The data.
        transform: Optional callable applied to each PIL image.
    """

    def __init__(self, images: ImageSet, transform: Callable[[Any], Any] | None = None) -> None:
        self.data = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.data.images[index]
        label = int(self.data.labels[index])
        if self.transform is None:
            return image.unsqueeze(0), label
        from PIL import Image

        return self.transform(Image.fromarray(image.cpu().numpy(), mode="L")), label


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


def load_dataset(
    name: str = "mnist",
    root: str | os.PathLike[str] | None = None,
    *,
    split: Split = "train",
    download: bool = False,
    verify: bool = True,
) -> ImageSet:
    """Load one split of an MNIST-format dataset.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        root: Folder holding the files; ``None`` uses ``$LENET5_DATA_DIR``.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        download: If the files are not found, fetch them with torchvision into ``root``
            (needs internet access).
        verify: Check the MD5 of each file against the official release (warns on mismatch).

    Returns:
        The split as an :class:`ImageSet` on the CPU.

    Raises:
        DataError: If the files are missing or malformed.
    """
    info = _dataset_info(name)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    try:
        folder = find_data_dir(root, name)
    except DataError:
        if not download:
            raise
        if root is None and not os.environ.get(DATA_DIR_ENV):
            raise DataError(
                f"download=True needs a folder: pass root or set {DATA_DIR_ENV}"
            ) from None
        folder = _download(Path(root if root is not None else os.environ[DATA_DIR_ENV]), name)
    tensors = {}
    for kind in ("images", "labels"):
        file_name = info.files[(split, kind)]
        path = _locate(folder, file_name)
        if path is None:  # pragma: no cover - find_data_dir checked this
            raise DataError(f"{folder / file_name}[.gz]: file not found")
        tensors[kind] = read_idx(path, md5=info.md5[file_name] if verify else None)
    images, labels = tensors["images"], tensors["labels"]
    if images.dim() != 3 or labels.dim() != 1:
        raise DataError(
            f"{folder}: {info.files[(split, 'images')]} must hold images (3 dimensions) and "
            f"{info.files[(split, 'labels')]} labels (1 dimension); are the files swapped?"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{folder}: {images.shape[0]:,} images but {labels.shape[0]:,} labels in the "
            f"{split} split; one of the files is wrong"
        )
    if labels.numel() and int(labels.max()) >= len(info.classes):
        raise DataError(f"{folder}: label {int(labels.max())} out of range for {name}")
    return ImageSet(
        images=images,
        labels=labels.long(),
        classes=info.classes,
        mean=info.mean,
        std=info.std,
        name=f"{name}/{split}",
    )


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    split: Split = "train",
    download: bool = False,
) -> ImageSet:
    """Load one split of MNIST; shorthand for ``load_dataset("mnist", ...)``."""
    return load_dataset("mnist", root, split=split, download=download)
