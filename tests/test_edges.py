"""Edge cases that the coverage report showed untested: the error branches a user can reach.

Each test is one claim about what a user sees at an edge: a bad argument, a malformed or
unreadable file, an empty input, an unusual but valid form of data, a lock held by another
process, a signal at an odd moment. Everything is real: real MNIST images, real models and
fits (64 images, two batches), real files written and damaged on disk, real subprocesses and
signals for the command line. What the suite does not reach, and why, is listed in
``docs/testing.rst``.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import warnings
from argparse import Namespace
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import lenet5
from cli_helpers import (
    SIGNAL_CALLBACK,
    environment,
    finish,
    run_main,
    start,
    write_signal_plugin,
)
from helpers import StopAtBatch, quiet, weights
from lenet5 import Callback, ImageSet, LeNet5, Trainer, TrainState
from lenet5.data import (
    DATA_DIR_ENV,
    DataError,
    as_image_set,
    identify_dataset,
    known_norm,
    load_dataset,
    read_idx,
)
from lenet5.devices import DeviceError, resolve_device
from lenet5.inference import evaluate, predict_logits
from lenet5.preprocess import ImageError, to_mnist
from lenet5.training import (
    CallbackError,
    Checkpoint,
    CheckpointError,
    ConfigError,
    EarlyStopping,
    ProgressBar,
)
from lenet5.training.checkpoint import load_checkpoint, prune_checkpoints, save_checkpoint
from lenet5.weights import WeightsError, load_weights, read_safetensors, resolve_pretrained

REPO = Path(__file__).resolve().parent.parent
NO_MD5_WARNING = ("-W", "ignore::UserWarning")


def _images(data: ImageSet, n: int) -> list[tuple[torch.Tensor, int]]:
    """The first ``n`` examples as a plain list of ``(image (1, 28, 28), label)`` items."""
    return [(data.images[i].unsqueeze(0), int(data.labels[i])) for i in range(n)]


class Stream(IterableDataset[tuple[torch.Tensor, int]]):
    """An iterable dataset without a length: the first ``n`` examples of an ImageSet."""

    def __init__(self, data: ImageSet, n: int) -> None:
        items = _images(data, len(data))
        self.items = [items[i % len(items)] for i in range(n)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        return iter(self.items)


# ------------------------------------------------------------------ package and entry point


def test_dir_of_the_package_lists_the_lazily_imported_names() -> None:
    names = dir(lenet5)
    assert {"Trainer", "LeNet5", "Checkpoint", "evaluate", "load_dataset"} <= set(names)
    assert set(lenet5.__all__) <= set(names)


def test_importing_dunder_main_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    module = importlib.import_module("lenet5.__main__")
    assert module.__name__ == "lenet5.__main__"
    assert capsys.readouterr() == ("", "")  # no command ran, no usage was printed


# A meta-path finder that sends this process a real SIGINT when ``lenet5.cli`` starts to be
# imported: Ctrl-C at the moment ``python -m lenet5`` loads its command line.
_SIGINT_ON_IMPORT = """
import os, signal, sys

class _CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "lenet5.cli":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _CtrlC())
"""


def test_ctrl_c_while_the_command_line_is_imported_exits_130(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(_SIGINT_ON_IMPORT)
    process = subprocess.run(
        [sys.executable, "-m", "lenet5", "info"],
        env=environment([tmp_path]),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 130, process.stderr
    assert process.stderr == "\nlenet5: interrupted by Ctrl-C\n"
    assert process.stdout == ""


# ---------------------------------------------------------------------------- command line


def test_evaluate_plot_into_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "plots.png"
    target.write_bytes(b"an earlier picture")
    assert run_main("evaluate", "--plot", target) == 2
    assert capsys.readouterr().err == (
        f"lenet5 evaluate: error: --plot {target} is a file, not a folder\n"
    )
    assert target.read_bytes() == b"an earlier picture"


def test_an_output_folder_that_cannot_be_made_names_itself_the_cause_and_the_flag(
    tmp_path: Path,
) -> None:
    from lenet5.cli._common import ensure_writable

    (tmp_path / "a file").write_text("")
    folder = tmp_path / "a file" / "plots"
    with pytest.raises(OSError, match="is not writable") as info:
        ensure_writable(folder, "--plot")
    assert str(info.value) == (
        f"output folder {folder} is not writable (Not a directory); choose another with --plot"
    )


def test_predict_refuses_a_zero_batch_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main("predict", tmp_path / "one.png", "--batch-size", "0") == 2
    assert capsys.readouterr().err == "lenet5 predict: error: --batch-size must be >= 1, got 0\n"


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


def test_a_failed_rename_is_described_with_both_paths(tmp_path: Path) -> None:
    from lenet5.cli._errors import describe

    source, target = tmp_path / "missing", tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError) as info:
        os.rename(source, target)
    assert describe(info.value) == f"{source} -> {target}: No such file or directory"


def test_the_command_line_runs_in_a_worker_thread(
    small_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signal handlers can be set in the main thread only: elsewhere the commands run
    without them (a notebook or a server calling ``lenet5.cli.main`` from a thread)."""
    codes: list[int] = []
    run = tmp_path / "run"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def commands() -> None:
        codes.append(run_main("info"))
        args = ("--data-dir", small_mnist_dir, "--epochs", "1", "--val-every", "0")
        codes.append(run_main("train", *args, "--quiet", "--out", run))

    thread = threading.Thread(target=commands)
    thread.start()
    thread.join(300)
    assert not thread.is_alive()
    assert codes == [0, 0], capsys.readouterr().err
    assert (run / "model.safetensors").is_file()
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # none touched


