"""Seed studies: one ``lenet5 train`` command run for several seeds, and its summary.

A result in a paper is a mean over seeds. :class:`Study` runs ``lenet5 train`` once per
seed, each in its own worker process and run folder (``<out>/seed-<N>``, a normal run folder
that resumes on its own), ``jobs`` at a time with the machine's cores shared out between
them (``OMP_NUM_THREADS``: on two cores, two one-thread runs train about 1.3x more per hour
than one two-thread run). It prints each seed's progress lines prefixed with its seed, keeps
each worker's output in ``<out>/logs/seed-<N>.log``, and writes ``<out>/summary.json`` and a
table: every seed's final metrics, then their mean, sample standard deviation, minimum and
maximum.

Running the same study again completes it rather than repeating it: a seed whose run folder
holds ``results.json`` is read, not trained; one that was stopped resumes from its newest
checkpoint; the rest start. A stop signal (Ctrl-C, SIGTERM, SIGUSR1) is passed on to every
worker, each saves a checkpoint as ``lenet5 train`` does, and the summary of what finished
is written before the study ends; a failed seed is reported with its error line and the
other seeds go on. ``lenet5 train --seeds 0-4 --jobs 2 ...`` is this class from the command
line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._io import (
    CHECKPOINTS_DIR,
    RESULTS_NAME,
    TRAIN_CONFIG_NAME,
    atomic_write_text,
    dumps_json,
    loads_json,
)
from .distributed import launched_by_torchrun

__all__ = ["STUDY_NAME", "SUMMARY_NAME", "SeedRun", "Study", "StudyError", "parse_seeds"]

#: The file in the study folder that records the command every seed runs.
STUDY_NAME = "study.json"
#: The file in the study folder with every seed's metrics and their statistics.
SUMMARY_NAME = "summary.json"
#: The most seeds one study runs (a typo such as ``0-40000`` is refused, not started).
MAX_SEEDS = 1000
# The final metrics of a run that the summary reports (results.json keys, and the last
# history entry's validation accuracy when the run validated).
_METRICS = ("test_accuracy", "test_loss", "epochs_run")
# Flags of lenet5 train that the study sets for each seed itself.
_OWN_FLAGS = ("--seed", "--out", "--resume", "--seeds", "--jobs")


class StudyError(ValueError):
    """A seed study cannot run as asked (bad seeds, a folder of another study, torchrun)."""


@dataclass
class SeedRun:
    """One seed of a study.

    Attributes:
        seed: The seed.
        folder: Its run folder (``<out>/seed-<seed>``).
        status: ``"done"`` (``results.json`` written), ``"failed"`` (the worker exited with
            an error), ``"stopped"`` (a stop signal ended it; it resumes on the next run)
            or ``"pending"`` (not run).
        results: Its ``results.json`` once done.
        error: The worker's error line when it failed.
    """

    seed: int
    folder: Path
    status: str = "pending"
    results: dict[str, Any] | None = None
    error: str | None = None
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _log: IO[str] | None = field(default=None, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)

    def metrics(self) -> dict[str, float | int]:
        """The final metrics the summary reports (``val_accuracy``: the last validation)."""
        if self.results is None:
            return {}
        out: dict[str, float | int] = {
            k: self.results[k] for k in _METRICS if _is_number(self.results.get(k))
        }
        validated = [h for h in self.results.get("history", []) if "val_accuracy" in h]
        if validated and _is_number(validated[-1]["val_accuracy"]):
            out["val_accuracy"] = float(validated[-1]["val_accuracy"])
        return out


def parse_seeds(spec: str | Iterable[int]) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"``, ``"0-2,9"`` and lists of ints too.

    Raises:
        StudyError: For an empty or malformed spec, a negative, repeated or too large seed,
            or more than :data:`MAX_SEEDS` seeds.
    """
    seeds: list[int] = []
    if isinstance(spec, str):
        for part in spec.split(","):
            low, dash, high = part.strip().partition("-")
            try:
                first, last = int(low), int(high) if dash else int(low)
            except ValueError:
                raise StudyError(
                    f"seeds {spec!r}: {part.strip()!r} is not a seed or a range; use e.g. "
                    "'0-4' or '0,3,7'"
                ) from None
            if last < first:
                raise StudyError(f"seeds {spec!r}: the range {part.strip()} is empty")
            if last - first >= MAX_SEEDS:
                raise StudyError(f"seeds {spec!r}: more than {MAX_SEEDS} seeds")
            seeds.extend(range(first, last + 1))
    else:
        seeds = [int(s) for s in spec]
    if not seeds:
        raise StudyError("a seed study needs at least one seed, e.g. '0-4'")
    if len(seeds) > MAX_SEEDS:
        raise StudyError(f"a seed study runs at most {MAX_SEEDS} seeds, got {len(seeds)}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise StudyError(f"seed {repeated[0]} is given twice")
    if any(s < 0 or s > 2**64 - 1 for s in seeds):
        raise StudyError("seeds must be integers in [0, 2**64-1]")
    return seeds


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity
        return os.cpu_count() or 1


class Study:
    """Run ``lenet5 train TRAIN_ARGS`` for each seed and summarise (see the module docstring).

    Args:
        out: The study folder: ``seed-<N>/`` run folders, ``logs/``, ``study.json`` and
            ``summary.json``.
        seeds: The seeds: a spec such as ``"0-4"`` or ``"0,3,7"``, or integers.
        train_args: The arguments of ``lenet5 train`` every seed shares (``["--recipe",
            "mnist-v3", "--data-dir", "data/mnist"]``), without ``--seed``, ``--out`` and
            ``--resume``, which the study sets.
        jobs: Seeds trained at once (default: the usable cores, at most the seeds to run);
            each worker gets ``cores // jobs`` threads (at least one).
        stream: Where the progress lines and the table go (default: standard output).

    Raises:
        StudyError: For bad seeds or jobs, a train argument the study sets itself, a study
            folder that records another command, or a start under ``torchrun``.

    Example:
        >>> from lenet5.training.study import Study
        >>> study = Study("runs/fast-seeds", "0-4", ["--recipe", "fast"], jobs=2)
        >>> study.seeds
        [0, 1, 2, 3, 4]
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        seeds: str | Iterable[int],
        train_args: Sequence[str] = (),
        *,
        jobs: int | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        if launched_by_torchrun():
            raise StudyError(
                "a seed study starts its own worker processes; run it without torchrun (each "
                "seed can use torchrun on its own: torchrun ... -m lenet5 train --seed N)"
            )
        self.out = Path(out)
        self.seeds = parse_seeds(seeds)
        self.train_args = [str(a) for a in train_args]
        own = [a for a in self.train_args if a.partition("=")[0] in _OWN_FLAGS]
        if own:
            raise StudyError(
                f"{own[0].partition('=')[0]} is set by the study for each seed; leave it out "
                "of the training arguments"
            )
        if jobs is not None and (isinstance(jobs, bool) or not 1 <= jobs <= MAX_SEEDS):
            raise StudyError(f"jobs must be a positive number of processes, got {jobs!r}")
        self.jobs = jobs
        self.stream = stream if stream is not None else sys.stdout
        self.runs = {s: SeedRun(s, self.out / f"seed-{s}") for s in self.seeds}
        self._print_lock = threading.Lock()

    # ------------------------------------------------------------------- running

    def run(self) -> dict[str, Any]:
        """Train every seed not yet done, then write and print the summary.

        Returns:
            The summary (what ``summary.json`` holds).

        Raises:
            KeyboardInterrupt: After a stop signal was passed on to the workers, their
                checkpoints saved and the summary written (run the study again to finish).
        """
        self._check_folder()
        todo = [r for r in self.runs.values() if not self._read_done(r)]
        jobs = min(self.jobs or usable_cores(), max(len(todo), 1))
        threads = max(1, usable_cores() // jobs)
        waiting, running = list(todo), list[SeedRun]()
        try:
            while waiting or running:
                while waiting and len(running) < jobs:
                    running.append(self._start(waiting.pop(0), threads))
                time.sleep(0.2)
                for run in [r for r in running if r._process and r._process.poll() is not None]:
                    running.remove(run)
                    self._finish(run)
        except KeyboardInterrupt as exc:
            self._stop(running, int(getattr(exc, "signum", signal.SIGINT)))
            self._write_summary()
            raise
        summary = self._write_summary()
        self._print_table(summary)
        return summary

    def _check_folder(self) -> None:
        """Record the study's command; refuse a folder that records another one."""
        record_file = self.out / STUDY_NAME
        if record_file.is_file():
            recorded = loads_json(record_file.read_bytes())
            if recorded.get("train_args") != self.train_args:
                raise StudyError(
                    f"{self.out} holds a study of other training arguments "
                    f"({' '.join(recorded.get('train_args', []))}); choose another folder, or "
                    "run that study's command again"
                )
            seeds = sorted({*recorded.get("seeds", []), *self.seeds})
        else:
            seeds = self.seeds
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            record_file, dumps_json({"train_args": self.train_args, "seeds": seeds}, indent=1)
        )

    def _read_done(self, run: SeedRun, *, before: bool = True) -> bool:
        """Whether ``run`` is done (its ``results.json`` read); says so when it was done by
        an earlier run of the study."""
        results = run.folder / RESULTS_NAME
        if not results.is_file():
            return False
        run.results = loads_json(results.read_bytes())
        run.status = "done"
        if before:
            self._say(run.seed, "done before; not trained again")
        return True

    def _start(self, run: SeedRun, threads: int) -> SeedRun:
        """Start the worker of ``run`` (resuming its folder when it holds a checkpoint)."""
        if (run.folder / CHECKPOINTS_DIR).is_dir():
            where = ["--resume", str(run.folder)]
            self._say(run.seed, f"resuming {run.folder}")
        else:
            if (run.folder / TRAIN_CONFIG_NAME).is_file():
                # Stopped before its first checkpoint: nothing of it can be resumed.
                shutil.rmtree(run.folder)
            where = ["--out", str(run.folder)]
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "lenet5", "train", *self.train_args]
        command += ["--seed", str(run.seed), *where]
        logs = self.out / "logs"
        logs.mkdir(exist_ok=True)
        run._log = open(logs / f"seed-{run.seed}.log", "a", encoding="utf-8")  # noqa: SIM115
        run._log.write(f"$ {' '.join(command)}\n")
        run._log.flush()
        # A session of its own: Ctrl-C in the terminal reaches the study, which passes it on
        # once, rather than every worker at the same time as the study.
        run._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=run._log,
            text=True,
            env=env,
            start_new_session=True,
        )
        run._reader = threading.Thread(target=self._relay, args=(run,), daemon=True)
        run._reader.start()
        return run

    def _relay(self, run: SeedRun) -> None:
        """Each output line of a worker, to its log and (prefixed) to the stream."""
        assert run._process is not None
        assert run._process.stdout is not None
        assert run._log is not None
        for line in run._process.stdout:
            run._log.write(line)
            run._log.flush()
            self._say(run.seed, line.rstrip("\n"))

    def _finish(self, run: SeedRun) -> None:
        """Collect a worker that exited: done, stopped or failed."""
        assert run._process is not None
        code = run._process.wait()
        if run._reader is not None:
            run._reader.join(timeout=10)
        if run._log is not None:
            run._log.close()
        log = self.out / "logs" / f"seed-{run.seed}.log"
        if code == 0 and self._read_done(run, before=False):
            self._say(run.seed, "done")
            return
        if code > 128 and code - 128 in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            run.status = "stopped"
            self._say(run.seed, "stopped; it resumes when the study runs again")
            return
        run.status = "failed"
        run.error = _error_line(log) or f"exited with code {code}"
        self._say(run.seed, f"FAILED: {run.error} (log: {log})")

    def _stop(self, running: list[SeedRun], signum: int) -> None:
        """Pass the stop signal on to every worker and wait until each has saved; a second
        signal meanwhile is passed on too (the workers then stop without saving)."""
        self._say(None, "stopping every seed after its current batch (each saves a checkpoint)")
        for run in running:
            if run._process is not None and run._process.poll() is None:
                run._process.send_signal(signum)
        while True:
            try:
                for run in running:
                    if run._process is not None:
                        run._process.wait()
                    self._finish(run)
                return
            except KeyboardInterrupt:
                for run in running:
                    if run._process is not None and run._process.poll() is None:
                        run._process.send_signal(signum)

    # ------------------------------------------------------------------- summary

    def _write_summary(self) -> dict[str, Any]:
        per_seed = {str(r.seed): r.metrics() for r in self.runs.values() if r.status == "done"}
        names = sorted({k for m in per_seed.values() for k in m})
        stats: dict[str, dict[str, Any]] = {}
        for name in names:
            values = [m[name] for m in per_seed.values() if name in m]
            stats[name] = {
                "n": len(values),
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values),
                "max": max(values),
            }
        summary = {
            "train_args": self.train_args,
            "seeds": per_seed,
            "statistics": stats,
            "failed": {str(r.seed): r.error for r in self.runs.values() if r.status == "failed"},
            "not_done": [r.seed for r in self.runs.values() if r.status in ("stopped", "pending")],
        }
        atomic_write_text(self.out / SUMMARY_NAME, dumps_json(summary, indent=1))
        return summary

    def _print_table(self, summary: dict[str, Any]) -> None:
        stats: dict[str, dict[str, Any]] = summary["statistics"]
        names = list(stats)
        width = max([len(n) for n in names] + [8])
        rows = [["seed", *names]]
        for seed, metrics in summary["seeds"].items():
            rows.append([seed, *(_cell(metrics.get(n)) for n in names)])
        for label in ("mean", "std", "min", "max"):
            rows.append([label, *(_cell(stats[n][label]) for n in names)])
        lines = ["  ".join(f"{c:>{width}}" for c in row) for row in rows]
        lines.insert(len(summary["seeds"]) + 1, "-" * len(lines[0]))
        failed = summary["failed"]
        if failed:
            lines.append(f"failed: {', '.join(failed)} (see {self.out / 'logs'})")
        lines.append(f"summary: {self.out / SUMMARY_NAME}")
        with self._print_lock:
            print("\n".join(lines), file=self.stream, flush=True)

    def _say(self, seed: int | None, text: str) -> None:
        prefix = f"seed {seed} | " if seed is not None else "study | "
        with self._print_lock:
            print(prefix + text, file=self.stream, flush=True)

    @property
    def failed(self) -> list[int]:
        """The seeds whose worker failed in this run."""
        return [r.seed for r in self.runs.values() if r.status == "failed"]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def _error_line(log: Path) -> str | None:
    """The worker's one-line error (``lenet5 train: ...``), the last one in its log."""
    with contextlib.suppress(OSError):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        errors = [line for line in lines if line.startswith("lenet5 train: ")]
        errors = [line for line in errors if ": warning: " not in line]
        if errors:
            return errors[-1]
        return next((line for line in reversed(lines) if line.strip()), None)
    return None
