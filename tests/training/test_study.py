"""Seed studies (lenet5.training.study, ``lenet5 train --seeds``): real worker processes on
real (small) MNIST folders, stopped by a real signal and resumed."""

from __future__ import annotations

import json
import signal
import statistics
import textwrap
import time
from pathlib import Path

import pytest

from cli_helpers import environment, finish, start
from lenet5.training.study import Study, StudyError, parse_seeds

TINY = ("--epochs", "1", "--batch-size", "500", "--quiet")


def _study(small_mnist_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(small_mnist_dir), "--out", str(out), *extra]


def test_a_study_trains_each_seed_in_its_own_folder_and_summarises(
    tmp_path: Path, small_mnist_dir: Path
) -> None:
    out = tmp_path / "study"
    args = _study(small_mnist_dir, out, "--seeds", "0-2", "--jobs", "2", *TINY)
    code, stdout, stderr = finish(start(args, cwd=tmp_path))
    assert code == 0, stderr
    results = {s: json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in range(3)}
    for seed in range(3):  # each a normal run folder, trained with its seed
        recorded = json.loads((out / f"seed-{seed}" / "train_config.json").read_text())
        assert recorded["seed"] == seed
        assert f"seed {seed} | Final | Test Accuracy:" in stdout
    summary = json.loads((out / "summary.json").read_text())
    accuracies = [results[s]["test_accuracy"] for s in range(3)]
    stats = summary["statistics"]["test_accuracy"]
    assert stats["mean"] == pytest.approx(statistics.fmean(accuracies))
    assert stats["std"] == pytest.approx(statistics.stdev(accuracies))  # the sample std
    assert (stats["min"], stats["max"], stats["n"]) == (min(accuracies), max(accuracies), 3)
    assert len(set(accuracies)) > 1  # the seeds differ
    table = stdout[stdout.index("seed  ") :]
    assert "mean" in table
    assert f"{stats['mean']:.2f}" in table

    # Run again: completed, not repeated (no worker is started: every seed is read).
    before = {s: (out / f"seed-{s}" / "results.json").stat().st_mtime_ns for s in range(3)}
    code, stdout, _ = finish(start(args, cwd=tmp_path))
    assert code == 0
    assert stdout.count("done before; not trained again") == 3
    assert {s: (out / f"seed-{s}" / "results.json").stat().st_mtime_ns for s in range(3)} == before


def test_a_stopped_study_resumes_each_seed(tmp_path: Path, small_mnist_dir: Path) -> None:
    """SIGTERM to the study reaches every worker, which saves; the same command resumes."""
    out = tmp_path / "study"
    args = _study(
        small_mnist_dir, out, "--seeds", "0-1", "--jobs", "2", "--epochs", "15",
        "--batch-size", "64", "--val-every", "1",
    )  # fmt: skip
    study = start(args, cwd=tmp_path)
    deadline = time.monotonic() + 120
    assert study.stdout is not None
    seen: set[str] = set()
    for line in study.stdout:  # both workers are past their first epoch
        if "| Epoch 1 |" in line:
            seen.add(line.split("|")[0])
        if len(seen) == 2 or time.monotonic() > deadline:
            break
    assert len(seen) == 2
    study.send_signal(signal.SIGTERM)
    code, stdout, stderr = finish(study)
    assert code == 143, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["not_done"]) == [0, 1]
    for seed in (0, 1):
        assert list((out / f"seed-{seed}" / "checkpoints").glob("epoch-*"))
        assert not (out / f"seed-{seed}" / "results.json").exists()

    # The same command again: each seed resumes from its checkpoint and finishes.
    code, stdout, stderr = finish(start(args, cwd=tmp_path), timeout=900)
    assert code == 0, stderr
    assert stdout.count("resuming") == 2
    for seed in (0, 1):
        results = json.loads((out / f"seed-{seed}" / "results.json").read_text())
        assert results["epochs_run"] == 15


FAILING_PLUGIN = """
from lenet5 import Callback

class FailOnSeedOne(Callback):
    def on_fit_start(self, state):
        if state.config.seed == 1:
            raise RuntimeError("seed one is broken on purpose")
"""


def test_a_failed_seed_is_reported_and_the_others_finish(
    tmp_path: Path, small_mnist_dir: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fail_plugin.py").write_text(textwrap.dedent(FAILING_PLUGIN))
    info = site / "fail_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fail-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lenet5.callbacks]\nfail_on_seed_one = fail_plugin:FailOnSeedOne\n"
    )
    out = tmp_path / "study"
    args = _study(
        small_mnist_dir, out, "--seeds", "0-2", "--jobs", "2", "--callbacks",
        "fail_on_seed_one", *TINY,
    )  # fmt: skip
    code, stdout, _ = finish(start(args, cwd=tmp_path, env=environment([site])))
    assert code == 1
    assert "seed 1 | FAILED: lenet5 train: " in stdout
    assert "seed one is broken on purpose" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["seeds"]) == ["0", "2"]
    assert "seed one is broken on purpose" in summary["failed"]["1"]
    assert (out / "seed-2" / "results.json").is_file()


def test_the_python_api(tmp_path: Path, small_mnist_dir: Path) -> None:
    import io

    stream = io.StringIO()
    args = ["--data-dir", str(small_mnist_dir), *TINY]
    summary = Study(tmp_path / "s", [3], args, jobs=1, stream=stream).run()
    assert list(summary["seeds"]) == ["3"]
    assert summary["statistics"]["test_accuracy"]["std"] is None  # one seed: no sample std
    assert "seed 3 | done" in stream.getvalue()
    with pytest.raises(StudyError, match="other training arguments"):
        Study(tmp_path / "s", [4], [*args, "--lr", "0.01"], jobs=1, stream=stream).run()


@pytest.mark.parametrize(
    ("spec", "seeds"),
    [("0-4", [0, 1, 2, 3, 4]), ("0,3,7", [0, 3, 7]), ("0-2,9", [0, 1, 2, 9]), ("5", [5])],
)
def test_seed_specs(spec: str, seeds: list[int]) -> None:
    assert parse_seeds(spec) == seeds


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "is not a seed or a range"),
        ("4-0", "is empty"),
        ("0-5000", "more than 1000 seeds"),
        ("1,1", "seed 1 is given twice"),
        ("a-b", "is not a seed or a range"),
        ("-1", "is not a seed or a range"),
    ],
)
def test_bad_seed_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        parse_seeds(spec)


def test_study_arguments_are_checked_before_any_worker(
    tmp_path: Path, small_mnist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_helpers import run_main

    base = ["train", "--data-dir", str(small_mnist_dir)]
    assert run_main(*base, "--seeds", "0-1") == 2  # no --out
    assert run_main(*base, "--seeds", "0-1", "--out", tmp_path / "a", "--seed", "3") == 2
    assert run_main(*base, "--jobs", "2", "--out", tmp_path / "b") == 2  # no --seeds
    assert run_main(*base, "--seeds", "x", "--out", tmp_path / "c") == 2
    assert run_main(*base, "--seeds", "0-1", "--out", tmp_path / "d", "--lr", "-1") == 2
    assert not any((tmp_path / n).exists() for n in "abcd")  # nothing was written
    with pytest.raises(StudyError, match="--seed is set by the study"):
        Study(tmp_path / "e", "0-1", ["--seed", "3"])
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(StudyError, match="without torchrun"):
        Study(tmp_path / "f", "0-1")
