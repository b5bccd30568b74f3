"""The bundled weight sets, by name: :data:`REGISTRY`, :data:`DEFAULT`, :func:`get_weights`.

The files ship inside the package (``lenet5/pretrained/``), so loading them needs no
network; each is checked against its size and SHA-256 before it is read.
"""

from __future__ import annotations

from typing import Any

from .._hints import did_you_mean
from ._files import WeightsError
from ._record import Weights, WeightsMeta, weights_meta

__all__ = ["DEFAULT", "REGISTRY", "get_weights", "registry"]


def _cfg(**fields: Any) -> WeightsMeta:
    """The meta of a bundled weight set: what they all share, then ``fields`` (cf. timm)."""
    return weights_meta(**{"torch_version": "2.14.1", **fields})


#: The bundled weight sets by name.
REGISTRY: dict[str, Weights] = {
    "mnist-v1": Weights(
        name="mnist-v1",
        file="mnist-v1.safetensors",
        sha256="dee4e1e6f51d9ebd73e1aeee789fdbe93b9b22f64e34b31651017c0342c91cf5",
        meta=_cfg(
            file_size=179248,
            test_accuracy=99.07,
            corruption_accuracy=83.13,
            recipe=(
                "lenet5 train --data-dir ../shared/data/mnist --epochs 30 --scheduler cosine "
                "--val-split 5000 --val-every 5 --seed 0 --out runs/mnist-v1"
            ),
            notes=(
                "The reference recipe (Adam 1e-3, batch 32) with cosine learning-rate decay "
                "over 30 epochs, fixed before training. Trained on 55,000 images; 5,000 held "
                "out (seed 0) for validation: 98.86%. The test set was evaluated once, after "
                "training. Trained on CPU with OMP_NUM_THREADS=1."
            ),
        ),
    ),
    "mnist-v2": Weights(
        name="mnist-v2",
        file="mnist-v2.safetensors",
        sha256="4c65dca6a026e3335f45eb71c867df1f41a2f41e24edf5612055b68859d12a17",
        meta=_cfg(
            file_size=179352,
            test_accuracy=99.37,
            corruption_accuracy=79.93,
            recipe=(
                "lenet5 train --data-dir ../shared/data/mnist --recipe mnist-v2 --seed 0 "
                "--val-every 0 --out runs/mnist-v2"
            ),
            notes=(
                "Recipe (AdamW one-cycle, peak lr 3e-3, weight decay 1e-4, batch 128, 40 "
                "epochs, label smoothing 0.05, weight EMA 0.999, random affine augmentation) "
                "checked on a 5,000-image validation split carved from the training set (seed "
                "0): 99.22% validation accuracy; no choice used the test set. Trained on all "
                "60,000 images; the shipped weights are seed 0, fixed in advance. Trained on "
                "CPU with OMP_NUM_THREADS=1."
            ),
            seed_accuracies=(99.37, 99.44, 99.36, 99.40, 99.42),
        ),
    ),
    "mnist-v3": Weights(
        name="mnist-v3",
        file="mnist-v3.safetensors",
        sha256="4969ccff7f64e96f1248f80faf4f84ba6b3ace66daa34386629602b3c53234f0",
        meta=_cfg(
            file_size=179568,
            test_accuracy=99.36,
            corruption_accuracy=79.21,
            recipe=(
                "lenet5 train --data-dir ../shared/data/mnist --recipe mnist-v3 --seed 0 "
                "--out runs/mnist-v3"
            ),
            notes=(
                "Recipe: mnist-v2 (AdamW one-cycle, peak lr 3e-3, weight decay 1e-4, batch "
                "128, label smoothing 0.05, weight EMA 0.999, random affine augmentation) "
                "trained for 60 epochs instead of 40. Chosen on a 5,000-image validation split "
                "carved from the training set (seed 0): 99.32% validation accuracy, against "
                "99.22% for 40 epochs and 99.26% for 40 epochs with elastic distortion added; "
                "no choice used the test set. Trained on all 60,000 images; the shipped "
                "weights are seed 0, fixed in advance. Five seeds (0-4): 99.36, 99.50, 99.32, "
                "99.39, 99.45% test accuracy, mean 99.404%, standard deviation 0.072. Trained "
                "on CPU with OMP_NUM_THREADS=1."
            ),
            seed_accuracies=(99.36, 99.50, 99.32, 99.39, 99.45),
        ),
    ),
    "fashion-v1": Weights(
        name="fashion-v1",
        file="fashion-v1.safetensors",
        sha256="f62bb81664724fdfc4e53ba352865d4faa92ec207c6f4ee37f89805179dc05ed",
        meta=_cfg(
            dataset="fashion-mnist",
            file_size=179240,
            test_accuracy=88.45,
            corruption_accuracy=67.25,
            recipe=(
                "lenet5 train --data-dir ../shared/data/fashion-mnist --dataset fashion-mnist "
                "--recipe mnist-v2 --seed 0 --val-every 0 --out runs/fashion-v1"
            ),
            notes=(
                "The mnist-v2 recipe applied unchanged to Fashion-MNIST (not tuned for it; no "
                "validation split, no choice made with the test set). Trained on all 60,000 "
                "images, seed 0, on CPU with OMP_NUM_THREADS=1."
            ),
        ),
    ),
}

#: The name ``"DEFAULT"`` resolves to the MNIST weights of the recipe with the best mean
#: test accuracy over five seeds (each entry's ``seed_accuracies``).
DEFAULT = "mnist-v3"


def registry() -> dict[str, Weights]:
    """All names that :func:`get_weights` accepts, ``"DEFAULT"`` included."""
    names = dict(REGISTRY)
    if DEFAULT in REGISTRY:
        names["DEFAULT"] = REGISTRY[DEFAULT]
    return names


def get_weights(name: str = "DEFAULT") -> Weights:
    """Look up a bundled weight set by name (``"DEFAULT"`` for the best one).

    Raises:
        WeightsError: If there is no such name, with the closest one suggested.
    """
    known = registry()
    if name not in known:
        raise WeightsError(
            f"no bundled weights named {name!r}{did_you_mean(name, known)}; available: "
            f"{', '.join(sorted(known))}"
        )
    return known[name]
