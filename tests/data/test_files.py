"""Finding and loading a dataset's files (lenet5.data._files) on the real MNIST and
Fashion-MNIST files: the layouts, the MD5 checks, telling datasets apart, and a message
naming the file for every malformed one."""

from __future__ import annotations

import gzip
import shutil
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cli_helpers import one_line_error, run_main
from conftest import MNIST_FILES, write_idx
from lenet5 import ImageSet, load_dataset, load_mnist
from lenet5.data import DATA_DIR_ENV, DataError, find_data_dir, identify_dataset

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def link_files(src: Path, dst: Path, names: tuple[str, ...] = MNIST_FILES) -> Path:
    """Symlink the real ``.gz`` files of ``src`` into ``dst`` (created)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / f"{name}.gz").symlink_to(src / f"{name}.gz")
    return dst


def assert_same(a: ImageSet, b: ImageSet) -> None:
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)


# ------------------------------------------------------------------ the real files


def test_train_split(mnist_train: ImageSet) -> None:
    assert len(mnist_train) == 60_000
    assert mnist_train.images.shape == (60_000, 28, 28)
    assert mnist_train.images.dtype == torch.uint8
    assert mnist_train.labels.shape == (60_000,)
    assert mnist_train.labels.dtype == torch.int64
    assert mnist_train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist_train.class_counts().tolist() == TRAIN_COUNTS
    assert mnist_train.classes == tuple(str(d) for d in range(10))
    assert mnist_train.name == "mnist/train"
    assert mnist_train.device == torch.device("cpu")


def test_test_split(mnist_test: ImageSet) -> None:
    assert len(mnist_test) == 10_000
    assert mnist_test.images.shape == (10_000, 28, 28)
    assert mnist_test.images.dtype == torch.uint8
    assert mnist_test.class_counts().tolist() == TEST_COUNTS


def test_mean_training_pixel(mnist_train: ImageSet) -> None:
    mean = mnist_train.images.double().mean().item()
    assert mean == pytest.approx(33.318, abs=0.01)
    assert mnist_train.images.max().item() == 255
    assert mnist_train.images.min().item() == 0


def test_fashion_mnist_loads(fashion_dir: Path) -> None:
    train = load_dataset("fashion-mnist", fashion_dir, split="train")
    test = load_dataset("fashion-mnist", fashion_dir, split="test")
    assert len(train) == 60_000
    assert len(test) == 10_000
    assert train.images.shape[1:] == (28, 28)
    assert len(train.classes) == 10
    assert train.classes[0] == "T-shirt/top"
    assert train.class_counts().tolist() == [6000] * 10
    assert test.class_counts().tolist() == [1000] * 10
    assert train.mean == pytest.approx(train.images.double().mean().item() / 255, abs=1e-3)


def test_unknown_dataset_name(mnist_dir: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'kmnist'.*fashion-mnist"):
        load_dataset("kmnist", mnist_dir)


def test_bad_split_name(mnist_dir: Path) -> None:
    with pytest.raises(DataError, match="split"):
        load_dataset("mnist", mnist_dir, split="validation")  # type: ignore[arg-type]


# --------------------------------------------------------------- where files are found


def test_torchvision_layout(tmp_path: Path, mnist_dir: Path, mnist_test: ImageSet) -> None:
    raw = link_files(mnist_dir, tmp_path / "MNIST" / "raw")
    assert find_data_dir(tmp_path) == raw
    assert_same(load_mnist(tmp_path, split="test"), mnist_test)


def test_torchvision_layout_fashion(tmp_path: Path, fashion_dir: Path) -> None:
    raw = link_files(fashion_dir, tmp_path / "FashionMNIST" / "raw")
    assert find_data_dir(tmp_path, "fashion-mnist") == raw
    assert len(load_dataset("fashion-mnist", tmp_path, split="test")) == 10_000


def test_decompressed_files(tmp_path: Path, mnist_dir: Path, mnist_test: ImageSet) -> None:
    for name in MNIST_FILES[2:]:  # the test split, decompressed
        with gzip.open(mnist_dir / f"{name}.gz", "rb") as src, (tmp_path / name).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    link_files(mnist_dir, tmp_path, MNIST_FILES[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the decompressed official files verify
        loaded = load_mnist(tmp_path, split="test")
    assert_same(loaded, mnist_test)


def test_env_var_is_used_without_root(
    monkeypatch: pytest.MonkeyPatch, mnist_dir: Path, mnist_test: ImageSet
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_dir))
    assert find_data_dir() == mnist_dir
    assert_same(load_mnist(split="test"), mnist_test)


def test_no_root_and_no_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=DATA_DIR_ENV):
        load_mnist()


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as excinfo:
        load_mnist(missing)
    assert str(missing) in str(excinfo.value)


def test_folder_without_the_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("not MNIST")
    with pytest.raises(DataError, match="does not hold the mnist files") as excinfo:
        load_mnist(tmp_path)
    message = str(excinfo.value)
    assert str(tmp_path) in message
    assert "train-images-idx3-ubyte" in message
    assert "MNIST/raw" in message


def test_folder_with_only_some_files(tmp_path: Path, mnist_dir: Path) -> None:
    link_files(mnist_dir, tmp_path, MNIST_FILES[:3])
    with pytest.raises(DataError, match="does not hold"):
        load_mnist(tmp_path, split="train")


# ------------------------------------------------------------------ malformed files


def folder_with(tmp_path: Path, mnist_dir: Path, replaced: str, content: bytes) -> Path:
    """A data folder with the real files except ``replaced``, which holds ``content``."""
    folder = tmp_path / "data"
    link_files(
        mnist_dir, folder, tuple(n for n in MNIST_FILES if n != replaced.removesuffix(".gz"))
    )
    target = folder / replaced
    assert not target.is_symlink()  # never write through a link into the real data
    target.write_bytes(content)
    return folder


def test_truncated_gzip(tmp_path: Path, mnist_dir: Path) -> None:
    folder = tmp_path / "data"
    link_files(mnist_dir, folder, MNIST_FILES[:2] + MNIST_FILES[3:])
    real = (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()
    bad = folder / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(real[: len(real) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as excinfo:
        load_mnist(folder, split="test")
    assert str(bad) in str(excinfo.value)


def test_not_gzip_at_all(tmp_path: Path, mnist_dir: Path) -> None:
    folder = tmp_path / "data"
    link_files(mnist_dir, folder, MNIST_FILES[1:])
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_text("<html>404 not found</html>")
    with pytest.raises(DataError, match="corrupt") as excinfo:
        load_mnist(folder, split="train")
    assert str(bad) in str(excinfo.value)


def test_wrong_magic_number(tmp_path: Path, mnist_dir: Path) -> None:
    labels = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    folder = folder_with(tmp_path, mnist_dir, "t10k-labels-idx1-ubyte", b"\x12\x34" + labels[2:])
    with pytest.raises(DataError, match="bad magic number 0x12340801") as excinfo:
        load_mnist(folder, split="test")
    assert "t10k-labels-idx1-ubyte" in str(excinfo.value)


def test_count_larger_than_payload(tmp_path: Path, mnist_dir: Path) -> None:
    labels = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    header = struct.pack(">II", 0x00000801, 10_001)  # one more label than the file holds
    folder = folder_with(tmp_path, mnist_dir, "t10k-labels-idx1-ubyte", header + labels[8:])
    with pytest.raises(DataError, match="10,001 values but the file holds 10,000") as excinfo:
        load_mnist(folder, split="test")
    assert "t10k-labels-idx1-ubyte" in str(excinfo.value)


def test_image_and_label_counts_disagree(
    tmp_path: Path, mnist_dir: Path, mnist_test: ImageSet, idx_writer: Callable[..., Path]
) -> None:
    folder = tmp_path / "data"
    link_files(mnist_dir, folder, MNIST_FILES[:3])
    idx_writer(folder / "t10k-labels-idx1-ubyte", mnist_test.labels[:500].to(torch.uint8))
    with pytest.raises(DataError, match="10,000 images but 500 labels"):
        load_dataset("mnist", folder, split="test", verify=False)


def test_swapped_files(
    tmp_path: Path, mnist_test: ImageSet, idx_writer: Callable[..., Path]
) -> None:
    labels = mnist_test.labels[:50].to(torch.uint8)
    idx_writer(tmp_path / "t10k-images-idx3-ubyte", labels)
    idx_writer(tmp_path / "t10k-labels-idx1-ubyte", mnist_test.images[:50])
    idx_writer(tmp_path / "train-images-idx3-ubyte", mnist_test.images[:50])
    idx_writer(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match="swapped"):
        load_dataset("mnist", tmp_path, split="test", verify=False)


def test_label_out_of_range(
    tmp_path: Path, mnist_test: ImageSet, idx_writer: Callable[..., Path]
) -> None:
    labels = mnist_test.labels[:50].to(torch.uint8).clone()
    labels[7] = 10
    idx_writer(tmp_path / "t10k-images-idx3-ubyte", mnist_test.images[:50])
    idx_writer(tmp_path / "t10k-labels-idx1-ubyte", labels)
    idx_writer(tmp_path / "train-images-idx3-ubyte", mnist_test.images[:50])
    idx_writer(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match="label 10 out of range"):
        load_dataset("mnist", tmp_path, split="test", verify=False)


def test_md5_mismatch_warns_but_loads(small_mnist_dir: Path, mnist_train: ImageSet) -> None:
    with pytest.warns(UserWarning, match="MD5") as record:
        train = load_mnist(small_mnist_dir, split="train")
    messages = " ".join(str(w.message) for w in record)
    assert "train-images-idx3-ubyte" in messages
    assert "train-labels-idx1-ubyte" in messages
    assert len(train) == 2000
    assert torch.equal(train.images, mnist_train.images[:2000])
    assert torch.equal(train.labels, mnist_train.labels[:2000])


def test_verify_false_skips_the_md5(small_mnist_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = load_dataset("mnist", small_mnist_dir, split="test", verify=False)
    assert len(test) == 1000


# ------------------------------------------------------------- hostile or wrong files


def test_bit_flipped_gzip_names_the_file(tmp_path: Path, mnist_dir: Path) -> None:
    data = bytearray((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    folder = folder_with(tmp_path, mnist_dir, "t10k-labels-idx1-ubyte.gz", bytes(data))
    with pytest.raises(DataError, match="cannot decompress or read") as excinfo:
        load_mnist(folder, split="test")
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in str(excinfo.value)


def test_images_of_another_size_are_refused_naming_the_shape(
    tmp_path: Path, mnist_dir: Path, idx_writer: Callable[..., Path]
) -> None:
    folder = tmp_path / "data"
    link_files(mnist_dir, folder, MNIST_FILES[:2] + MNIST_FILES[3:])
    idx_writer(folder / "t10k-images-idx3-ubyte", torch.zeros(10_000, 32, 32, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"images of 32x32 pixels \(shape 10000x32x32\)"):
        load_mnist(folder, split="test")


def test_an_empty_split_is_refused(tmp_path: Path, idx_writer: Callable[..., Path]) -> None:
    for name in MNIST_FILES:
        shape = (0,) if "labels" in name else (0, 28, 28)
        idx_writer(tmp_path / name, torch.zeros(shape, dtype=torch.uint8))
    with pytest.raises(DataError, match="holds no images"):
        load_dataset("mnist", tmp_path, split="test", verify=False)


def test_an_empty_file_is_refused(tmp_path: Path, mnist_dir: Path) -> None:
    folder = folder_with(tmp_path, mnist_dir, "t10k-labels-idx1-ubyte", b"")
    with pytest.raises(DataError, match="only 0 bytes, too short for an IDX header"):
        load_mnist(folder, split="test")


def test_fashion_files_in_an_mnist_folder_are_named_and_refused(fashion_dir: Path) -> None:
    with pytest.raises(DataError, match="is a fashion-mnist file") as excinfo:
        load_dataset("mnist", fashion_dir, split="test")
    assert "--dataset fashion-mnist" in str(excinfo.value)
    assert len(load_dataset("fashion-mnist", fashion_dir, split="test")) == 10_000


def test_mnist_files_asked_for_as_fashion_are_refused(mnist_dir: Path) -> None:
    with pytest.raises(DataError, match="is a mnist file"):
        load_dataset("fashion-mnist", mnist_dir, split="test")


def test_identify_dataset_by_content(
    tmp_path: Path, mnist_dir: Path, fashion_dir: Path, small_mnist_dir: Path
) -> None:
    assert identify_dataset(mnist_dir) == "mnist"
    assert identify_dataset(fashion_dir) == "fashion-mnist"
    assert identify_dataset(link_files(mnist_dir, tmp_path / "MNIST" / "raw").parents[1]) == (
        "mnist"
    )
    assert identify_dataset(small_mnist_dir) is None
    assert identify_dataset(tmp_path / "nothing") is None


# ---------------------------------------------------------- more files that cannot be used


def test_download_needs_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=r"^download=True needs a folder: pass root or set "):
        load_dataset("mnist", download=True)


def test_identify_dataset_passes_over_a_corrupt_label_file(tmp_path: Path, mnist_dir: Path) -> None:
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01 not really")
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", tmp_path)
    assert identify_dataset(tmp_path) == "mnist"


def test_an_empty_idx_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mnist_dir: Path
) -> None:
    for name in MNIST_FILES:
        shape = (0,) if "labels" in name else (0, 28, 28)
        write_idx(tmp_path / name, torch.zeros(shape, dtype=torch.uint8))
    assert run_main("evaluate", "--data-dir", tmp_path, "--weights", "mnist-v1") == 1
    line = one_line_error(capsys.readouterr().err, "evaluate")
    assert f"{tmp_path / 't10k-images-idx3-ubyte.gz'}: holds no images" in line
