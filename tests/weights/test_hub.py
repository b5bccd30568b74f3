"""Hugging Face Hub repo ids (lenet5.weights._hub): the cache layout read offline, a
reachable Hub downloaded from, an unreachable one failing within seconds."""

from __future__ import annotations

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

from lenet5 import LeNet5
from lenet5.data import DATASETS
from lenet5.weights import WeightsError, read_safetensors

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
