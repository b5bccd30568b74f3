"""Spec strings: ``"affine(degrees=15),elastic(alpha=8,sigma=3),noise,fog(max=0.5)"``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._base import Augmentation, Compose, check_range
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
from ._warps import ElasticDistortion, RandomAffine

_SPEC = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$")
#: The longest spec string (the longest useful one, every family with every argument, is
#: about 300 characters); a bound, so a hostile one costs no time.
MAX_SPEC_LENGTH = 1000
_NAMES: dict[str, type[Augmentation]] = {
    "affine": RandomAffine,
    "elastic": ElasticDistortion,
    "noise": RandomNoise,
    "impulse": RandomImpulseNoise,
    "blur": RandomBlur,
    "contrast": RandomContrast,
    "brightness": RandomBrightness,
    "fog": RandomFog,
    "thickness": RandomThickness,
    "lines": RandomLines,
    "erase": RandomErasing,
}


def parse_augment(spec: str | Augmentation | Sequence[Augmentation] | None) -> Compose | None:
    """Build augmentation from a spec: ``"affine"``, ``"elastic"``, ``"affine,elastic"``, with
    optional arguments such as ``"affine(degrees=15,translate=0.12),elastic(alpha=8,sigma=3)"``,
    the pixel augmentations (``noise``, ``impulse``, ``blur``, ``contrast``, ``brightness``,
    ``fog``, ``thickness``, ``lines``, ``erase``), as in ``"affine,noise(std=0.3),fog"``,
    or from :class:`Augmentation` objects.

    Every argument is checked: a number that is not finite (``nan``, ``inf``) or outside
    its range, an argument given twice, and a spec longer than :data:`MAX_SPEC_LENGTH` are
    refused.

    Raises:
        ValueError: Naming the unknown augmentation or argument, or the argument whose value
            is out of its range (and the range).
        TypeError: If ``spec`` is neither a string, an augmentation nor a sequence of them.
    """
    if spec is None or spec == "" or spec == "none":
        return None
    if isinstance(spec, Augmentation):
        return spec if isinstance(spec, Compose) else Compose([spec])
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        return Compose(list(spec))
    if not isinstance(spec, str):
        raise TypeError(f"augmentation must be a spec string or augmentations, got {spec!r}")
    if len(spec) > MAX_SPEC_LENGTH:
        raise ValueError(
            f"augmentation spec of {len(spec):,} characters; at most {MAX_SPEC_LENGTH:,}"
        )
    return Compose([_item(item) for item in re.split(r",\s*(?![^()]*\))", spec)])


def _item(item: str) -> Augmentation:
    """One ``NAME`` or ``NAME(ARG=NUMBER, ...)`` of a spec."""
    match = _SPEC.match(item)
    if not match or match.group(1) not in _NAMES:
        raise ValueError(
            f"unknown augmentation {item.strip()!r}; use {', '.join(_NAMES)}, e.g. "
            "'affine(degrees=15),elastic(alpha=8,sigma=3)' or 'affine,noise(std=0.3),fog'"
        )
    cls = _NAMES[match.group(1)]
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    kwargs: dict[str, object] = {}
    for arg in filter(None, (a.strip() for a in (match.group(2) or "").split(","))):
        key, _, value = arg.partition("=")
        key = key.strip()
        if key not in fields:
            raise ValueError(
                f"{match.group(1)} has no argument {key!r}; arguments: {', '.join(fields)}"
            )
        if key in kwargs:
            raise ValueError(f"{match.group(1)}: argument {key!r} given twice")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{match.group(1)}({arg}): {value!r} is not a number") from None
        if cls is RandomAffine and key == "scale":
            # "scale=0.1" means a factor in [0.9, 1.1].
            check_range(
                "affine", "scale (scale=0.1 means 0.9 to 1.1)", number, 0, 1, high_open=True
            )
            kwargs[key] = (1 - number, 1 + number)
        else:
            kwargs[key] = number
    return cls(**kwargs)
