"""The ``lenet5`` command line, run as ``python -m lenet5`` in a subprocess.

Training runs use a folder of real IDX files holding a 2,000-image subset of MNIST (the CLI
has no subset flag); one slow test trains on the full dataset.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import lenet5
from lenet5 import ImageSet, LeNet5, Trainer
from lenet5.cli import UsageError, build_parser, main
from lenet5.training import evaluate

Runner = Callable[..., subprocess.CompletedProcess[str]]
FINAL = re.compile(r"^Final \| Test Accuracy: (\d{1,3}\.\d{2})%$", re.MULTILINE)
# The small data folder's files are not the official ones: silence the MD5 warning.
NO_MD5_WARNING = ["-W", "ignore::UserWarning"]


def final_accuracy(stdout: str) -> float:
    match = FINAL.search(stdout)
    assert match, stdout
    return float(match.group(1))


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lenet5 ")
    assert "error:" in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory, small_mnist_dir: Path, run_cli: Runner
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``lenet5 train --epochs 1`` on the small data folder."""
    out = tmp_path_factory.mktemp("cli-run") / "run"
    result = run_cli(
        "train",
        "--data-dir",
        small_mnist_dir,
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        out,
        python_flags=NO_MD5_WARNING,
    )
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory, train_2k: ImageSet) -> Path:
    """A model trained (Python API) on 2,000 images and saved with save_pretrained."""
    trainer = Trainer(epochs=1, verbose=False, device="cpu")
    trainer.fit(train_2k)
    assert isinstance(trainer.model, LeNet5)
    return trainer.model.save_pretrained(tmp_path_factory.mktemp("weights"))


def test_version(run_cli: Runner) -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"lenet5 {lenet5.__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    assert "usage: lenet5" in capsys.readouterr().err


# ------------------------------------------------------------------------- train


