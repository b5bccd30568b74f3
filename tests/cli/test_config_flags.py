"""``lenet5 train``'s flags, generated from TrainConfig (lenet5.cli._config_flags): one
per field, over the recipe over the resumed settings, and a bad value named by its flag."""

from __future__ import annotations

import argparse
import shlex
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import one_line_error, run_main
from lenet5 import ConfigError, TrainConfig
from lenet5.cli import build_parser


def test_every_config_field_has_a_generated_flag(capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from lenet5 import TrainConfig
    from lenet5.cli import config_from_args

    parser = build_parser()
    args = parser.parse_args(["train"])
    assert config_from_args(args) == TrainConfig()  # the defaults are the config's
    for f in dataclasses.fields(TrainConfig):
        assert "default" not in f.metadata["help"].lower(), f.name  # argparse shows it
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--epochs N passes over the training data (default: 100)",
                 "--lr X learning rate (the peak rate for onecycle) (default: 0.001)",
                 "--optimizer {adam,adamw,sgd}",
                 "--engine {fast,plain}",
                 "--strategy {auto,single,ddp}",
                 "--scheduler {none,cosine,onecycle}",
                 "--momentum X",
                 "--eval-batch-size N",
                 "--deterministic, --no-deterministic",
                 "--quiet, --no-quiet",
                 "--recipe {reference,fast,mnist-v1,mnist-v2,mnist-v3,mnist-v4}",
                 "--checkpoint-every N write a resumable checkpoint every N epochs (and after "
                 "the last) (default: 1)"):  # fmt: skip
        assert flag in text, flag
    given = shlex.split(
        "--epochs 7 --batch-size 64 --lr 0.01 --optimizer sgd --weight-decay 0.1 "
        "--momentum 0.5 --scheduler cosine --label-smoothing 0.1 --augment affine "
        "--ema-decay 0.9 --device cpu --seed 3 --deterministic --val-every 2 "
        "--val-split 100 --eval-batch-size 512 --quiet --engine plain "
        "--strategy single --dist-timeout 60 --precision bf16-mixed --grad-clip-norm 2.5 "
        "--accumulate-grad-batches 3 --compile --val-every-steps 50 --mean 0.25 --std 0.5"
    )
    config = config_from_args(parser.parse_args(["train", *given]))
    assert config == TrainConfig(
        epochs=7, batch_size=64, lr=0.01, optimizer="sgd", weight_decay=0.1, momentum=0.5,
        scheduler="cosine", label_smoothing=0.1, augment="affine", ema_decay=0.9,
        device="cpu", seed=3, deterministic=True, val_every=2, val_split=100,
        eval_batch_size=512, verbose=False, engine="plain", strategy="single",
        dist_timeout=60.0, precision="bf16-mixed", grad_clip_norm=2.5,
        accumulate_grad_batches=3, compile=True, val_every_steps=50, mean=0.25, std=0.5,
    )  # fmt: skip


def test_a_new_config_field_gets_its_flag_without_touching_the_cli() -> None:
    import dataclasses

    from lenet5 import TrainConfig
    from lenet5.cli import config_from_args
    from lenet5.cli._config_flags import add_config_flags

    @dataclasses.dataclass
    class Extended(TrainConfig):
        warmup_steps: int = dataclasses.field(default=0, metadata={"help": "warm-up steps"})
        loss_fn: Callable[..., Any] | None = dataclasses.field(
            default=None, metadata={"help": "a callable", "flag": None}
        )

    parser = argparse.ArgumentParser()
    add_config_flags(parser, Extended)
    options = {s for a in parser._actions for s in a.option_strings}
    assert "--warmup-steps" in options
    assert "--loss-fn" not in options  # a callable-only setting says so and gets no flag
    config = config_from_args(parser.parse_args(["--warmup-steps", "5"]), cls=Extended)
    assert config.warmup_steps == 5
    assert config.epochs == 100


def test_flags_override_recipe_which_overrides_the_resumed_settings() -> None:
    from lenet5.cli import config_from_args

    base = {"epochs": 9, "lr": 0.5, "verbose": False, "seed": 4}
    args = build_parser().parse_args(["train", "--recipe", "fast", "--lr", "0.2", "--no-quiet"])
    config = config_from_args(args, base)
    assert config.epochs == 6  # the recipe's, over the resumed run's 9
    assert config.lr == 0.2  # the flag's, over both
    assert config.verbose is True  # --no-quiet undoes a recorded --quiet
    assert config.seed == 4  # kept from the resumed run: neither the recipe nor a flag says


def test_new_options_are_flags_of_lenet5_train() -> None:
    from lenet5.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--precision",
            "bf16-mixed",
            "--grad-clip-norm",
            "1.5",
            "--accumulate-grad-batches",
            "4",
            "--compile",
            "--val-every-steps",
            "100",
            "--mean",
            "0.5",
            "--std",
            "0.2",
        ]
    )
    from lenet5.cli._config_flags import config_from_args

    config = config_from_args(args)
    assert isinstance(config, TrainConfig)
    assert (config.precision, config.grad_clip_norm, config.accumulate_grad_batches) == (
        "bf16-mixed",
        1.5,
        4,
    )
    assert (config.compile, config.val_every_steps, config.mean, config.std) == (
        True,
        100,
        0.5,
        0.2,
    )


def test_config_from_args_refuses_an_unknown_recipe() -> None:
    from lenet5.cli import config_from_args

    with pytest.raises(ConfigError, match=r"unknown recipe 'fastest'; choose one of "):
        config_from_args(Namespace(recipe="fastest"))


def test_config_flags_follow_field_metadata_and_refuse_unknown_types() -> None:
    """The generator of ``lenet5 train``'s flags, on the dataclasses a contributor may add."""
    import argparse
    import dataclasses

    from lenet5.cli._config_flags import add_config_flags

    @dataclasses.dataclass
    class Typed:
        workers: Any = dataclasses.field(default=1, metadata={"type": int})

    parser = argparse.ArgumentParser()
    add_config_flags(parser, Typed)
    assert parser.parse_args(["--workers", "3"]).workers == 3

    @dataclasses.dataclass
    class Unflaggable:
        sizes: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match=r"^sizes: cannot make a flag of a 'list\[int\]' field"):
        add_config_flags(argparse.ArgumentParser(), Unflaggable)


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
