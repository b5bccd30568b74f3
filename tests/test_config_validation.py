"""Every TrainConfig field is checked at construction, within what torch accepts (#26).

``TrainConfig(seed=2**70)`` and ``momentum=-1`` used to be accepted and fail inside ``fit``
with torch's words, leaving ``.lock`` and ``train_config.json`` behind. Now any field
values give a valid config or a :class:`ConfigError` naming the field; the command line
names the flag (or the file that held the value), exits 2 and writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lenet5
from cli_helpers import one_line_error, run_main
from lenet5.training.config import MAX_SEED, ConfigError, TrainConfig

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


# ----------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--momentum", "-1"], "--momentum"),
        (["--seed", str(2**70)], "--seed"),
        (["--lr", "nan"], "--lr"),
        (["--augment", "elastic(alpha=nan)"], "--augment"),
        (["--augment", "elastic(sigma=inf)"], "--augment"),
        (["--dist-timeout", "inf"], "--dist-timeout"),
    ],
)
def test_cli_refuses_a_bad_value_naming_the_flag_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    out = tmp_path / "run"
    code = run_main("train", "--data-dir", tmp_path, "--out", out, *flags)
    assert code == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert line.startswith(f"lenet5 train: error: {named}: "), line
    assert not out.exists()  # no run folder, no .lock, no train_config.json
    assert list(tmp_path.iterdir()) == []


def test_cli_device_meta_is_a_usage_error_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "x.png"
    for args in (
        ["train", "--data-dir", tmp_path, "--out", tmp_path / "run", "--device", "meta"],
        ["evaluate", "--data-dir", tmp_path, "--device", "meta"],
        ["predict", picture, "--device", "meta"],
    ):
        assert run_main(*args) == 2, args
        line = one_line_error(capsys.readouterr().err, str(args[0]))
        assert "meta" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"lr": NaN}', "NaN is not JSON"),
        ('{"momentum": -1}', r"momentum must be in \[0, 1\)"),
        ('{"dataset": ["mnist"]}', "dataset must be a name"),
        ('{"overrides": [{"setting": [], "before": 1, "after": 2, "step": 0}]}', "overrides"),
    ],
)
def test_a_hostile_train_config_json_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: str, message: str
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text(record)
    before = sorted(p.name for p in run.iterdir())
    assert run_main("train", "--data-dir", tmp_path, "--resume", run) == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert str(run / "train_config.json") in line
    assert re.search(message, line), line
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written