def test_train_writes_the_run_folder(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]], mnist_test: ImageSet
) -> None:
    out, result = trained_run
    for name in (
        "model.safetensors",
        "config.json",
        "train_config.json",
        "metrics.csv",
        "results.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "epoch-0001" / "trainer.pt").is_file()
    accuracy = final_accuracy(result.stdout)
    # The printed figure is the saved model's on the folder's 1,000 test images.
    from lenet5 import LeNet5, evaluate

    saved = evaluate(LeNet5.from_pretrained(out), mnist_test.subset(slice(0, 1000)))
    assert accuracy == round(saved.accuracy, 2)
    assert json.loads((out / "results.json").read_text())["test_accuracy"] == saved.accuracy
    assert accuracy > 60.0  # it learnt: one epoch on 2,000 images, 10% by chance
    assert re.search(r"^Epoch 1 \| Loss: \d+\.\d{4} \| Validation Accuracy: ", result.stdout, re.M)

    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 1
    assert results["dataset"] == "mnist"
    assert f"{results['test_accuracy']:.2f}" == f"{accuracy:.2f}"
    assert len(results["history"]) == 1

    config = json.loads((out / "train_config.json").read_text())
    assert config["epochs"] == 1
    assert config["batch_size"] == 32
    assert config["optimizer"] == "adam"

    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"]

    model = LeNet5.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == 44_426
    # the saved model reproduces the reported accuracy on the (subset) test images
    subset = mnist_test.subset(slice(0, 1000))
    assert f"{evaluate(model, subset).accuracy:.2f}" == f"{accuracy:.2f}"


def test_train_resume_continues_the_run(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]],
    small_mnist_dir: Path,
    tmp_path: Path,
    run_cli: Runner,
) -> None:
    first, _ = trained_run
    out = tmp_path / "run"
    # copy the one-epoch run, so the module's fixture stays as it was
    import shutil

    shutil.copytree(first, out)
    before = LeNet5.from_pretrained(out)
    result = run_cli(
        "train",
        "--resume",
        out,
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--data-dir",
        small_mnist_dir,
        python_flags=NO_MD5_WARNING,
    )
    assert result.returncode == 0, result.stderr
    final_accuracy(result.stdout)
    assert "Epoch 1 |" not in result.stdout  # epoch 1 is not trained again
    assert re.search(r"^Epoch 2 \| Loss: ", result.stdout, re.M)
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 2
    assert len(results["history"]) == 2
    with (out / "metrics.csv").open(newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    assert (out / "checkpoints" / "epoch-0002").is_dir()
    assert (out / "checkpoints" / "latest").read_text().strip() == "epoch-0002"
    after = LeNet5.from_pretrained(out)
    assert not torch.equal(before.features[0].weight, after.features[0].weight)


@pytest.mark.slow
def test_train_full_mnist_one_epoch(mnist_dir: Path, tmp_path: Path, run_cli: Runner) -> None:
    out = tmp_path / "full"
    result = run_cli(
        "train", "--data-dir", mnist_dir, "--epochs", "1", "--device", "cpu", "--out", out
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the official files verify: no warnings
    assert "60,000 images" in result.stdout
    assert final_accuracy(result.stdout) > 90.0
    assert LeNet5.from_pretrained(out).num_classes == 10


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("flags", "field"),
    [(["--epochs", "-1"], "epochs"), (["--optimizer", "adagrad"], "optimizer")],
    ids=["negative-epochs", "unknown-optimizer"],
)
def test_bad_option_values_are_usage_errors(
    flags: list[str], field: str, mnist_dir: Path, tmp_path: Path, run_cli: Runner
) -> None:
    result = run_cli("train", "--data-dir", mnist_dir, "--out", tmp_path / "run", *flags)
    line = assert_one_line_error(result, 2)
    # A bad value names its flag; argparse names a refused choice.
    assert line.startswith(f"lenet5 train: error: {flags[0]}: {field}") or f"'{flags[1]}'" in line
    assert field in line
    assert not (tmp_path / "run").exists()  # nothing was started


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--scheduler", "linear"], "scheduler"),
        (["--lr", "0"], "lr"),
        (["--batch-size", "0"], "batch_size"),
        (["--val-every", "-2"], "val_every"),
        (["--checkpoint-every", "0"], "checkpoint-every"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_more_usage_errors_in_process(
    flags: list[str],
    field: str,
    mnist_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["train", "--data-dir", str(mnist_dir), "--out", str(tmp_path / "run"), *flags])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("lenet5 train: error:")
    assert field in err[0]
    assert not (tmp_path / "run").exists()


def test_missing_data_folder(tmp_path: Path, run_cli: Runner) -> None:
    missing = tmp_path / "no-such-folder"
    result = run_cli("train", "--data-dir", missing, "--epochs", "1", "--out", tmp_path / "run")
    line = assert_one_line_error(result, 1)
    assert str(missing) in line
    assert "does not exist" in line


def test_missing_data_folder_with_debug_shows_traceback(tmp_path: Path, run_cli: Runner) -> None:
    missing = tmp_path / "no-such-folder"
    result = run_cli("--debug", "train", "--data-dir", missing, "--out", tmp_path / "run")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "DataError" in result.stderr


def test_usage_error_with_debug_raises(mnist_dir: Path) -> None:
    with pytest.raises(UsageError, match="epochs"):
        main(["--debug", "train", "--data-dir", str(mnist_dir), "--epochs", "-1"])


def test_unknown_callback_name(mnist_dir: Path, tmp_path: Path, run_cli: Runner) -> None:
    result = run_cli(
        "train",
        "--data-dir",
        mnist_dir,
        "--epochs",
        "1",
        "--callbacks",
        "early_stoping",
        "--out",
        tmp_path / "run",
    )
    line = assert_one_line_error(result, 2)  # a typo on the command line is a usage error
    assert not (tmp_path / "run").exists()  # nothing written
    assert "unknown callback 'early_stoping'" in line
    assert "early_stopping" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda(mnist_dir: Path, tmp_path: Path, run_cli: Runner) -> None:
    result = run_cli(
        "train",
        "--data-dir",
        mnist_dir,
        "--epochs",
        "1",
        "--device",
        "cuda",
        "--out",
        tmp_path / "run",
    )
    line = assert_one_line_error(result, 1)
    assert "CUDA is not available" in line


def test_resume_from_a_folder_without_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--resume", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no checkpoint found" in err[0]


# ---------------------------------------------------------------------- evaluate


def test_evaluate_prints_accuracy_per_class_and_confusion(
    weights_dir: Path, mnist_dir: Path, mnist_test: ImageSet, run_cli: Runner
) -> None:
    result = run_cli(
        "evaluate", "--weights", weights_dir, "--data-dir", mnist_dir, "--device", "cpu"
    )
    assert result.returncode == 0, result.stderr
    expected = evaluate(LeNet5.from_pretrained(weights_dir), mnist_test)
    assert f"{final_accuracy(result.stdout):.2f}" == f"{expected.accuracy:.2f}"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Final | Test Accuracy:")
    start = lines.index("Per-class accuracy:")
    per_class = lines[start + 1 : start + 11]
    for digit, (line, acc) in enumerate(zip(per_class, expected.per_class_accuracy, strict=True)):
        assert re.fullmatch(rf"\s+{digit}: +{acc:.2f}%", line), line
    start = next(i for i, line in enumerate(lines) if line.startswith("Confusion matrix"))
    header = lines[start + 1].split()
    assert header == [str(d) for d in range(10)]
    rows = [list(map(int, line.split())) for line in lines[start + 2 : start + 12]]
    assert [r[0] for r in rows] == list(range(10))
    assert [r[1:] for r in rows] == expected.confusion.tolist()


def test_evaluate_json(
    weights_dir: Path,
    mnist_dir: Path,
    mnist_test: ImageSet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "evaluate",
            "--weights",
            str(weights_dir),
            "--data-dir",
            str(mnist_dir),
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert data["total"] == 10_000
    assert data["dataset"] == "mnist"
    confusion = torch.tensor(data["confusion_matrix"])
    assert confusion.shape == (10, 10)
    assert int(confusion.sum()) == 10_000
    assert confusion.sum(dim=1).tolist() == mnist_test.class_counts().tolist()
    assert data["correct"] == int(confusion.trace())
    assert data["test_accuracy"] == pytest.approx(100 * data["correct"] / 10_000)
    assert len(data["per_class_accuracy"]) == 10


def test_evaluate_missing_weights(
    tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing-here"
    missing.mkdir()
    args = ["evaluate", "--weights", str(missing), "--data-dir", str(mnist_dir), "--device", "cpu"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(missing) in err[0]


def test_evaluate_bad_batch_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["evaluate", "--batch-size", "0"])
    assert excinfo.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


def test_info(mnist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"lenet5 {lenet5.__version__}")
    assert f"mnist data: {mnist_dir}" in out
    assert "early_stopping (built-in)" in out


# ------------------------------------------------- the parser: generated, torch-free


def _without_import_times(stderr: str) -> tuple[set[str], str]:
    """The modules ``python -X importtime`` reported, and the rest of standard error."""
    modules, rest = set(), []
    for line in stderr.splitlines():
        if line.startswith("import time:"):
            modules.add(line.rsplit("|", 1)[-1].strip())
        else:
            rest.append(line)
    return modules, "\n".join(rest)


def _torch_imported(modules: set[str]) -> bool:
    return any(m == "torch" or m.startswith("torch.") for m in modules)


@pytest.mark.parametrize(
    "command", ["", "train", "evaluate", "predict", "export", "info"], ids=lambda c: c or "lenet5"
)
def test_help_does_not_import_torch(command: str, run_cli: Runner) -> None:
    result = run_cli(*command.split(), "--help", python_flags=["-X", "importtime"])
    modules, stderr = _without_import_times(result.stderr)
    assert result.returncode == 0, stderr
    assert "usage: lenet5" in result.stdout
    assert "lenet5.cli" in modules  # the wrapper saw the command line being imported
    assert not _torch_imported(modules)


def _used_run_folder(tmp_path: Path) -> Path:
    (tmp_path / "used" / "checkpoints" / "epoch-0001").mkdir(parents=True)
    return tmp_path / "used"


def _unreadable_settings(tmp_path: Path) -> Path:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train_config.json").write_text("{not json")
    return tmp_path / "broken"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--epoch", "3"], "did you mean '--epochs'?"),  # no abbreviations
        (["train", "--epochs", "x"], "invalid int value: 'x'"),
        (["train", "--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
        (["train", "--recipe", "mnist-v9"], "invalid choice: 'mnist-v9'"),
        (["train", "--epochs", "0"], "epochs must be a positive integer"),
        (["train", "--lr", "-1"], "lr must be positive"),
        (["train", "--augment", "rotate"], "augment"),
        (["train", "--device", "floppy"], "unknown device 'floppy'"),
        (["train", "--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (["train", "--out", _used_run_folder], "already holds a run's checkpoints"),
        (["train", "--resume", _unreadable_settings], "cannot read the run's settings"),
        (["evaluate", "--device", "floppy"], "unknown device 'floppy'"),
        (["evaluate", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["predict", "x.png", "--top-k", "0"], "--top-k must be >= 1"),
        (["export", "--format", "onnx", "--out", "."], "is a folder"),
        (["export", "--format", "tflite", "--out", "m"], "invalid choice: 'tflite'"),
    ],
    # Ids without addresses, so that every xdist worker collects the same tests.
    ids=lambda v: v if isinstance(v, str) else " ".join(getattr(a, "__name__", a) for a in v),
)
def test_usage_errors_are_one_line_and_do_not_import_torch(
    args: list[Any], needle: str, tmp_path: Path, run_cli: Runner
) -> None:
    argv = [a(tmp_path) if callable(a) else a for a in args]
    result = run_cli(*argv, python_flags=["-X", "importtime"], cwd=tmp_path)
    modules, stderr = _without_import_times(result.stderr)
    line = assert_one_line_error(
        subprocess.CompletedProcess(result.args, result.returncode, result.stdout, stderr), 2
    )
    assert line.startswith(f"lenet5 {args[0]}: error: ")
    assert needle in line
    # "augment" parses its spec with lenet5.augment, which imports torch (not the CLI's doing).
    assert not _torch_imported(modules) or "--augment" in args


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


def test_parsers_take_no_abbreviations_and_describe_themselves() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert parser.allow_abbrev is False
    assert set(commands.choices) == {"train", "evaluate", "predict", "export", "info"}
    for name, sub in commands.choices.items():
        assert sub.allow_abbrev is False, name
        assert sub.description, name


def test_choice_lists_agree_with_the_library() -> None:
    from lenet5.cli import _parser
    from lenet5.data import DATASETS
    from lenet5.export import FORMATS
    from lenet5.runtime import BACKENDS

    assert set(_parser.DATASET_NAMES) == set(DATASETS)
    assert set(_parser.BACKENDS) == set(BACKENDS)
    assert set(_parser.EXPORT_FORMATS) == set(FORMATS)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export", "info"])
def test_the_documented_help_is_the_real_help(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cli.rst shows each command's ``--help`` verbatim; it must not drift from the code."""
    monkeypatch.setenv("COLUMNS", "88")  # the docs width
    docs = (Path(__file__).resolve().parent.parent / "docs" / "cli.rst").read_text()
    block = docs.split(f".. help of lenet5 {command}\n", 1)[1].split(".. end of help", 1)[0]
    documented = [
        line[3:].rstrip()
        for line in block.splitlines()
        if line.startswith("   ") and not line.startswith("   $ ")
    ]
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    real = commands.choices[command].format_help()
    assert documented == [line.rstrip() for line in real.splitlines() if line.strip()]


# ------------------------------------------------------------------- run folder


def test_resume_rewrites_the_model_card(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]],
    small_mnist_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    from cli_helpers import run_main

    out = tmp_path / "run"
    shutil.copytree(trained_run[0], out)
    card = out / "README.md"
    assert "library_name: lenet5" in card.read_text()
    card.write_text(card.read_text() + "\nSTALE: the card of the first epoch\n")
    args = ("--resume", out, "--epochs", "2", "--quiet", "--data-dir", small_mnist_dir)
    assert run_main("train", *args) == 0
    assert "STALE" not in card.read_text()
    assert "library_name: lenet5" in card.read_text()
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2


@pytest.mark.filterwarnings("ignore::UserWarning")  # the small data folder fails the MD5 check
def test_bundle_weights_reads_the_run_folder(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]],
    small_mnist_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import hashlib
    import runpy

    from lenet5.weights import read_safetensors

    script = Path(__file__).resolve().parent.parent / "scripts" / "bundle_weights.py"
    bundle = runpy.run_path(str(script))
    monkeypatch.setitem(bundle["main"].__globals__, "PRETRAINED", tmp_path)
    argv = ["bundle_weights.py", str(trained_run[0]), "test-v1", "--recipe", "lenet5 train ..."]
    monkeypatch.setattr("sys.argv", [*argv, "--data-dir", str(small_mnist_dir)])
    bundle["main"]()
    out = capsys.readouterr().out
    written = tmp_path / "test-v1.safetensors"
    assert f"sha256={hashlib.sha256(written.read_bytes()).hexdigest()!r}" in out
    assert f"file_size={written.stat().st_size}" in out
    assert "'test-v1': Weights(" in out
    assert "# trained with: " in out
    header = read_safetensors(written)[1]
    assert header["dataset"] == "mnist"
    assert header["recipe"] == "lenet5 train ..."
    assert json.loads(header["classes"]) == [str(d) for d in range(10)]


# ------------------------------------------------------------------ error messages


def test_every_error_becomes_one_line_naming_the_file() -> None:
    import zlib

    from lenet5._io import WriteError
    from lenet5.cli._errors import describe, doing
    from lenet5.data import DataError

    def raised(exc: Exception, what: str | None = None) -> str:
        try:
            if what is None:
                raise exc
            with doing("an outer step"), doing(what):  # the innermost description wins
                raise exc
        except Exception as caught:
            return describe(caught)

    # lenet5's own errors name their file: as they are, on one line.
    assert raised(DataError("a.gz: broken\n  header")) == "a.gz: broken header"
    assert raised(WriteError(28, "cannot write out/x: No space left on device")) == (
        "cannot write out/x: No space left on device"
    )
    # An OS error by its file name; one without a file by what the command was doing.
    assert raised(FileNotFoundError(2, "No such file or directory", "w.bin")) == (
        "w.bin: No such file or directory"
    )
    assert raised(OSError(28, "No space left on device"), "saving the model in run") == (
        "saving the model in run: No space left on device"
    )
    # Somebody else's error never comes alone: its type and where it happened.
    assert raised(zlib.error("invalid distance too far back"), "loading mnist from d") == (
        "loading mnist from d: error: invalid distance too far back"
    )
    assert raised(RuntimeError("line 1\nline 2\n" + "x" * 2000)).startswith(
        "RuntimeError: line 1 line 2 xxx"
    )
    assert len(raised(RuntimeError("x" * 2000))) == 600


def test_a_resume_path_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["train", "--resume", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lenet5 train: error: --resume {tmp_path / 'nothing'} does not exist"]
    assert not (tmp_path / "r").exists()
