"""TrainConfig: the defaults (the reference recipe), options by keyword, the dict round
trip, and every field checked at construction, within what torch accepts (#26).

``TrainConfig(seed=2**70)`` and ``momentum=-1`` used to be accepted and fail inside ``fit``
with torch's words. Now any field values give a valid config or a :class:`ConfigError`
naming the field. The command line's side (the flag named, exit 2, nothing written) is in
``tests/cli/test_config_flags.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lenet5
from cli_helpers import run_main
from lenet5 import LeNet5, TrainConfig, Trainer
from lenet5.training import ConfigError
from lenet5.training.config import MAX_SEED

# ------------------------------------------------------------ defaults and keyword options


def test_defaults_are_the_reference_recipe() -> None:
    trainer = Trainer()
    config = trainer.config
    assert config == TrainConfig()
    assert config.optimizer == "adam"
    assert config.lr == 1e-3
    assert config.batch_size == 32
    assert config.epochs == 100
    assert config.val_every == 20
    assert config.scheduler is None
    assert config.weight_decay == 0.0
    assert config.label_smoothing == 0.0
    assert config.seed == 0
    assert isinstance(trainer.model, LeNet5)


def test_keyword_options_reach_the_config() -> None:
    trainer = Trainer(
        epochs=3,
        batch_size=64,
        lr=0.01,
        optimizer="sgd",
        scheduler="cosine",
        device="cpu",
        seed=7,
        deterministic=True,
        val_every=2,
    )
    config = trainer.config
    assert (config.epochs, config.batch_size, config.lr) == (3, 64, 0.01)
    assert (config.optimizer, config.scheduler, config.device) == ("sgd", "cosine", "cpu")
    assert (config.seed, config.deterministic, config.val_every) == (7, True, 2)


def test_config_and_keywords_combine() -> None:
    base = TrainConfig(epochs=5, lr=0.1, verbose=False)
    trainer = Trainer(config=base, batch_size=8)
    assert (trainer.config.epochs, trainer.config.lr, trainer.config.batch_size) == (5, 0.1, 8)
    assert base.batch_size == 32  # the given config is not modified
    assert Trainer(config=base).config is base


def test_config_round_trips_through_dict() -> None:
    config = TrainConfig(epochs=4, scheduler="onecycle", seed=None)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.replace(lr=0.5).lr == 0.5
    with pytest.raises(ConfigError):
        config.replace(lr=-1)


# ----------------------------------------------------- every field checked where it enters


FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"seed": 2**70}, "seed", "seed must be a non-negative integer or None"),
        ({"seed": MAX_SEED + 1}, "seed", "at most 18,446,744,073,709,551,615"),
        ({"seed": -1}, "seed", "seed must be"),
        ({"momentum": -1.0}, "momentum", r"momentum must be in \[0, 1\), got -1.0"),
        ({"momentum": 1.0}, "momentum", r"momentum must be in \[0, 1\)"),
        ({"momentum": math.nan}, "momentum", "momentum must be a finite number"),
        ({"lr": math.inf}, "lr", "lr must be a finite number"),
        ({"lr": 0.0}, "lr", "lr must be positive"),
        ({"epochs": 2**31}, "epochs", "epochs must be a positive integer"),
        ({"batch_size": 1.5}, "batch_size", "batch_size must be a positive integer"),
        ({"dist_timeout": math.inf}, "dist_timeout", "dist_timeout must be a positive"),
        ({"dist_timeout": 1e300}, "dist_timeout", "a year"),
        ({"grad_clip_norm": math.nan}, "grad_clip_norm", "grad_clip_norm must be"),
        ({"mean": 0.1, "std": 0.0}, "std", "std must be a positive finite number"),
        ({"mean": 0.1, "std": -1.0}, "std", "std must be a positive finite number"),
        ({"mean": math.nan, "std": 0.3}, "mean", "mean must be a finite number"),
        ({"verbose": 1}, "verbose", "verbose must be True or False"),
        ({"deterministic": "yes"}, "deterministic", "deterministic must be True or False"),
        ({"device": "meta"}, "device", "meta holds no data"),
        ({"engine": 3}, "engine", "unknown engine 3"),
    ],
)
def test_a_bad_field_is_a_config_error_naming_it(
    kwargs: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        TrainConfig(**kwargs)
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_the_extreme_seeds_torch_accepts_are_accepted() -> None:
    for seed in (0, MAX_SEED):
        config = TrainConfig(seed=seed)
        torch.Generator().manual_seed(config.seed)  # what the trainer does with it


def test_config_error_lives_in_config() -> None:
    assert lenet5.ConfigError is ConfigError
    assert ConfigError.__module__ == "lenet5.training.config"


# Values of every kind, the edge ones included, for any field.
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["adam", "sgd", "cosine", "onecycle", "none", "cpu", "meta", "auto", ""]),
    st.sampled_from(["affine", "elastic(alpha=nan)", "noise(std=0.1)", "32", "bf16-mixed"]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), _VALUES, max_size=4))
def test_any_fields_give_a_valid_config_or_a_config_error(kwargs: dict[str, Any]) -> None:
    try:
        config = TrainConfig(**kwargs)
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    if error is not None:
        assert str(error)
        assert "\n" not in str(error)
        assert error.field is None or error.field in FIELDS
        return
    # Valid: every number finite, every count an int within bounds, and the dict round-trips.
    for name, value in config.to_dict().items():
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)
    assert TrainConfig.from_dict(config.to_dict()) == config
    json.dumps(config.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"epochs": -1}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"optimizer": 3}, "optimizer"),
        ({"scheduler": "step"}, "scheduler"),
        ({"device": "tpu"}, "device"),
        ({"seed": -1}, "seed"),
        ({"val_every": -1}, "val_every"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
    ids=repr,
)
def test_bad_values_are_rejected_naming_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**options)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=field):
        Trainer(**options)


def test_unknown_optimizer_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adagrad'.*adam, adamw, sgd"):
        TrainConfig(optimizer="adagrad")


def test_unknown_option_names_are_rejected() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown training option 'epoch' \(did you mean 'epochs'"
    ):
        Trainer(epoch=3)
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainConfig.from_kwargs({"learning_rate": 0.1})


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"precision": "fp8"}, "unknown precision"),
        ({"grad_clip_norm": 0.0}, "grad_clip_norm must be a positive"),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches must be a positive"),
        ({"mean": 0.5}, "give mean and std together"),
        ({"mean": 0.5, "std": 0.0}, "std must be a positive"),
        ({"compile": "yes"}, "compile must be True or False"),
    ],
)
def test_bad_values_of_the_new_options(option: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Trainer(**option)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mean": float("nan"), "std": 0.3}, ConfigError, "mean must be a finite number"),
        ({"scheduler": 3}, ConfigError, "scheduler must be a name, a callable or None, got 3"),
        ({"device": 3}, ConfigError, "device must be a string such as 'auto'"),
        ({"augment": 3}, ConfigError, "augment must be a spec string or None, got 3"),
        ({"loss_fn": 3}, TypeError, r"loss_fn must be a callable \(logits, targets\) -> loss"),
    ],
)
def test_settings_of_the_wrong_type_are_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Trainer(**kwargs)


def test_train_config_refuses_a_nan_spec_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match=r"^augment: elastic: alpha must be") as info:
        TrainConfig(augment="elastic(alpha=nan)")
    assert info.value.field == "augment"


def test_bad_devices_and_specs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("evaluate", "--device", "floppy") == 2
    assert "unknown device" in capsys.readouterr().err
    for spec in ("elastic(sigma=0)", "affine(scale=1.5)", "elastic(alpha=-1)"):
        with pytest.raises(ConfigError):
            Trainer(augment=spec)
