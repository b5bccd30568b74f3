"""lenet5: the classic LeNet-5 for MNIST, a callback-driven Trainer and pretrained weights."""

from .data import ImageSet, load_dataset, load_mnist, normalize
from .model import LeNet5
from .training import (
    Callback,
    EvalResult,
    TrainConfig,
    Trainer,
    TrainState,
)

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "EvalResult",
    "ImageSet",
    "LeNet5",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "__version__",
    "load_dataset",
    "load_mnist",
    "normalize",
]
