"""Pretrained weights: the registry, the bundled files, from_pretrained / save_pretrained,
the Hugging Face cache layout, torch.hub, and the safety checks."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lenet5
from lenet5 import LeNet5
from lenet5.data import DATASETS, ImageSet
from lenet5.training import evaluate
from lenet5.weights import REGISTRY, Weights, WeightsError, get_weights, read_safetensors

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir_for(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """The real data folder of a dataset by name (fails in CI, skips elsewhere if missing)."""
    fixtures = {"mnist": "mnist_dir", "fashion-mnist": "fashion_dir"}

    def get(dataset: str) -> Path:
        folder: Path = request.getfixturevalue(fixtures[dataset])
        return folder

    return get


def test_registry_has_v1_and_default() -> None:
    assert "mnist-v1" in REGISTRY
    assert get_weights("DEFAULT") is REGISTRY[lenet5.weights.DEFAULT]
    with pytest.raises(WeightsError, match="available"):
        get_weights("nope")


def test_unknown_names_get_a_hint() -> None:
    with pytest.raises(WeightsError, match=r"did you mean 'mnist-v1'\?"):
        get_weights("mnist-v11")
    with pytest.raises(WeightsError, match=r"not a weights name \(did you mean 'DEFAULT'\?\)"):
        LeNet5.from_pretrained("DEFALT")


REQUIRED_META = {
    "classes",
    "dataset",
    "mean",
    "std",
    "num_params",
    "file_size",
    "test_accuracy",
    "recipe",
    "seed_accuracies",
    "corruption_accuracy",
    "torch_version",
    "notes",
    "in_channels",
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_meta_holds_the_facts_and_the_attributes_read_it(name: str) -> None:
    entry = REGISTRY[name]
    assert set(entry.meta) >= REQUIRED_META
    meta = entry.meta
    assert (entry.dataset, entry.mean, entry.std) == (meta["dataset"], meta["mean"], meta["std"])
    assert (entry.classes, entry.num_classes) == (meta["classes"], len(meta["classes"]))
    assert (entry.file_size, entry.num_params) == (meta["file_size"], meta["num_params"])
    assert entry.test_accuracy == meta["test_accuracy"]
    assert entry.recipe == meta["recipe"]
    assert entry.seed_accuracies == meta["seed_accuracies"]
    assert entry.corruption_accuracy == meta["corruption_accuracy"]
    assert entry.config() == {"num_classes": len(meta["classes"]), "in_channels": 1}
    assert entry.path.stat().st_size == meta["file_size"]
    info = DATASETS[meta["dataset"]]
    assert (meta["mean"], meta["std"], meta["classes"]) == (info.mean, info.std, info.classes)
    transform = entry.transforms()
    assert (transform.mean, transform.std) == (entry.mean, entry.std)


@pytest.mark.parametrize("name", ["DEFAULT", "mnist-v1", "fashion-v1"])
def test_from_pretrained_builds_from_the_record_and_keeps_it(name: str) -> None:
    model = LeNet5.from_pretrained(name)
    assert model.weights is get_weights(name)
    assert model.num_classes == len(model.weights.classes)
    assert model.in_channels == model.weights.in_channels


def test_a_saved_folder_gets_a_record_from_its_header(tmp_path: Path) -> None:
    fashion = DATASETS["fashion-mnist"]
    header = {
        "dataset": "fashion-mnist",
        "test_accuracy": "87.50",
        "mean": "0.25",
        "classes": json.dumps([f"c{i}" for i in range(10)]),
    }
    folder = LeNet5().save_pretrained(tmp_path / "run", metadata=header)
    record = LeNet5.from_pretrained(folder).weights
    assert record is not None
    assert record.name == str(folder)
    assert record.sha256 == ""  # not bundled: nothing to check against
    assert record.path == (folder / "model.safetensors").absolute()
    assert record.verified_path() == record.path
    assert (record.dataset, record.test_accuracy) == ("fashion-mnist", 87.5)
    assert record.mean == 0.25  # from the header ...
    assert record.std == fashion.std  # ... and, where it says nothing, the dataset's facts
    assert record.classes == tuple(f"c{i}" for i in range(10))
    assert record.num_params == 44_426
    assert record.file_size == (folder / "model.safetensors").stat().st_size
    assert set(record.meta) >= REQUIRED_META
    # A bare file without header fields: MNIST's facts.
    bare = tmp_path / "bare.safetensors"
    save_file(LeNet5().state_dict(), str(bare))
    plain = LeNet5.from_pretrained(bare).weights
    assert plain is not None
    info = DATASETS["mnist"]
    assert (plain.dataset, plain.mean, plain.std, plain.classes) == (
        "mnist",
        info.mean,
        info.std,
        info.classes,
    )
    assert plain.test_accuracy is None


def test_oversized_config_is_refused_before_any_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[int, str]] = []
    init = LeNet5.__init__

    def spy(self: LeNet5, num_classes: int = 10, in_channels: int = 1) -> None:
        built.append((num_classes, torch.empty(0).device.type))  # the device it is built on
        init(self, num_classes, in_channels)

    folder = LeNet5().save_pretrained(tmp_path / "huge")
    (folder / "config.json").write_text(json.dumps({"num_classes": 90_000}))
    state = LeNet5().state_dict()
    monkeypatch.setattr(LeNet5, "__init__", spy)
    with pytest.raises(WeightsError) as info:
        LeNet5.from_pretrained(folder)
    message = str(info.value)
    assert str(folder / "config.json") in message
    assert "num_classes=90000" in message
    assert "classifier.5.weight" in message
    assert built == []
    # Without the tensor that contradicts it, strict loading names what is missing, and the
    # only model built is a skeleton on the meta device, which allocates nothing.
    tensors = {k: v for k, v in state.items() if not k.startswith("classifier.5")}
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(WeightsError, match=r"missing: classifier\.5\.bias, classifier\.5\.weight"):
        LeNet5.from_pretrained(folder)
    assert built == [(90_000, "meta")]
    # Beyond any LeNet-5, the config is refused as it is read (naming 10**8 classes alone
    # would take minutes and gigabytes).
    (folder / "config.json").write_text(json.dumps({"num_classes": 100_000_000}))
    with pytest.raises(WeightsError, match=r"num_classes=100000000 is more than lenet5 loads"):
        LeNet5.from_pretrained(folder)
    assert built == [(90_000, "meta")]


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"num_classes": 7}, "num_classes=7"),
        ({"in_channels": 3}, "in_channels=3"),
        ({"num_classes": 0}, "positive integer"),
        ({"num_classes": "10"}, "positive integer"),
        ([10, 1], "JSON object"),
    ],
    ids=str,
)
def test_config_json_must_agree_with_the_tensors(
    tmp_path: Path, config: object, needle: str
) -> None:
    folder = LeNet5().save_pretrained(tmp_path)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=needle) as info:
        LeNet5.from_pretrained(folder)
    assert str(folder / "config.json") in str(info.value)
    assert "\n" not in str(info.value)


def test_non_floating_tensors_are_refused(tmp_path: Path) -> None:
    state = {k: v.clone() for k, v in LeNet5().state_dict().items()}
    state["features.0.weight"] = torch.ones(6, 1, 5, 5, dtype=torch.int32)
    state["classifier.5.bias"] = torch.zeros(10, dtype=torch.bool)
    path = tmp_path / "ints.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError) as info:
        LeNet5.from_pretrained(path)
    message = str(info.value)
    assert message.startswith(f"{path} does not fit LeNet5: ")
    assert "not floating point" in message
    assert "features.0.weight (torch.int32)" in message
    assert "classifier.5.bias (torch.bool)" in message
    # The same tensors in a folder with its config.json: the folder is named.
    folder = tmp_path / "ints"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"num_classes": 10, "in_channels": 1}))
    with pytest.raises(WeightsError, match="not floating point") as info:
        LeNet5.from_pretrained(folder)
    assert str(info.value).startswith(f"{folder} does not fit LeNet5: ")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_schema_meta_matches_file_and_model(name: str) -> None:
    """Every metadata field agrees with the real file and model (cf. torchvision)."""
    entry = REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(Weights)}
    assert all(getattr(entry, f) not in (None, "") for f in fields - {"notes"})
    data = entry.path.read_bytes()
    assert len(data) == entry.file_size
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    _tensors, header = read_safetensors(entry.path)
    assert {k: header[k] for k in entry.metadata()} == entry.metadata()
    model = LeNet5.from_pretrained(name)
    assert sum(p.numel() for p in model.parameters()) == entry.num_params
    assert (model.num_classes, model.in_channels) == (entry.num_classes, entry.in_channels)
    assert entry.dataset in DATASETS
    info = DATASETS[entry.dataset]
    assert (entry.mean, entry.std, entry.classes) == (info.mean, info.std, info.classes)
    assert entry.recipe.startswith("lenet5 train ")
    assert "--seed" in entry.recipe
    assert entry.torch_version[0].isdigit()
    assert 0 < entry.test_accuracy <= 100


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_recorded_accuracy_is_measured(name: str, data_dir_for: Callable[[str], Path]) -> None:
    entry = REGISTRY[name]
    test = lenet5.load_dataset(entry.dataset, data_dir_for(entry.dataset), split="test")
    result = evaluate(LeNet5.from_pretrained(name), test)
    assert round(result.accuracy, 2) == entry.test_accuracy


def test_v1_reaches_the_reference(mnist_test: ImageSet) -> None:
    assert REGISTRY["mnist-v1"].test_accuracy >= 98.85
    assert evaluate(LeNet5.from_pretrained("mnist-v1"), mnist_test).accuracy >= 98.85


def test_save_pretrained_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = LeNet5(num_classes=7, in_channels=3)
    folder = model.save_pretrained(tmp_path / "saved model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert json.loads((folder / "config.json").read_text()) == {"num_classes": 7, "in_channels": 3}
    loaded = LeNet5.from_pretrained(folder)
    assert (loaded.num_classes, loaded.in_channels) == (7, 3)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    x = torch.randn(4, 3, 28, 28)
    model.eval()
    assert torch.equal(model(x), loaded(x))
    # A bare .safetensors file loads too; its shapes give the constructor arguments.
    bare = tmp_path / "bare.safetensors"
    shutil.copy(folder / "model.safetensors", bare)
    assert LeNet5.from_pretrained(bare).num_classes == 7


def test_refuses_pickle_and_unknown_sources(tmp_path: Path) -> None:
    pt = tmp_path / "weights.pt"
    torch.save(LeNet5().state_dict(), pt)
    with pytest.raises(WeightsError, match=r"only \.safetensors"):
        LeNet5.from_pretrained(pt)
    with pytest.raises(WeightsError, match="not a weights name"):
        LeNet5.from_pretrained(str(tmp_path / "missing-folder" / "x"))
    with pytest.raises(WeightsError, match=r"holds no model\.safetensors"):
        LeNet5.from_pretrained(tmp_path)


def test_a_special_file_as_weights_is_refused_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "org" / "weights"  # also of the form of a Hub repo id
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            LeNet5.from_pretrained(fifo)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the reader go
        pytest.fail("from_pretrained opened a FIFO and waited for a writer", pytrace=False)
    (error,) = outcome
    assert isinstance(error, WeightsError)
    assert str(error) == f"{fifo} is neither a folder nor a regular file; give weights files"


def test_missing_extra_and_misshaped_tensors_are_named(tmp_path: Path) -> None:
    state = {k: v.clone() for k, v in LeNet5().state_dict().items()}
    del state["classifier.3.bias"]
    state["features.9.weight"] = torch.zeros(3)
    state["classifier.1.weight"] = torch.zeros(120, 255)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError) as info:
        LeNet5.from_pretrained(path)
    message = str(info.value)
    assert "missing: classifier.3.bias" in message
    assert "unexpected: features.9.weight" in message
    assert "classifier.1.weight (file (120, 255), model (120, 256))" in message


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    data = REGISTRY["mnist-v1"].path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        LeNet5.from_pretrained(tmp_path)


def test_tampered_bundled_file_fails_its_checksum(tmp_path: Path) -> None:
    entry = REGISTRY["mnist-v1"]
    copy = tmp_path / entry.file
    data = bytearray(entry.path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last weight
    copy.write_bytes(bytes(data))
    # An absolute file name takes the place of the package folder.
    tampered = dataclasses.replace(entry, name="tampered", file=str(copy))
    with pytest.raises(WeightsError, match="fail their SHA-256 check") as info:
        tampered.verified_path()
    assert str(copy) in str(info.value)
    copy.write_bytes(bytes(data[:-10]))
    with pytest.raises(WeightsError, match=r"SHA-256 check: the file is 179,238 bytes.*truncated"):
        tampered.verified_path()
    copy.write_bytes(bytes(data) + b"\0" * 10_000_000)  # read only up to the size plus 1
    with pytest.raises(WeightsError, match="SHA-256 check: the file is 10,179,248 bytes"):
        tampered.verified_path()


# ----------------------------------------------------------- Hugging Face cache


def _write_hub_cache(cache: Path, repo_id: str, folder: Path) -> str:
    """Lay ``folder`` out exactly as huggingface_hub's cache does (blobs + snapshot links)."""
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in folder.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    return commit


