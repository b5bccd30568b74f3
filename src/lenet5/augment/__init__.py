"""Batched, on-device, seeded data augmentation for training.

Each augmentation transforms a whole batch at once on the training device, with random
parameters drawn from a :class:`torch.Generator`. The trainer derives that generator from the
run's seed and the global step, so augmentation is reproducible and a resumed run draws
exactly what an uninterrupted one would have.

Warps of the sampling grid:

* :class:`RandomAffine`: small rotations, shifts, scaling and shear.
* :class:`ElasticDistortion`: the elastic deformation of Simard, Steinkraus & Platt (2003):
  a random displacement field, smoothed with a Gaussian and scaled.

Changes of pixel values (:class:`PixelAugmentation`), random versions of the corruptions of
:mod:`lenet5.corruptions`, each applied to an image with probability ``p``:
:class:`RandomNoise`, :class:`RandomImpulseNoise`, :class:`RandomBlur`,
:class:`RandomContrast`, :class:`RandomBrightness`, :class:`RandomFog`,
:class:`RandomThickness`, :class:`RandomLines` and :class:`RandomErasing`.

:class:`Compose` chains them: consecutive warps resample the images once, so images are
interpolated a single time. :func:`parse_augment` builds one from a spec string.
"""

from .._hints import publish
from ._base import Augmentation, Compose, PixelAugmentation
from ._pixels import (
    RandomBlur,
    RandomBrightness,
    RandomContrast,
    RandomErasing,
    RandomFog,
    RandomImpulseNoise,
    RandomLines,
    RandomNoise,
    RandomThickness,
)
from ._spec import parse_augment
from ._warps import ElasticDistortion, RandomAffine

__all__ = [
    "Augmentation",
    "Compose",
    "ElasticDistortion",
    "PixelAugmentation",
    "RandomAffine",
    "RandomBlur",
    "RandomBrightness",
    "RandomContrast",
    "RandomErasing",
    "RandomFog",
    "RandomImpulseNoise",
    "RandomLines",
    "RandomNoise",
    "RandomThickness",
    "parse_augment",
]


publish(__name__, globals())
