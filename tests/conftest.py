"""Shared fixtures: where the real data lives, the loaded datasets, small subsets, helpers.

The data folders come from ``LENET5_DATA_DIR`` (MNIST) and ``LENET5_FASHION_DATA_DIR``
(Fashion-MNIST), falling back to ``<repo>/../shared/data/...``. When a folder is missing,
tests that need it are skipped, or fail when ``CI=true`` or ``LENET5_REQUIRE_DATA=1``.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from lenet5.data import ImageSet, load_dataset

if TYPE_CHECKING:
    from built_docs import DocsBuild

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# The model is tiny: one thread per process is the fastest on small batches, and it keeps
# the suite from fighting over cores with other work on the machine.
torch.set_num_threads(1)


def _data_folder(env: str, default: Path) -> tuple[Path, bool]:
    """The data folder that ``env`` names (else ``default``), and whether it holds the four
    IDX files."""
    folder = Path(os.environ.get(env) or default).expanduser()
    if not folder.is_absolute():
        folder = Path.cwd() / folder
    found = all((folder / f"{n}.gz").is_file() or (folder / n).is_file() for n in MNIST_FILES)
    return folder, found


def _data_dir(env: str, default: Path, what: str) -> Path:
    folder, found = _data_folder(env, default)
    if found:
        return folder
    message = (
        f"{what} data not found in {folder}: set {env} to the folder holding the four IDX files "
        f"({', '.join(MNIST_FILES)}, gzipped or not)"
    )
    if os.environ.get("CI") == "true" or os.environ.get("LENET5_REQUIRE_DATA") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder holding the real MNIST files."""
    return _data_dir("LENET5_DATA_DIR", SHARED_DATA / "mnist", "MNIST")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The folder holding the real Fashion-MNIST files."""
    return _data_dir("LENET5_FASHION_DATA_DIR", SHARED_DATA / "fashion-mnist", "Fashion-MNIST")


@pytest.fixture(scope="session")
def mnist_train(mnist_dir: Path) -> ImageSet:
    """The whole MNIST training split (loaded once per session; do not modify)."""
    return load_dataset("mnist", mnist_dir, split="train")


@pytest.fixture(scope="session")
def mnist_test(mnist_dir: Path) -> ImageSet:
    """The whole MNIST test split (loaded once per session; do not modify)."""
    return load_dataset("mnist", mnist_dir, split="test")


@pytest.fixture(scope="session")
def train_2k(mnist_train: ImageSet) -> ImageSet:
    """The first 2,000 training images."""
    return mnist_train.subset(slice(0, 2000))


@pytest.fixture(scope="session")
def train_1k(mnist_train: ImageSet) -> ImageSet:
    """The first 1,000 training images."""
    return mnist_train.subset(slice(0, 1000))


@pytest.fixture(scope="session")
def tiny_train(mnist_train: ImageSet) -> ImageSet:
    """64 training images: two batches of 32, for tests about the loop, not the learning."""
    return mnist_train.subset(slice(0, 64))


@pytest.fixture(scope="session")
def test_1k(mnist_test: ImageSet) -> ImageSet:
    """The first 1,000 test images."""
    return mnist_test.subset(slice(0, 1000))


@pytest.fixture(scope="session")
def tiny_test(mnist_test: ImageSet) -> ImageSet:
    """64 test images."""
    return mnist_test.subset(slice(0, 64))


def write_idx(path: Path, tensor: torch.Tensor, *, gz: bool = True) -> Path:
    """Write a uint8 tensor as an IDX file (magic 0x0801 for 1-D, 0x0803 for 3-D); with
    ``gz`` the file is gzipped and ``.gz`` is appended to the name. Returns the path."""
    header = struct.pack(">HBB", 0, 0x08, tensor.dim())
    header += struct.pack(f">{tensor.dim()}I", *tensor.shape)
    raw = header + tensor.contiguous().numpy().tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw, mtime=0))
    else:
        path.write_bytes(raw)
    return path


@pytest.fixture(scope="session")
def idx_writer() -> Callable[..., Path]:
    """:func:`write_idx`, for tests that build their own data files."""
    return write_idx


@pytest.fixture(scope="session")
def small_mnist_dir(
    tmp_path_factory: pytest.TempPathFactory, mnist_train: ImageSet, mnist_test: ImageSet
) -> Path:
    """A folder of real IDX files holding the first 2,000 training and 1,000 test images.

    The files are well-formed but not the official ones, so loading them warns about the MD5.
    """
    folder = tmp_path_factory.mktemp("small-mnist")
    write_idx(folder / "train-images-idx3-ubyte", mnist_train.images[:2000])
    write_idx(folder / "train-labels-idx1-ubyte", mnist_train.labels[:2000].to(torch.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", mnist_test.images[:1000])
    write_idx(folder / "t10k-labels-idx1-ubyte", mnist_test.labels[:1000].to(torch.uint8))
    return folder


@pytest.fixture(scope="session")
def run_cli(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m lenet5 ARGS`` in a subprocess and return the finished process.

    Keyword arguments: ``pythonpath`` (folders put before the inherited ``PYTHONPATH``),
    ``python_flags`` (e.g. ``["-W", "ignore::UserWarning"]``), ``cwd`` (a scratch folder by
    default), ``timeout`` in seconds. ``LENET5_DATA_DIR`` is removed from the environment,
    so tests pass ``--data-dir`` explicitly.
    """
    scratch = tmp_path_factory.mktemp("cli-cwd")

    def run(
        *args: str | os.PathLike[str],
        pythonpath: Sequence[str | os.PathLike[str]] = (),
        python_flags: Sequence[str] = (),
        cwd: Path | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("LENET5_DATA_DIR", None)
        env["OMP_NUM_THREADS"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        paths = [str(p) for p in pythonpath]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        return subprocess.run(
            [sys.executable, *python_flags, "-m", "lenet5", *map(str, args)],
            cwd=cwd or scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    """Undo the process-wide switches that ``deterministic=True`` turns on."""
    was = torch.are_deterministic_algorithms_enabled()
    cudnn_det, cudnn_bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    torch.use_deterministic_algorithms(was)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, cudnn_bench
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def _shared_tmp(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A folder all workers of the session share (the parent of each worker's base)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session", autouse=True)
def _docs_build_started(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> None:
    """Start the session's docs build in the background as the session starts, when a
    selected test reads it (see tests/built_docs.py); the examples run in it when a
    selected test reads their runs."""
    import built_docs

    needed = [set(getattr(item, "fixturenames", ())) for item in request.session.items]
    if any(names & built_docs.READERS for names in needed):
        examples = any(built_docs.RUNS_FIXTURE in names for names in needed)
        data = {}
        for env, name in (
            ("LENET5_DATA_DIR", "mnist"),
            ("LENET5_FASHION_DATA_DIR", "fashion-mnist"),
        ):
            folder, found = _data_folder(env, SHARED_DATA / name)
            if found:
                data[env] = folder
        tmp = _shared_tmp(tmp_path_factory, worker_id)
        built_docs.start(tmp, run_examples=examples, data=data)


@pytest.fixture(scope="session")
def docs_build(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> DocsBuild:
    """The session's one build of the documentation, once it has ended, failed or not
    (see tests/built_docs.py)."""
    import built_docs

    return built_docs.wait(_shared_tmp(tmp_path_factory, worker_id))


@pytest.fixture(scope="session")
def built_docs(docs_build: DocsBuild) -> Path:
    """The HTML documentation of the session's build, which must have passed (with
    warnings as errors); the failure shows Sphinx's output."""
    return docs_build.check()


@pytest.fixture(scope="session")
def gallery_runs(docs_build: DocsBuild) -> DocsBuild:
    """The session's build, in which the gallery's examples ran (a failed build too: each
    example's test reports its own failure)."""
    assert docs_build.runs is not None, (
        "the docs build ran no examples (LENET5_DOCS_RUN_EXAMPLES=0 in its environment?):\n"
        + docs_build.log
    )
    return docs_build


# ------------------------------------------------- fixtures of tests in several folders


@pytest.fixture(scope="session")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory,
    small_mnist_dir: Path,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``lenet5 train --epochs 1`` on the small data folder (copy it before changing it)."""
    from cli_helpers import NO_MD5_WARNING

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


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[dict[str, tuple[Path, str]]]:
    """Real files of every kind that must be refused, each with the message expected
    (``helpers.hostile_files``)."""
    from helpers import hostile_files

    with hostile_files(tmp_path) as files:
        yield files


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first and the readers of the docs build last (a stable sort); and
    each ``xdist_group`` on one worker again.

    With ``pytest -n N`` the workers take the tests in this order: the long ones start
    while there is work left to run beside them (no worker runs alone at the end), and
    the docs build, started as the session starts, has ended when its readers come.
    """
    from built_docs import READERS

    def key(item: pytest.Item) -> tuple[bool, bool]:
        reads_docs = bool(set(getattr(item, "fixturenames", ())) & READERS)
        return reads_docs, item.get_closest_marker("slow") is None

    items.sort(key=key)
    _keep_xdist_groups(config, items)


def _keep_xdist_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` keep each ``xdist_group`` on one worker under pytest 9.2.

    pytest-xdist (3.8) tells its scheduler an item's group by appending ``@GROUP`` to the
    item's node id, which it writes into ``item._nodeid``; pytest 9.2 keeps node ids in
    ``item._id`` instead, so the suffix is lost and every test of a group is scheduled
    on its own (pytest-dev/pytest-xdist#1386): the browser tests started one Chromium per
    worker. This writes the id xdist meant, where pytest now reads it; with a pytest that
    still reads ``_nodeid`` (or an xdist that is fixed) there is nothing to do.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        meant = item.__dict__.get("_nodeid")
        structured = getattr(item, "_id", None)
        if isinstance(meant, str) and meant != item.nodeid and structured is not None:
            item._id = type(structured).parse(meant)
