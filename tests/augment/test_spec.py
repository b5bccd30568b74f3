"""Spec strings (lenet5.augment._spec), and every number of a spec checked where it enters
(issue #26).

``elastic(alpha=nan)`` used to train to the end on blank images, ``elastic(sigma=inf)`` to
crash at the first batch: NaN passes ``alpha < 0``. Now every argument of every family is
checked as "inside its range", so NaN, the infinities and out-of-range values are a
ValueError naming the augmentation and the argument, before any batch is drawn; and any
spec string at all gives a valid object or that ValueError, never another exception.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet5 import Trainer
from lenet5.augment import (
    Compose,
    ElasticDistortion,
    PixelAugmentation,
    RandomAffine,
    parse_augment,
)
from lenet5.augment._spec import _NAMES
from lenet5.training.config import ConfigError

# Every argument of every family, as a spec string would name it.
ARGUMENTS = [(name, f.name) for name, cls in _NAMES.items() for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(("name", "arg"), ARGUMENTS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "-1e999"])
def test_a_non_finite_argument_is_refused_naming_it(name: str, arg: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: {arg}\b.* must be .*in [\[(]"):
        parse_augment(f"{name}({arg}={value})")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("elastic(alpha=nan)", r"elastic: alpha must be in \[0, 1000\], got nan"),
        ("elastic(sigma=inf)", r"elastic: sigma must be in \[0.01, 1000\], got inf"),
        ("elastic(sigma=1e-300)", r"elastic: sigma must be in \[0.01, 1000\]"),
        ("elastic(alpha=1e6)", r"elastic: alpha must be in \[0, 1000\]"),
        ("affine(scale=inf)", r"affine: scale \(scale=0.1 means 0.9 to 1.1\) must be in \[0, 1\)"),
        ("affine(degrees=1,degrees=2)", r"affine: argument 'degrees' given twice"),
        ("noise(std=0.1, std=0.2)", r"noise: argument 'std' given twice"),
        ("lines(count=nan)", r"lines: count must be in \[1, 10\], got nan"),
    ],
)
def test_bad_arguments_are_named(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_augment(spec)


def test_a_spec_longer_than_the_bound_is_refused_at_once() -> None:
    # The split's regex is quadratic in the number of commas: a bound keeps it instant.
    with pytest.raises(ValueError, match=r"at most 1,000"):
        parse_augment("," * 200_000)
    assert parse_augment(",".join(["noise"] * 100)) is not None  # long but under the bound


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale": (0.5, math.inf)},
        {"scale": (0.0, 1.0)},
        {"scale": (1.2, 1.1)},
        {"scale": 1.1},
        {"degrees": "15"},
        {"degrees": True},
        {"translate": math.nan},
    ],
)
def test_python_arguments_are_checked_like_spec_ones(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"^affine: "):
        RandomAffine(**kwargs)  # type: ignore[arg-type]


def test_non_augmentations_are_refused() -> None:
    with pytest.raises(TypeError, match="not an augmentation"):
        parse_augment([RandomAffine(), "noise"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="spec string or augmentations"):
        parse_augment(3)  # type: ignore[arg-type]


def _check_runs(augmentation: Compose) -> None:
    """A parsed augmentation works on a batch: finite values in [0, 1]."""
    images = torch.rand(2, 1, 28, 28)
    out = augmentation(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert bool(torch.isfinite(out).all())
    assert float(out.min()) >= 0
    assert float(out.max()) <= 1 + 1e-6


# Spec-like text: names and arguments of the grammar mixed with anything at all.
_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "0", "0.5", "1", "", "x", "1_0", " 3 "]),
)
_ARGS = st.lists(
    st.tuples(st.sampled_from([a for _, a in ARGUMENTS] + ["bogus", ""]), _NUMBERS).map(
        lambda kv: f"{kv[0]}={kv[1]}"
    ),
    max_size=4,
)
_ITEMS = st.one_of(
    st.tuples(st.sampled_from([*_NAMES, "none", "Affine", ""]), _ARGS).map(
        lambda t: f"{t[0]}({','.join(t[1])})" if t[1] else t[0]
    ),
    st.text(max_size=20),
)
_SPECS = st.one_of(st.lists(_ITEMS, min_size=1, max_size=4).map(",".join), st.text())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SPECS)
def test_any_spec_string_gives_an_augmentation_or_a_value_error(spec: str) -> None:
    try:
        parsed = parse_augment(spec)
    except ValueError as exc:
        message: str | None = str(exc)
    else:
        message = None
    if message is not None:
        assert message  # one line, saying what is wrong
        assert "\n" not in message
        return
    assert parsed is None or isinstance(parsed, Compose)
    if parsed is not None:
        for augmentation in parsed.augmentations:
            for f in dataclasses.fields(augmentation):  # type: ignore[arg-type]
                value = getattr(augmentation, f.name)
                values = value if isinstance(value, tuple) else (value,)
                assert all(math.isfinite(v) for v in values), (spec, augmentation)
        _check_runs(parsed)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(_NAMES)),
    st.dictionaries(
        st.sampled_from(sorted({a for _, a in ARGUMENTS})),
        st.one_of(st.floats(), st.integers(-5, 5), st.booleans(), st.none(), st.text(max_size=3)),
        max_size=3,
    ),
)
def test_any_python_arguments_give_an_augmentation_or_a_value_error(
    name: str, kwargs: dict[str, object]
) -> None:
    cls = _NAMES[name]
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {k: v for k, v in kwargs.items() if k in fields}
    try:
        augmentation = cls(**kwargs)
    except ValueError:
        return
    assert isinstance(augmentation, (PixelAugmentation, RandomAffine, ElasticDistortion))
    _check_runs(Compose([augmentation]))


# ----------------------------------------------------------------------------- the grammar


def test_parse_augment_specs() -> None:
    aug = parse_augment("affine(degrees=15,translate=0.12,scale=0.2,shear=5),elastic(alpha=8)")
    assert aug is not None
    affine, elastic = aug.augmentations
    assert affine == RandomAffine(degrees=15, translate=0.12, scale=(0.8, 1.2), shear=5)
    assert elastic == ElasticDistortion(alpha=8, sigma=4)
    assert parse_augment(None) is None
    assert parse_augment("none") is None
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        parse_augment("flip")
    with pytest.raises(ValueError, match="no argument 'sigmaa'"):
        parse_augment("elastic(sigmaa=3)")
    with pytest.raises(ConfigError, match="augment"):
        Trainer(augment="affine(degrees=x)")
    with pytest.raises(ConfigError, match="ema_decay"):
        Trainer(ema_decay=1.5)


def test_augmentation_arguments_and_specs() -> None:
    from lenet5.augment import Compose, RandomAffine, parse_augment

    for kwargs, message in (
        ({"degrees": 200}, r"degrees must be in \[0, 180\], got 200"),
        ({"translate": 1.0}, r"translate must be in \[0, 1\), got 1.0"),
        ({"shear": 90}, r"shear must be in \[0, 90\), got 90"),
    ):
        with pytest.raises(ValueError, match=message):
            RandomAffine(**kwargs)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(Compose([])(x, torch.Generator()), x)  # nothing to do
    affine = RandomAffine()
    one = parse_augment(affine)
    assert isinstance(one, Compose)
    assert one.augmentations == [affine]
    assert parse_augment([affine, affine]).augmentations == [affine, affine]  # type: ignore[union-attr]
