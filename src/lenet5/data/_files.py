"""Finding, downloading and loading the IDX files of a dataset (the search order is in
:mod:`lenet5.data`), and telling datasets apart by their MD5 sums."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ._facts import (
    DATA_DIR_ENV,
    DATASETS,
    IMAGE_SIZE,
    DataError,
    DatasetInfo,
    Split,
    dataset_info,
    identify_file,
)
from ._idx import read_idx_file
from ._imageset import ImageSet

__all__ = ["find_data_dir", "identify_dataset", "load_dataset", "load_mnist"]


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
    info = dataset_info(dataset)
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
    return root / dataset_info(dataset).torchvision_folder / "raw"


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
        verify: Check the MD5 of each file against the official release: a file that is
            another known dataset's (Fashion-MNIST's files in an MNIST folder) is refused,
            any other difference warns.

    Returns:
        The split as an :class:`ImageSet` on the CPU.

    Raises:
        DataError: If the files are missing or malformed, or are another known dataset's
            (their MD5 sums say which).
    """
    info = dataset_info(name)
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
    images, labels = _read_split(folder, info, split, verify=verify)
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


def _read_split(
    folder: Path, info: DatasetInfo, split: Split, *, verify: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of one split, checked against each other and the dataset."""
    tensors, paths, unofficial = {}, {}, []
    for kind in ("images", "labels"):
        file_name = info.files[(split, kind)]
        path = _locate(folder, file_name)
        if path is None:  # pragma: no cover - find_data_dir checked this
            raise DataError(f"{folder / file_name}[.gz]: file not found")
        read = read_idx_file(path, image_size=(IMAGE_SIZE, IMAGE_SIZE))
        if verify and not _check_identity(path, file_name, read.md5, info):
            unofficial.append(path.name)
        tensors[kind], paths[kind] = read.tensor, path
    if unofficial:
        # One warning per split, not per file; its cause is the folder, so the command
        # line shows one line for the whole folder (lenet5.cli._errors).
        warning = UserWarning(
            f"{folder}: {' and '.join(unofficial)} differ from the official {info.name} "
            "release (MD5 of the decompressed data); the files are well-formed, but results "
            "may not be comparable with published ones"
        )
        warning.lenet5_cause = f"unofficial data in {folder}"  # type: ignore[attr-defined]
        warnings.warn(warning, stacklevel=3)
    images, labels = tensors["images"], tensors["labels"]
    if images.dim() != 3 or labels.dim() != 1:
        raise DataError(
            f"{folder}: {info.files[(split, 'images')]} must hold images (3 dimensions) and "
            f"{info.files[(split, 'labels')]} labels (1 dimension); are the files swapped?"
        )
    if images.shape[0] == 0:
        raise DataError(
            f"{paths['images']}: holds no images (its header says 0x28x28): the {split} split "
            "is empty"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{paths['labels']}: {images.shape[0]:,} images but {labels.shape[0]:,} labels in "
            f"the {split} split (the images are {paths['images'].name}); one of the files is "
            "wrong"
        )
    if int(labels.max()) >= len(info.classes):
        raise DataError(f"{folder}: label {int(labels.max())} out of range for {info.name}")
    return images, labels


def _check_identity(path: Path, file_name: str, md5: str, info: DatasetInfo) -> bool:
    """Whether the file is the official release's; refuse another known dataset's.

    Raises:
        DataError: If the file is another known dataset's (its MD5 says which).
    """
    if md5 == info.md5[file_name]:
        return True
    other = identify_file(file_name, md5)
    if other is not None:
        raise DataError(
            f"{path} is a {other} file (its MD5 is {other}'s), not {info.name}; to use it, "
            f"say so: dataset={other!r} (lenet5: --dataset {other})"
        )
    return False


def identify_dataset(folder: str | os.PathLike[str]) -> str | None:
    """The known dataset whose files lie in ``folder``, told by content (MD5), or ``None``.

    Looks at the label files (small), directly in ``folder`` or in torchvision's layout.
    """
    base = Path(folder).expanduser()
    for info in DATASETS.values():
        for candidate in (base, base / info.torchvision_folder / "raw"):
            for split in ("train", "test"):
                name = info.files[(split, "labels")]
                path = _locate(candidate, name)
                if path is None:
                    continue
                try:
                    found = identify_file(name, read_idx_file(path).md5)
                except DataError:
                    continue
                if found is not None:
                    return found
    return None
