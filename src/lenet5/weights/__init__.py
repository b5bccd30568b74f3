"""Model weights: the registry of bundled weight sets, and safetensors I/O with strict checks.

The registry follows torchvision's multi-weight API: each bundled weight set is a frozen
:class:`Weights` record (file, SHA-256 and ``meta``: dataset, classes, normalisation,
accuracy, recipe...), looked up by name with :func:`get_weights`; ``"DEFAULT"`` names the
best one. The files ship inside the package (``lenet5/pretrained/``), so loading them needs
no network. A record drives its use: :meth:`lenet5.model.LeNet5.from_pretrained` builds the
model from it and keeps it as ``model.weights``, and :meth:`Weights.transforms` prepares
pictures the way the weights expect.

Weights are only ever read as safetensors, never unpickled. Loading compares the file's
tensors with the model's and names every missing, unexpected, misshaped or non-floating
tensor; a ``config.json`` is checked against the tensor shapes before any model is built.
"""

from .._hints import publish
from . import _bundled
from ._bundled import get_weights, registry
from ._card import model_card
from ._files import (
    WeightsError,
    check_finite,
    check_tensors,
    infer_config,
    load_weights,
    read_safetensors,
    save_weights,
)
from ._record import Weights, WeightsMeta, weights_meta
from ._resolve import Resolved, check_weights_name, header_meta, resolve_pretrained

#: The bundled weight sets by name (``{"mnist-v1": Weights(...), ...}``).
REGISTRY = _bundled.REGISTRY
#: The name ``"DEFAULT"`` stands for the MNIST weights of the recipe with the best mean
#: test accuracy over five seeds (each record's ``seed_accuracies``).
DEFAULT = _bundled.DEFAULT

__all__ = [
    "DEFAULT",
    "REGISTRY",
    "Resolved",
    "Weights",
    "WeightsError",
    "WeightsMeta",
    "check_finite",
    "check_tensors",
    "check_weights_name",
    "get_weights",
    "header_meta",
    "infer_config",
    "load_weights",
    "model_card",
    "read_safetensors",
    "registry",
    "resolve_pretrained",
    "save_weights",
    "weights_meta",
]


publish(__name__, globals())