@pytest.fixture(scope="module")
def tiny_data(
    tmp_path_factory: pytest.TempPathFactory,
    mnist_train: ImageSet,
    mnist_test: ImageSet,
    idx_writer: Callable[..., Path],
) -> Path:
    """256 training and 256 test images of MNIST, as IDX files (8 steps of 32 per epoch)."""
    folder = tmp_path_factory.mktemp("tiny-mnist")
    for prefix, split in (("train", mnist_train), ("t10k", mnist_test)):
        idx_writer(folder / f"{prefix}-images-idx3-ubyte", split.images[:256])
        idx_writer(folder / f"{prefix}-labels-idx1-ubyte", split.labels[:256].to(torch.uint8))
    return folder


def _signalled_train(
    tiny_data: Path | None, out: Path, spec: str, *, debug: bool = False
) -> subprocess.Popen[str]:
    """``lenet5 train`` in a real process whose callback plugin sends it the signals of
    ``spec`` at step 3; the data from ``--data-dir``, or (``None``) from the environment."""
    site = write_signal_plugin(out.parent / "site")
    args: list[str | Path] = ["--debug"] if debug else []
    args += ["train", "--epochs", "2", "--device", "cpu", "--val-every", "0", "--quiet"]
    args += ["--callbacks", SIGNAL_CALLBACK, "--out", out]
    extra = {"LENET5_TEST_SIGNALS": spec}
    if tiny_data is None:
        extra[DATA_DIR_ENV] = str(out.parent / "data")
    else:
        args += ["--data-dir", tiny_data]
    return start(args, cwd=out.parent, env=environment([site], **extra))


def test_an_interrupted_run_with_data_from_the_environment_resumes_without_data_dir(
    tiny_data: Path, tmp_path: Path
) -> None:
    shutil.copytree(tiny_data, tmp_path / "data")
    code, _, err = finish(_signalled_train(None, tmp_path / "run", "SIGINT@3"))
    assert code == 130, err
    assert "Traceback" not in err
    checkpoint = tmp_path / "run" / "checkpoints" / "epoch-0001-batch-000003"
    assert (
        f"Interrupted at epoch 1, batch 3 of 8; checkpoint {checkpoint} saved. Resume with:\n"
        f"  lenet5 train --resume {tmp_path / 'run'}\n"  # the data folder is not recorded
    ) in err


def test_debug_shows_the_traceback_of_an_aborted_run(tiny_data: Path, tmp_path: Path) -> None:
    code, _, err = finish(
        _signalled_train(tiny_data, tmp_path / "run", "SIGINT,SIGINT@3", debug=True)
    )
    # Uncaught, with the command's signal handlers still in place: Python's exit code 1.
    assert code == 1, err
    assert "lenet5 train: aborted by Ctrl-C, without saving" in err
    assert "Traceback (most recent call last)" in err


