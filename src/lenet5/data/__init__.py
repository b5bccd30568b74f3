"""MNIST-format data: the dataset facts, the IDX reader, loaders and :class:`ImageSet`.

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

from .._hints import publish
from . import _facts
from ._adapters import as_image_set, known_norm
from ._facts import (
    DataError,
    DatasetInfo,
    dataset_info,
    identify_file,
    normalize,
)
from ._files import find_data_dir, identify_dataset, load_dataset, load_mnist
from ._forms import (
    NormalizationWarning,
    check_data,
    collate,
    collate_images,
    data_length,
    image_batches,
    is_given_loader,
    labelled_batches,
    warn_default_norm,
)
from ._idx import read_idx
from ._imageset import ImageSet, ImageSetDataset

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "IMAGE_SIZE",
    "MNIST_MEAN",
    "MNIST_STD",
    "DataError",
    "DatasetInfo",
    "ImageSet",
    "ImageSetDataset",
    "NormalizationWarning",
    "as_image_set",
    "check_data",
    "collate",
    "collate_images",
    "data_length",
    "dataset_info",
    "find_data_dir",
    "identify_dataset",
    "identify_file",
    "image_batches",
    "is_given_loader",
    "known_norm",
    "labelled_batches",
    "load_dataset",
    "load_mnist",
    "normalize",
    "read_idx",
    "warn_default_norm",
]

# The constants are bound again here, with their descriptions, because the API reference
# reads a constant's description from the comment above it in the module it documents.

#: Environment variable naming the folder that holds the IDX files.
DATA_DIR_ENV: str = _facts.DATA_DIR_ENV
#: Height and width of MNIST-format images (and of the model's input).
IMAGE_SIZE: int = _facts.IMAGE_SIZE
#: Mean of the MNIST training pixels, scaled to [0, 1].
MNIST_MEAN: float = _facts.MNIST_MEAN
#: Standard deviation of the MNIST training pixels, scaled to [0, 1].
MNIST_STD: float = _facts.MNIST_STD
#: The datasets this package knows, by name (:class:`DatasetInfo` records of files, MD5 sums of
#: the decompressed files, classes, mean and std).
DATASETS: dict[str, DatasetInfo] = _facts.DATASETS


publish(__name__, globals())