def test_from_pretrained_reads_the_hub_cache_offline(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = LeNet5()
    saved = model.save_pretrained(tmp_path / "src")
    cache = tmp_path / "hf-cache"
    commit = _write_hub_cache(cache, "some-org/lenet5-test", saved)
    out = tmp_path / "out.safetensors"
    script = textwrap.dedent(
        f"""
        import torch
        from safetensors.torch import save_file
        from lenet5 import LeNet5
        m = LeNet5.from_pretrained("some-org/lenet5-test")
        m2 = LeNet5.from_pretrained("some-org/lenet5-test", revision="{commit}")
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                     m2.state_dict().values()))
        save_file(m.state_dict(), {str(out)!r})
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    loaded, _ = read_safetensors(out)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded[key])


def test_hub_repo_gets_a_record_and_is_loaded_strictly(tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    good = LeNet5().save_pretrained(tmp_path / "good", metadata={"dataset": "fashion-mnist"})
    _write_hub_cache(cache, "some-org/good", good)
    model = LeNet5.from_pretrained("some-org/good", cache_dir=cache, local_files_only=True)
    assert model.weights is not None
    assert model.weights.name == "hf://some-org/good"
    assert model.weights.classes == DATASETS["fashion-mnist"].classes
    # A repo whose tensors do not fit: every bad one is named, as for a local file.
    state = {k: v.clone() for k, v in LeNet5().state_dict().items()}
    del state["classifier.3.bias"]
    state["features.9.weight"] = torch.zeros(3)
    state["classifier.1.weight"] = torch.zeros(120, 255)
    bad = tmp_path / "bad"
    bad.mkdir()
    save_file(state, str(bad / "model.safetensors"))
    _write_hub_cache(cache, "some-org/bad", bad)
    with pytest.raises(WeightsError) as info:
        LeNet5.from_pretrained("some-org/bad", cache_dir=cache, local_files_only=True)
    message = str(info.value)
    assert message.startswith("hf://some-org/bad does not fit LeNet5")
    assert "missing: classifier.3.bias" in message
    assert "unexpected: features.9.weight" in message
    assert "classifier.1.weight (file (120, 255), model (120, 256))" in message


def test_a_pickled_hub_repo_is_never_unpickled(tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save(LeNet5().state_dict(), pickled / "pytorch_model.bin")
    _write_hub_cache(cache, "some-org/pickled", pickled)
    with pytest.raises(WeightsError, match=r"model\.safetensors"):
        LeNet5.from_pretrained("some-org/pickled", cache_dir=cache, local_files_only=True)
    with pytest.raises(WeightsError, match=r"only \.safetensors"):
        LeNet5._load_as_pickle(LeNet5(), str(pickled / "pytorch_model.bin"), "cpu", True)


def test_hub_repo_missing_from_cache_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not in the Hugging Face cache") as info:
        LeNet5.from_pretrained("some-org/absent", cache_dir=tmp_path, local_files_only=True)
    assert str(info.value) == (
        "'some-org/absent' is no local path (no such file or folder: "
        f"{Path('some-org/absent').absolute()}), so it was tried as a Hugging Face Hub repo id, "
        "but downloading is off (local_files_only=True) and its model.safetensors is not in "
        f"the Hugging Face cache ({tmp_path}); check the path, or download the repo once "
        "without local_files_only=True"
    )


# A script that loads weights in a fresh process (huggingface_hub reads HF_ENDPOINT and
# HF_HUB_OFFLINE when imported). The load runs in a thread; if it is still running after
# HANG seconds (far more than a refusal takes, less than huggingface_hub's 23 s of pauses
# between retries) the script says so: a loud failure, not a wall-clock assertion.
_LOAD_SCRIPT = """
import json, os, sys, threading
import torch
from lenet5 import LeNet5
name, hang, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
result = {}
def load():
    try:
        model = LeNet5.from_pretrained(name)
        torch.save({k: v for k, v in model.state_dict().items()}, out)
        result["loaded"] = model.weights.name
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
thread = threading.Thread(target=load, daemon=True)
thread.start()
thread.join(hang)
print(json.dumps(result if not thread.is_alive() else {"hung": hang}), flush=True)
os._exit(0)
"""


def _load_in_fresh_process(name: str, tmp_path: Path, **env: str) -> dict[str, str]:
    """``LeNet5.from_pretrained(name)`` in a new process with ``env``; its outcome."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(HF_HUB_CACHE=str(tmp_path / "hf-cache"), HF_HOME=str(tmp_path / "hf"), **env)
    out = tmp_path / "state.pt"
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, name, "15", str(out)],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, str] = json.loads(result.stdout)
    assert "hung" not in outcome, f"still loading after 15 s: {result.stderr[-2000:]}"
    assert "Retrying in" not in result.stderr  # no backoff between retries happened
    return outcome