def test_a_run_checkpointed_from_python_resumes_with_the_command_line(
    small_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder without the settings record that ``lenet5 train`` writes: the checkpoint
    of a Python fit (``Checkpoint(run / "checkpoints")``) is continued by the CLI."""
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the subset's files are not the official
        data = load_dataset("mnist", small_mnist_dir, split="train")
    quiet(epochs=1, callbacks=[Checkpoint(run / "checkpoints")]).fit(data)
    resumed = quiet(epochs=2, callbacks=[Checkpoint(run / "checkpoints")])
    resumed.fit(data, resume=run / "checkpoints")  # a first resume, with a change
    assert not (run / "train_config.json").exists()
    args = ("--data-dir", small_mnist_dir, "--epochs", "3", "--quiet")
    assert run_main("train", "--resume", run, *args) == 0, capsys.readouterr().err
    recorded = json.loads((run / "train_config.json").read_text())
    assert recorded["epochs"] == 1  # the settings the run started with, then the overrides
    assert [(o["setting"], o["before"], o["after"]) for o in recorded["overrides"]] == [
        ("epochs", 1, 2),
        ("epochs", 2, 3),
    ]
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 3


# ------------------------------------------------------------------------------------ data


def test_a_tensor_dataset_of_colour_images_is_not_taken_for_an_image_set() -> None:
    images = torch.zeros(4, 3, 28, 28, dtype=torch.uint8)
    assert as_image_set(TensorDataset(images, torch.zeros(4, dtype=torch.long))) is None


def test_a_torchvision_mnist_without_transforms_is_evaluated_as_an_image_set(
    tmp_path: Path, mnist_test: ImageSet, idx_writer: Callable[..., Path]
) -> None:
    from torchvision.datasets import MNIST

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, split in (("train", mnist_test), ("t10k", mnist_test)):  # small train split
        idx_writer(raw / f"{prefix}-images-idx3-ubyte", split.images[:200], gz=False)
        labels = split.labels[:200].to(torch.uint8)
        idx_writer(raw / f"{prefix}-labels-idx1-ubyte", labels, gz=False)
    dataset = MNIST(str(tmp_path), train=False)
    found = as_image_set(dataset)
    assert found is not None
    assert found.name == "torchvision MNIST"
    assert torch.equal(found.images, mnist_test.images[:200])
    assert (found.mean, found.std) == (mnist_test.mean, mnist_test.std)
    assert known_norm(DataLoader(dataset)) == (mnist_test.mean, mnist_test.std)
    model = LeNet5.from_pretrained("DEFAULT")
    assert (
        evaluate(model, dataset).correct
        == evaluate(model, mnist_test.subset(slice(0, 200))).correct
    )


def test_known_norm_ends_on_a_wrapper_that_contains_itself() -> None:
    class Loop:
        def __init__(self) -> None:
            self.dataset = self

    assert known_norm(Loop()) is None  # at once, not an endless walk


def test_download_needs_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=r"^download=True needs a folder: pass root or set "):
        load_dataset("mnist", download=True)


def test_identify_dataset_passes_over_a_corrupt_label_file(tmp_path: Path, mnist_dir: Path) -> None:
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01 not really")
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", tmp_path)
    assert identify_dataset(tmp_path) == "mnist"


def test_unusable_inputs_to_predict_name_the_forms_that_work(tiny_test: ImageSet) -> None:
    model = LeNet5()
    with pytest.raises(DataError) as info:
        predict_logits(model, {"digits": tiny_test})
    assert str(info.value) == (
        "data: cannot use a dict; give an ImageSet, a Dataset (map-style or IterableDataset), "
        "a DataLoader, a list of items or an image tensor (N, H, W) / (N, 1, H, W); a dict of "
        "named sets is accepted as validation data only (val=)"
    )
    with pytest.raises(
        DataError, match=r"must be \(N, H, W\) or \(N, 1, H, W\), got \(2, 1, 1, 28, 28\)"
    ):
        predict_logits(model, torch.zeros(2, 1, 1, 28, 28))


def test_pil_images_in_a_list_are_evaluated_like_tensors(tiny_test: ImageSet) -> None:
    from PIL import Image

    model = LeNet5.from_pretrained("DEFAULT")
    as_pil = [
        (Image.fromarray(tiny_test.images[i].numpy()), int(tiny_test.labels[i])) for i in range(64)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uint8 of unknown origin: MNIST's normalisation
        from_pil = evaluate(model, as_pil)
    assert from_pil.correct == evaluate(model, tiny_test).correct
    assert from_pil.total == 64


def test_evaluating_images_without_labels_says_what_it_needs(tiny_test: ImageSet) -> None:
    model = LeNet5()
    images = [tiny_test.images[i].unsqueeze(0).float() for i in range(4)]
    with pytest.raises(DataError, match=r"need \(image, label\) items; got Tensor"):
        evaluate(model, images)
    bare = torch.zeros(8, 1, 28, 28)
    loader: DataLoader[torch.Tensor] = DataLoader(bare, batch_size=4)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="the DataLoader gives Tensor batches"):
        evaluate(model, loader)


def test_empty_data_cannot_be_evaluated_or_predicted() -> None:
    model = LeNet5()
    with pytest.raises(DataError, match=r"^cannot evaluate on empty data$"):
        evaluate(model, [])
    with pytest.raises(DataError, match=r"^cannot predict on empty data$"):
        predict_logits(model, torch.zeros(0, 28, 28))


def _idx(tmp_path: Path, name: str, header: bytes, payload: bytes = b"") -> Path:
    path = tmp_path / name
    path.write_bytes(header + payload)
    return path


def test_idx_files_that_lie_about_their_size_or_are_folders(tmp_path: Path) -> None:
    short_header = _idx(tmp_path, "a-idx3-ubyte", struct.pack(">HBB", 0, 8, 3) + b"\0\0\0\1")
    with pytest.raises(DataError, match=r"a-idx3-ubyte: truncated header \(8 bytes\)$"):
        read_idx(short_header)
    header = struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 10)
    gz = tmp_path / "b-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(header + bytes(4)))  # gzipped: its size promises nothing
    with pytest.raises(DataError, match="header promises 10 = 10 values but the file holds 4"):
        read_idx(gz)
    (tmp_path / "c-idx1-ubyte").mkdir()
    with pytest.raises(DataError, match=r"c-idx1-ubyte: is a folder, not an IDX file$"):
        read_idx(tmp_path / "c-idx1-ubyte")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_idx_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(struct.pack(">HBBI", 0, 8, 1, 0))
    path.chmod(0)
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: cannot read \(Permission denied\)$"):
        read_idx(path)


def test_read_idx_warns_when_the_md5_differs(
    tmp_path: Path, idx_writer: Callable[..., Path]
) -> None:
    path = idx_writer(tmp_path / "labels-idx1-ubyte", torch.arange(10, dtype=torch.uint8))
    with pytest.warns(
        UserWarning, match=r"MD5 of the decompressed data is [0-9a-f]{32}, expected 0+"
    ):
        labels = read_idx(path, md5="0" * 32)
    assert labels.tolist() == list(range(10))


def test_image_set_repr_and_a_copy_on_another_device(tiny_train: ImageSet) -> None:
    assert repr(tiny_train) == (
        "ImageSet(name='mnist/train', 64 images of 28x28, 10 classes, device=cpu)"
    )
    moved = tiny_train.to("meta")  # a device with no data: the copy is made, not the values
    assert moved is not tiny_train
    assert moved.device == torch.device("meta")
    assert (moved.mean, moved.std, moved.classes) == (
        tiny_train.mean,
        tiny_train.std,
        tiny_train.classes,
    )
    assert tiny_train.device == torch.device("cpu")
    assert tiny_train.to("cpu") is tiny_train


def test_a_failing_write_inside_an_atomic_one_keeps_its_own_message(tmp_path: Path) -> None:
    from lenet5._io import WriteError, atomic_folder, atomic_write_bytes

    (tmp_path / "a file").write_text("")
    inner = tmp_path / "a file" / "inner.bin"  # under a file: cannot be written

    def write_both() -> None:
        with atomic_folder(tmp_path / "outer") as staged:
            (staged / "part").write_text("half of the folder")
            atomic_write_bytes(inner, b"data")

    with pytest.raises(WriteError) as info:
        write_both()
    assert str(info.value).startswith(f"cannot write {inner}: ")  # the inner file's message
    assert "outer" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file"]  # nothing left behind


# ---------------------------------------------------------------- devices and inference


def test_misspelt_and_unavailable_devices() -> None:
    with pytest.raises(DeviceError, match=r"^unknown device 'tpu'; use auto, cpu, cuda or cuda:N$"):
        resolve_device("tpu")
    if torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    with pytest.raises(DeviceError, match=r"^device 'mps' requested but MPS is not available"):
        resolve_device("mps")


def test_plots_without_validation_or_without_errors(tmp_path: Path, tiny_test: ImageSet) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    from lenet5.plotting import plot_history, plot_misclassified

    curves = plot_history([{"loss": 0.9}, {"loss": 0.5}], tmp_path / "curves.png")
    labels = tiny_test.labels[:8]
    grid = plot_misclassified(tiny_test.images[:8], labels, labels.clone(), tiny_test.classes,
                              tmp_path / "wrong.png")  # fmt: skip
    for path in (curves, grid):
        with Image.open(path) as image:
            assert image.width > 100


def test_predict_files_when_every_file_fails(tmp_path: Path) -> None:
    from lenet5.predict import Predictor

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    results, failures = Predictor("DEFAULT", backend="torch").predict_files(
        [tmp_path / "missing.png", empty]
    )
    assert results == []
    assert [f.message for f in failures] == ["file not found", "the file is empty (0 bytes)"]


# ------------------------------------------------------------------------- preprocessing


def test_a_symlink_loop_is_refused_naming_the_cause(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(
        ImageError, match=r"a\.png: a symbolic link loop \(it never reaches a file\)$"
    ):
        to_mnist(a)


def _stroke(values: torch.Tensor) -> torch.Tensor:
    """A vertical stroke of the highest value over the lowest (a digit 1)."""
    image = torch.full((40, 30), float(values.min()))
    image[5:35, 12:18] = float(values.max())
    return image


def test_tensor_images_in_unusual_ranges_shapes_and_types() -> None:
    reference = to_mnist(_stroke(torch.tensor([0.0, 1.0])))
    # A normalised image (negative values) is stretched from its minimum to its maximum.
    assert torch.equal(to_mnist(_stroke(torch.tensor([-0.4242, 2.8215]))), reference)
    assert torch.equal(to_mnist(_stroke(torch.tensor([0.0, 1.0]))[None]), reference)  # (1, H, W)
    assert torch.equal(to_mnist(_stroke(torch.tensor([0.0, 1.0])).bool()), reference)
    with pytest.raises(ImageError, match=r"got \(2, 40, 30\)$"):
        to_mnist(torch.zeros(2, 40, 30))
    with pytest.raises(ImageError, match=r"^the image is empty$"):
        to_mnist(torch.zeros(0, 5))


def test_a_picture_in_a_mode_without_greyscale_is_refused() -> None:
    from PIL import Image

    with pytest.raises(ImageError, match=r"^pictures in mode 'LAB' cannot be made greyscale$"):
        to_mnist(Image.new("LAB", (28, 28)))


# ------------------------------------------------------------------------ ONNX and export


@pytest.fixture
def onnxruntime_model() -> Any:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from lenet5.runtime import OnnxRuntimeModel

    return OnnxRuntimeModel(LeNet5.from_pretrained("DEFAULT"), threads=1)


def test_onnxruntime_takes_any_float_input(onnxruntime_model: Any, tiny_test: ImageSet) -> None:
    model = LeNet5.from_pretrained("DEFAULT").eval()
    x = tiny_test.images[:6].double().div(255).sub(0.1307).div(0.3081).unsqueeze(1)
    odd = x.transpose(2, 3).requires_grad_()  # float64, not contiguous, requiring grad
    with torch.no_grad():
        expected = model(odd.detach().float())
    torch.testing.assert_close(onnxruntime_model(odd), expected, atol=1e-4, rtol=1e-4)
    assert repr(onnxruntime_model) == "OnnxRuntimeModel(in_channels=1)"


def test_the_innermost_cause_in_one_line() -> None:
    from lenet5._onnx_graph import one_line

    inner = ValueError("\x1b[31mdata-dependent\x1b[0m branch\non the input\n\nadvice")
    outer = RuntimeError("the exporter failed")
    outer.__cause__ = inner  # what `raise ... from inner` sets
    assert one_line(outer) == "data-dependent branch on the input"
    assert one_line(KeyError()) == "KeyError"


def test_only_exact_lenet5_layers_are_written_by_hand() -> None:
    from lenet5._onnx_graph import lenet5_layers

    padded, ceil, no_bias = LeNet5(), LeNet5(), LeNet5()
    cast(nn.Conv2d, padded.features[0]).padding = (2, 2)
    cast(nn.AvgPool2d, ceil.features[2]).ceil_mode = True
    no_bias.classifier[5] = nn.Linear(84, 10, bias=False)
    assert [lenet5_layers(m) for m in (padded, ceil, no_bias)] == [None, None, None]


def test_a_model_the_exporter_cannot_trace_is_an_export_error(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    from lenet5.export import ExportError, export_model

    class Refuses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("this model refuses to run")

    with pytest.raises(ExportError) as info:
        export_model(Refuses(), tmp_path / "m.onnx", format="onnx")
    assert str(info.value) == "cannot export Refuses to ONNX: this model refuses to run"
    assert not (tmp_path / "m.onnx").exists()


# ---------------------------------------------------------------------------- augmentation


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


# -------------------------------------------------------------------- training settings


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


def test_label_smoothing_and_a_loss_function_exclude_each_other(tiny_train: ImageSet) -> None:
    trainer = quiet(epochs=1, label_smoothing=0.1, loss_fn=nn.functional.cross_entropy)
    with pytest.raises(ConfigError, match="label_smoothing shapes the built-in cross-entropy"):
        trainer.fit(tiny_train)


def test_validation_data_that_cannot_be(tiny_train: ImageSet) -> None:
    with pytest.raises(DataError, match=r"^val is an empty dict; give at least one"):
        quiet(epochs=1).fit(tiny_train, val={})
    with pytest.raises(DataError, match=r"^val_split needs ImageSet training data"):
        quiet(epochs=1, val_split=10).fit(_images(tiny_train, 64))


def test_an_empty_list_of_training_examples_is_refused() -> None:
    with pytest.raises(DataError, match=r"^the training data is empty$"):
        quiet(epochs=1).fit([])


def test_a_dataloader_of_bare_images_cannot_train(tiny_train: ImageSet) -> None:
    images = tiny_train.images.unsqueeze(1).float()
    loader: DataLoader[torch.Tensor] = DataLoader(images, batch_size=32)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"the training data gives Tensor batches; training needs"):
        quiet(epochs=1).fit(loader)


def test_scheduler_none_by_name(tiny_train: ImageSet) -> None:
    state = quiet(epochs=1, scheduler="none").fit(tiny_train)
    assert state.scheduler is None
    assert state.global_step == 2


def test_the_trainers_mean_and_std_override_an_image_sets_own(tiny_test: ImageSet) -> None:
    model = LeNet5.from_pretrained("DEFAULT")
    own = Trainer(model, verbose=False, device="cpu").evaluate(tiny_test)
    other = Trainer(model, verbose=False, device="cpu", mean=0.5, std=0.5).evaluate(tiny_test)
    expected = evaluate(model, dataclasses.replace(tiny_test, mean=0.5, std=0.5))
    assert (other.loss, other.correct) == (expected.loss, expected.correct)
    assert other.loss != own.loss


def test_repr_of_a_trainer_lists_its_callbacks_in_order() -> None:
    text = repr(quiet(callbacks=[EarlyStopping()]))
    head, rest = text.split("\n", 1)
    assert head.startswith("Trainer(model=LeNet5, config=TrainConfig(epochs=")
    assert rest.startswith("callbacks (order, callback):\n")
    assert "EarlyStopping" in rest


# ------------------------------------------------------------------- the fit, batch by batch


class Probe(Callback):
    """Reads the state where it is not there yet, and writes what a callback may write."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def on_fit_start(self, state: TrainState) -> None:
        self.seen["loss before any batch"] = state.batch_loss
        with pytest.raises(RuntimeError, match=r"state\.inputs exists during a training step"):
            _ = state.inputs

    def on_batch_start(self, state: TrainState) -> None:
        state.inputs = state.inputs.flip(3)  # a callback's own augmentation
        state.targets = state.targets.clone()

    def on_batch_end(self, state: TrainState) -> None:
        self.seen.setdefault("batch indices", []).append(state.batch_index)
        self.seen.setdefault("complete", []).append(state.epoch_complete)
        loss = state.batch_loss_tensor
        assert loss is not None
        self.seen.setdefault("losses", []).append(float(loss))
        if state.global_step == 2:
            state.stop("first reason")
            state.stop("second reason")


def test_the_state_of_a_fit_on_data_without_a_length(tiny_train: ImageSet) -> None:
    probe = Probe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uint8 of unknown origin
        state = quiet(epochs=2, callbacks=[probe]).fit(Stream(tiny_train, 96))
    assert probe.seen["loss before any batch"] != probe.seen["loss before any batch"]  # NaN
    assert probe.seen["batch indices"] == [2**32 + 1, 2**32 + 2]  # epoch 1, unique per batch
    assert probe.seen["complete"] == [False, False]  # known only when the data runs out
    assert len(probe.seen["losses"]) == 2
    assert state.stop_reason == "first reason"  # a second stop() keeps the first reason
    assert state.epoch == 1


def test_a_short_last_group_of_data_without_a_length_still_steps(tiny_train: ImageSet) -> None:
    torch.manual_seed(0)
    model = LeNet5()
    model.unused = nn.Linear(2, 2)  # a parameter the forward pass never uses: no gradient
    before = weights(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = quiet(model, epochs=1, accumulate_grad_batches=2).fit(Stream(tiny_train, 96))
    # Three batches: one group of two, then the third alone (found out when the data ended).
    assert state.global_step == 2
    after = weights(model)
    assert torch.equal(before["unused.weight"], after["unused.weight"])
    assert not torch.equal(before["features.0.weight"], after["features.0.weight"])


def test_a_resumed_epoch_whose_data_runs_short_is_refused(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet(epochs=1, callbacks=[Checkpoint(tmp_path), StopAtBatch(1, 2)]).fit(
            Stream(tiny_train, 128)
        )
        with pytest.raises(DataError, match=r"ran out after 1 batches, before the 2 that the"):
            quiet(epochs=1).fit(Stream(tiny_train, 32), resume=tmp_path)


def test_a_progress_bar_can_be_forced_without_a_terminal(
    tiny_train: ImageSet, capsys: pytest.CaptureFixture[str]
) -> None:
    Trainer(epochs=1, device="cpu", callbacks=[ProgressBar(refresh=2, force=True)]).fit(tiny_train)
    assert "Epoch 1/1" in capsys.readouterr().err


# -------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def one_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_train: ImageSet) -> Path:
    """The folder of checkpoints of a one-epoch fit (``epoch-0001``, ``latest``)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    quiet(epochs=1, callbacks=[Checkpoint(folder)]).fit(tiny_train)
    return folder


def _damaged(one_checkpoint: Path, tmp_path: Path, change: Callable[[Any], Any]) -> Path:
    """A copy of the checkpoint whose ``trainer.pt`` holds ``change(saved state)``."""
    folder = tmp_path / "epoch-0001"
    shutil.copytree(one_checkpoint / "epoch-0001", folder)
    saved = torch.load(folder / "trainer.pt", weights_only=True)
    buffer = io.BytesIO()
    torch.save(change(saved), buffer)
    (folder / "trainer.pt").write_bytes(buffer.getvalue())
    return folder


def _with(**changes: Any) -> Callable[[Any], Any]:
    return lambda saved: {**saved, **changes}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda saved: list(saved), " is damaged: it holds a list, not a trainer state"),
        (
            _with(rng={"torch": torch.zeros(4), "generator": torch.zeros(4)}),
            " is damaged: 'rng' is not the random-generator states",
        ),
        (_with(epoch_progress={"batches": 1}), " is damaged: 'epoch_progress' is not the progress"),
        (_with(format_version=2), ": checkpoint format 2 is not supported (expected 1)"),
    ],
)
def test_a_damaged_or_newer_trainer_state_is_named(
    one_checkpoint: Path, tmp_path: Path, change: Callable[[Any], Any], problem: str
) -> None:
    folder = _damaged(one_checkpoint, tmp_path, change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder)
    assert str(info.value).startswith(f"{folder / 'trainer.pt'}{problem}")


def test_a_checkpoint_without_optimizer_state_resumes_with_a_fresh_one(
    one_checkpoint: Path, tmp_path: Path, tiny_train: ImageSet
) -> None:
    folder = _damaged(one_checkpoint, tmp_path, _with(optimizer=None))
    state = quiet(epochs=2).fit(tiny_train, resume=folder)
    assert (state.epoch, state.global_step) == (2, 4)


def test_weights_of_another_dtype_do_not_fit(
    one_checkpoint: Path, tmp_path: Path, tiny_train: ImageSet
) -> None:
    folder = tmp_path / "epoch-0001"
    shutil.copytree(one_checkpoint / "epoch-0001", folder)
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v.double() for k, v in tensors.items()}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"is torch.float64 in the checkpoint, torch.float32"):
        quiet(epochs=2).fit(tiny_train, resume=folder)


def test_weights_written_by_a_wrapper_resume_into_the_plain_model(
    one_checkpoint: Path, tmp_path: Path, tiny_train: ImageSet
) -> None:
    from lenet5.training._modules import unwrap

    folder = tmp_path / "epoch-0001"
    shutil.copytree(one_checkpoint / "epoch-0001", folder)
    tensors = load_file(folder / "model.safetensors")
    save_file(
        {f"module._orig_mod.{k}": v for k, v in tensors.items()}, folder / "model.safetensors"
    )
    model = LeNet5()
    quiet(model, epochs=1).fit(tiny_train, resume=folder)  # done: the weights restored only
    assert all(torch.equal(model.state_dict()[k], v) for k, v in tensors.items())
    assert unwrap(nn.DataParallel(model)) is model


def test_save_checkpoint_from_a_callback(tmp_path: Path, tiny_train: ImageSet) -> None:
    class SaveAtEnd(Callback):
        def on_fit_end(self, state: TrainState) -> None:
            self.path = save_checkpoint(tmp_path / "mine", state)

    saver = SaveAtEnd()
    quiet(epochs=1, callbacks=[saver]).fit(tiny_train)
    assert saver.path == tmp_path / "mine" / "epoch-0001"
    assert load_checkpoint(saver.path)[1]["global_step"] == 2


def test_prune_with_a_newest_that_is_not_there_keeps_the_newest(tmp_path: Path) -> None:
    for name in ("epoch-0001", "epoch-0002", "epoch-0003"):
        (tmp_path / name).mkdir()
    prune_checkpoints(tmp_path, keep=1, newest=tmp_path / "epoch-0009")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003"]


def test_checkpoint_settings_and_another_runs_folders(tmp_path: Path, tiny_train: ImageSet) -> None:
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'best'"):
        Checkpoint(tmp_path, mode="best")
    for other in ("run", "run-2"):  # two earlier runs' checkpoints
        (tmp_path / other / "epoch-0001").mkdir(parents=True)
    checkpoint = Checkpoint(tmp_path / "run")
    with pytest.warns(UserWarning, match=r"writing this run's into .*run-3 instead"):
        quiet(epochs=1, callbacks=[checkpoint]).fit(tiny_train)
    assert checkpoint.last_path == tmp_path / "run-3" / "epoch-0001"
    with pytest.raises(KeyError, match="Checkpoint monitors 'val_f1' but the metrics are"):
        quiet(epochs=1, callbacks=[Checkpoint(tmp_path / "x", monitor="val_f1")]).fit(
            tiny_train, val=tiny_train
        )


def test_best_checkpoint_and_early_stopping_state_survive_a_resume(
    tmp_path: Path, tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    """With a learning rate too small to change anything, no later validation is better:
    the best checkpoint stays the first, through the resume, and patience runs out."""

    def callbacks() -> list[Callback]:
        return [
            Checkpoint(tmp_path, monitor="val_loss", mode="min"),
            EarlyStopping(monitor="val_loss", mode="min", patience=2),
        ]

    quiet(epochs=2, lr=1e-30, val_every=1, callbacks=callbacks()).fit(tiny_train, val=tiny_test)
    resumed_callbacks = callbacks()
    state = quiet(epochs=5, lr=1e-30, val_every=1, callbacks=resumed_callbacks).fit(
        tiny_train, val=tiny_test, resume=tmp_path
    )
    checkpoint, stopping = resumed_callbacks
    assert isinstance(checkpoint, Checkpoint)
    assert isinstance(stopping, EarlyStopping)
    assert checkpoint.best_path == tmp_path / "best"
    assert load_checkpoint(tmp_path / "best")[1]["epoch"] == 1  # never bettered
    assert stopping.best_epoch == 1
    assert state.epoch == 3  # epochs 2 and 3 did not improve: patience 2, resumed at 2
    assert (
        state.stop_reason == "val_loss did not improve for 2 validations (best 2.2901 at epoch 1)"
    )


def test_a_monitored_run_not_yet_validated_resumes_without_a_best(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path, monitor="val_loss")]).fit(tiny_train)
    assert load_checkpoint(tmp_path)[1]["callbacks"] == {"Checkpoint": {"best_score": None}}
    checkpoint = Checkpoint(tmp_path, monitor="val_loss")
    quiet(epochs=2, callbacks=[checkpoint]).fit(tiny_train, resume=tmp_path)
    assert (checkpoint.best_score, checkpoint.best_path) == (None, None)


def test_mixed_precision_float16_resumes_its_gradient_scaler(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    class ScalerAtStart(Callback):
        def on_epoch_start(self, state: TrainState) -> None:
            assert state.scaler is not None
            self.seen = state.scaler.state_dict()

    quiet(epochs=1, precision="16-mixed", callbacks=[Checkpoint(tmp_path)]).fit(tiny_train)
    saved = load_checkpoint(tmp_path)[1]["scaler"]
    assert saved["_growth_tracker"] == 2  # two steps without an overflow
    probe = ScalerAtStart()
    quiet(epochs=2, precision="16-mixed", callbacks=[probe]).fit(tiny_train, resume=tmp_path)
    assert probe.seen == saved


# ----------------------------------------------------------------------------- plugins


def test_plugins_that_are_not_callbacks_or_cannot_be_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenet5.training import ENTRY_POINT_GROUP, create_callback

    (tmp_path / "edge_plugins.py").write_text(
        "NOT_A_CLASS = 42\n\nclass Fussy:\n    def __init__(self):\n"
        "        raise RuntimeError('needs a token')\n"
    )
    info = tmp_path / "edge_plugins-0.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edge-plugins\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nnumber = edge_plugins:NOT_A_CLASS\nfussy = edge_plugins:Fussy\n"
    )
    (info / "RECORD").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CallbackError) as info_number:
        create_callback("number")
    assert str(info_number.value) == (
        "plugin callback 'number' from edge-plugins 0.2 points at 42, which is not a callback class"
    )
    with pytest.raises(CallbackError, match=r"^plugin callback 'fussy' from edge-plugins 0.2 "
                       r"could not be created: needs a token$"):  # fmt: skip
        create_callback("fussy")


# --------------------------------------------------------------------------- run folders


def test_a_run_folder_that_cannot_be_made_or_locked(tmp_path: Path) -> None:
    from lenet5._io import WriteError
    from lenet5.training.run import RunFolder

    (tmp_path / "a file").write_text("")
    with (
        pytest.raises(WriteError, match=r"^cannot write .*a file/run: "),
        RunFolder(tmp_path / "a file" / "run").lock(),
    ):
        pass
    (tmp_path / "run" / ".lock").mkdir(parents=True)  # the lock is a folder
    with (
        pytest.raises(WriteError, match=r"run/\.lock: Is a directory$"),
        RunFolder(tmp_path / "run").lock(),
    ):
        pass


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """A run folder whose lock another holder (another file descriptor) has taken."""
    from filelock import FileLock

    folder = tmp_path / "run"
    folder.mkdir()
    other = FileLock(str(folder / ".lock"), timeout=0)
    other.acquire()
    try:
        yield folder
    finally:
        other.release()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    ("owner", "who"),
    [
        ("{not json", "another process"),
        (
            json.dumps({"pid": 4242, "host": "elsewhere", "started": "today"}),
            "process 4242 on elsewhere, since today",
        ),
        ("dead", "process {pid} on {host}, since yesterday"),
    ],
    ids=["unreadable", "other-host", "dead-process"],
)
def test_a_locked_run_folder_names_who_holds_it(held_lock: Path, owner: str, who: str) -> None:
    from lenet5.training.run import RunFolder, RunFolderLocked

    pid, host = _dead_pid(), socket.gethostname()
    if owner == "dead":  # a record left by a process that died (a live one would rewrite it)
        owner = json.dumps({"pid": pid, "host": host, "started": "yesterday"})
    (held_lock / ".lock.owner").write_text(owner)
    with pytest.raises(RunFolderLocked) as info, RunFolder(held_lock).lock():
        pass
    assert str(info.value) == f"{held_lock} is in use by {who.format(pid=pid, host=host)}"


def test_malformed_overrides_in_the_run_settings(tmp_path: Path) -> None:
    from lenet5.training.run import RunFolder, RunFolderError

    run = RunFolder(tmp_path)
    run.config_file.write_text(json.dumps({"epochs": 2, "overrides": [{"setting": "lr"}]}))
    with pytest.raises(RunFolderError, match=r"train_config.json: malformed overrides"):
        run.read_settings()


# --------------------------------------------------------------------- distributed settings


def test_strategy_single_ignores_a_launchers_environment(
    tiny_train: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "1"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    state = quiet(epochs=1, strategy="single").fit(tiny_train)
    assert (state.world_size, state.global_step) == (1, 2)


def test_a_process_group_the_caller_made_is_used_and_left_alone(
    tmp_path: Path, tiny_train: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    from lenet5.training.distributed import is_main_process, launch_ranks

    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "1"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = dist.FileStore(str(tmp_path / "store"), 1)  # type: ignore[attr-defined]
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert launch_ranks() == (0, 1, 0)
        assert is_main_process()
        state = quiet(epochs=1, strategy="ddp").fit(tiny_train)
        assert (state.world_size, state.global_step) == (1, 2)
        assert dist.is_initialized()  # the caller's group: not destroyed by the fit
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------- weights


def test_reading_weights_that_are_not_there_or_do_not_fit(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"^weights file .*missing\.safetensors not found$"):
        read_safetensors(tmp_path / "missing.safetensors")
    source = LeNet5.from_pretrained("mnist-v1")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    loaded = load_weights(LeNet5(), path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    from_dict = load_weights(LeNet5(), source.state_dict())
    assert torch.equal(
        from_dict.state_dict()["classifier.5.bias"], cast(nn.Linear, source.classifier[5]).bias
    )
    with pytest.raises(WeightsError, match=r"^state dict does not fit LeNet5: "):
        load_weights(LeNet5(num_classes=5), source.state_dict())


def _saved(tmp_path: Path, **metadata: str) -> Path:
    folder = tmp_path / "saved"
    folder.mkdir()
    tensors = {
        k: v.contiguous() for k, v in LeNet5.from_pretrained("mnist-v1").state_dict().items()
    }
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt", **metadata})
    return folder


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"mean": "about 0.13"}, "header field 'mean' must be a number, got 'about 0.13'"),
        ({"classes": "[0, 1"}, "header field 'classes' must be a JSON list of strings"),
        ({"classes": "[0, 1]"}, "header field 'classes' must be a JSON list of strings"),
    ],
)
def test_malformed_header_fields_are_named(
    tmp_path: Path, metadata: dict[str, str], message: str
) -> None:
    folder = _saved(tmp_path, **metadata)
    with pytest.raises(WeightsError, match=f": {message}$"):
        LeNet5.from_pretrained(folder)


def test_an_unreadable_config_json_is_named(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    (folder / "config.json").write_text("{num_classes: 10")
    with pytest.raises(WeightsError, match=r"^cannot read model config .*config.json: "):
        LeNet5.from_pretrained(folder)


def test_the_record_of_local_weights(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    resolved = resolve_pretrained(folder)
    assert resolved.config == {"num_classes": 10, "in_channels": 1}
    record = resolved.weights
    assert record.recipe_mean_accuracy is None  # no seeds recorded for a file of one's own
    assert record.verified_path() == folder / "model.safetensors"
    shutil.rmtree(folder)
    with pytest.raises(WeightsError, match=r"are missing \(.*\); it was moved or deleted$"):
        record.verified_path()