@pytest.fixture
def refusing_endpoint() -> Iterator[str]:
    """A local address where connections are refused (a bound socket that never listens)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A local server that accepts connections and never answers (a black-holed Hub)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("endpoint", ["refusing_endpoint", "silent_endpoint"])
def test_a_mistyped_path_that_looks_like_a_repo_id_fails_within_seconds(
    tmp_path: Path, endpoint: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(endpoint)
    outcome = _load_in_fresh_process("runs/quik", tmp_path, HF_ENDPOINT=url)
    error = outcome["error"]
    assert error.startswith(
        "WeightsError: 'runs/quik' is no local path (no such file or folder: "
        f"{tmp_path / 'runs' / 'quik'}), so it was tried as a Hugging Face Hub repo id, but "
        f"the Hub at {url} cannot be reached ("
    )
    cache = f"and its model.safetensors is not in the Hugging Face cache ({tmp_path / 'hf-cache'})"
    if endpoint == "refusing_endpoint":
        assert "cannot be reached (ConnectError: " in error
        assert error.endswith(
            f"{cache}; check the path, or download the repo once online (a cached repo loads "
            "with HF_HUB_OFFLINE=1)"
        )
    else:
        assert "cannot be reached (ReadTimeout: " in error
        assert error.endswith(
            f"{cache}; check the path, or allow a slow Hub more time with HF_HUB_ETAG_TIMEOUT=30"
        )
    assert "\n" not in error
    offline = _load_in_fresh_process("runs/quik", tmp_path, HF_HUB_OFFLINE="1")
    assert "but downloading is off (HF_HUB_OFFLINE=1) and its model.safetensors" in offline["error"]


def test_an_unreachable_hub_falls_back_to_the_cache_at_once(
    tmp_path: Path, refusing_endpoint: str
) -> None:
    saved = LeNet5.from_pretrained("mnist-v1").save_pretrained(tmp_path / "saved")
    _write_hub_cache(tmp_path / "hf-cache", "some-org/cached", saved)
    outcome = _load_in_fresh_process("some-org/cached", tmp_path, HF_ENDPOINT=refusing_endpoint)
    assert outcome == {"loaded": "hf://some-org/cached"}


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """Serves the files of ``folder`` as huggingface_hub expects from the Hub's resolve URL:
    ``/{org}/{name}/resolve/{revision}/{file}`` with a commit, an ETag and a size."""

    folder: Path
    requests: list[str]

    def _file(self) -> Path | None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 5 and parts[2] == "resolve" and (self.folder / parts[4]).is_file():
            return self.folder / parts[4]
        return None

    def _answer(self) -> bytes:
        self.requests.append(f"{self.command} {self.path}")
        file = self._file()
        data = file.read_bytes() if file else b""
        self.send_response(200 if file else 404)
        self.send_header("X-Repo-Commit", "c0ffee" * 6 + "c0ff")
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        if file is None:
            self.send_header("X-Error-Code", "EntryNotFound")
        self.end_headers()
        return data

    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self.wfile.write(self._answer())

    def log_message(self, *args: object) -> None:
        pass


def test_a_reachable_hub_is_downloaded_from_as_before(tmp_path: Path) -> None:
    """The first, quick request changes nothing for a Hub that answers: the files are
    downloaded by hf_hub_download into the cache and loaded."""
    saved = LeNet5.from_pretrained("mnist-v2").save_pretrained(tmp_path / "served")
    handler = type("Hub", (_FakeHub,), {"folder": saved, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        outcome = _load_in_fresh_process("some-org/served", tmp_path, HF_ENDPOINT=url)
    finally:
        server.shutdown()
        server.server_close()
    assert outcome == {"loaded": "hf://some-org/served"}
    weights = "/some-org/served/resolve/main/model.safetensors"
    assert [r for r in handler.requests if "model.safetensors" in r] == [
        f"HEAD {weights}",  # lenet5's probe
        f"HEAD {weights}",  # hf_hub_download's
        f"GET {weights}",
    ]
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)
    for key, value in LeNet5.from_pretrained("mnist-v2").state_dict().items():
        assert torch.equal(loaded[key], value)
    cached = list((tmp_path / "hf-cache").glob("models--some-org--served/snapshots/*/*"))
    assert sorted(p.name for p in cached) == ["config.json", "model.safetensors"]


def test_the_cli_says_why_a_repo_id_failed_in_one_line(
    tmp_path: Path,
    refusing_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", refusing_endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    picture = tmp_path / "one.png"
    picture.write_bytes(b"")  # never read: the weights come first
    out = run_cli("predict", picture, "--weights", "runs/quik", cwd=tmp_path, timeout=60)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(
        "lenet5 predict: error: 'runs/quik' is no local path (no such file or folder: "
    )
    assert "so it was tried as a Hugging Face Hub repo id, but the Hub at " in line


# ------------------------------------------------------------------- torch.hub


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees torch & co. but where lenet5 is NOT importable."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    deps = Path(torch.__file__).resolve().parent.parent
    (site / "deps.pth").write_text(str(deps) + "\n")
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('lenet5'))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
    )
    assert probe.stdout.strip() == "None", probe.stdout
    return python


def test_torch_hub_load_local_without_the_package(
    bare_python: Path, tmp_path: Path, mnist_dir: Path
) -> None:
    repo = tmp_path / "lenet5 repo"  # a plain copy, as torch.hub would download it
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "hubconf.py", repo / "hubconf.py")
    # A user module named lenet5 must neither break the hub load nor be replaced by it.
    user = tmp_path / "user"
    user.mkdir()
    (user / "lenet5.py").write_text("MINE = True\n")
    script = textwrap.dedent(
        f"""
        import sys, torch
        import lenet5 as users_module
        model = torch.hub.load({str(repo)!r}, "lenet5", source="local", pretrained=True)
        assert sys.modules["lenet5"] is users_module and users_module.MINE
        import importlib.util
        spec = importlib.util.spec_from_file_location("hubconf", {str(repo / "hubconf.py")!r})
        hubconf = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(hubconf)
        assert "pretrained" in hubconf.lenet5.__doc__  # what torch.hub.help shows
        public = [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and n[0] != "_"]
        assert public == ["lenet5"], public  # what torch.hub.list shows
        untrained = torch.hub.load({str(repo)!r}, "lenet5", source="local", num_classes=5)
        assert untrained.classifier[5].out_features == 5
        assert untrained.weights is None
        from _lenet5_hub.data import DATASETS, load_dataset, normalize
        from _lenet5_hub.preprocess import to_mnist
        from _lenet5_hub.training import evaluate
        from _lenet5_hub.weights import Weights, get_weights
        record = model.weights
        assert isinstance(record, Weights) and record is get_weights("DEFAULT")
        mnist = DATASETS["mnist"]
        assert (record.mean, record.std, record.classes) == (mnist.mean, mnist.std, mnist.classes)
        fashion = torch.hub.load({str(repo)!r}, "lenet5", source="local", weights="fashion-v1")
        assert fashion.weights.classes == DATASETS["fashion-mnist"].classes
        assert fashion.weights.mean == DATASETS["fashion-mnist"].mean
        digit = torch.zeros(60, 40)
        digit[10:50, 17:23] = 1.0
        x = record.transforms()(digit)
        assert torch.equal(x, normalize(to_mnist(digit)[None], record.mean, record.std)[0])
        assert model(x[None]).argmax().item() == 1
        test = load_dataset("mnist", {str(mnist_dir)!r}, split="test")
        acc = evaluate(model, test).accuracy
        print(f"{{acc:.2f}} {{get_weights('DEFAULT').test_accuracy:.2f}}")
        """
    )
    result = subprocess.run(
        [str(bare_python), "-c", script], cwd=user, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    measured, recorded = result.stdout.split()
    assert measured == recorded


def test_default_has_the_best_recipe_over_five_seeds() -> None:
    mnist = [w for w in REGISTRY.values() if w.dataset == "mnist" and w.seed_accuracies]
    default = get_weights("DEFAULT")
    assert len(default.seed_accuracies) == 5
    assert default.seed_accuracies[0] == default.test_accuracy  # the shipped run is seed 0
    mean = default.recipe_mean_accuracy
    assert mean is not None
    assert mean >= 99.4
    assert mean == max(w.recipe_mean_accuracy or 0.0 for w in mnist)
    assert f"mean {mean:.3f}%" in default.notes
    assert {"mnist-v1", "mnist-v2"} <= set(REGISTRY)  # kept when a better DEFAULT arrived
