"""How the docs build runs the examples: a helper of docs/conf.py, not an example.

sphinx-gallery executes every script of ``examples/inference/`` and
``examples/research/`` while the docs are built, in the Sphinx process, one after the
other, and makes a page of each with its output and figures. Before each script it sets
``sys.argv`` to what :func:`reset_argv` returns: the script's flags in
:data:`GALLERY_ARGS` (a short run on a few hundred images), ``--data-dir`` for the
scripts of :data:`DATA_DIR_FLAG`, and ``--out`` in a temporary folder that is removed
when the build ends, so that nothing is written into the source tree. :func:`order`
sorts the pages of each section in the order of :data:`GALLERY_ARGS`.

With ``LENET5_GALLERY_RUNS`` set to a folder, each script's ``--out`` is
``FOLDER/NAME``, kept, and :func:`record` writes ``FOLDER/NAME.json`` after the script
ran: its flags, its ``--out``, what it left in its working folder, its seconds.
tests/test_examples.py checks these records and the pages: this build is the one run of
the examples per check.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

#: Every example, by file name, in the order of its section's pages, with the flags the
#: docs build runs it with (besides ``--out``). Each page names its own flags, and
#: tests/test_examples.py checks that every script has an entry here.
GALLERY_ARGS: dict[str, tuple[str, ...]] = {
    # examples/inference/
    "predict_your_picture": (),
    "onnx_runtime": ("--repeats", "50"),
    "torch_hub": (),
    # examples/research/
    "mixup": ("--subset", "1024", "--epochs", "3"),
    "distillation": (
        *("--subset", "1024", "--epochs", "2", "--teacher-epochs", "2"),
        *("--temperature", "4", "--alpha", "0.5"),
    ),
    "auxiliary_loss": ("--subset", "1024", "--epochs", "3", "--weight", "0.05"),
    "grad_clipping": ("--subset", "1024", "--epochs", "2", "--clip", "1.0"),
    "bf16": ("--subset", "1024", "--epochs", "2"),
    "accumulation": ("--subset", "1024", "--epochs", "2"),
    "compile": ("--subset", "512", "--epochs", "3"),
    "tensorboard_logging": ("--subset", "1536", "--epochs", "3", "--every", "8"),
    "lr_sweep": (
        "--subset",
        "1024",
        "--epochs",
        "2",
        "--lrs",
        "3e-4",
        "1e-3",
        "3e-3",
        "1e-2",
    ),
    "custom_model": ("--subset", "1024", "--epochs", "2"),
    "finetune_fashion3": ("--subset", "1536", "--epochs", "3"),
}

#: The examples that the build gives ``--data-dir`` (``$LENET5_DATA_DIR``, when set):
#: every one that reads MNIST except ``mixup``, which reads the variable itself, as a
#: script run without the flag does (``finetune_fashion3`` reads Fashion-MNIST from
#: ``$LENET5_FASHION_DATA_DIR`` the same way; ``predict_your_picture`` reads no data).
DATA_DIR_FLAG = frozenset(GALLERY_ARGS) - {
    "predict_your_picture",
    "mixup",
    "finetune_fashion3",
}


@functools.cache
def _scratch() -> Path:
    """One temporary folder per build, removed when the Sphinx process exits."""
    folder = Path(tempfile.mkdtemp(prefix="lenet5-gallery-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def _runs() -> Path | None:
    """``$LENET5_GALLERY_RUNS``, made absolute: the scripts run in their own folders."""
    folder = os.environ.get("LENET5_GALLERY_RUNS")
    if not folder:
        return None
    path = Path(folder).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


#: The run under way: its name, flags, working folder, what that held, and its start.
_running: dict[str, Any] = {}


def reset_argv(gallery_conf: dict[str, Any], script_vars: dict[str, Any]) -> list[str]:
    """``sys.argv[1:]`` for the example ``script_vars["src_file"]`` (a gallery hook).

    It also keeps PyTorch to one thread: LeNet-5's small batches gain nothing from more
    on a CPU, and on a busy 2-core machine (CI runs other jobs) more threads make every
    step wait for a core.

    Raises:
        KeyError: For a script without an entry in :data:`GALLERY_ARGS`.
    """
    import torch  # only when examples run: a build without them never loads torch

    torch.set_num_threads(1)
    source = Path(script_vars["src_file"])
    name = source.stem
    if name not in GALLERY_ARGS:
        raise KeyError(f"examples/_gallery.py: GALLERY_ARGS has no entry for {name}.py")
    data = os.environ.get("LENET5_DATA_DIR")
    argv = [
        *GALLERY_ARGS[name],
        *(("--data-dir", data) if data and name in DATA_DIR_FLAG else ()),
    ]
    runs = _runs()
    argv += ["--out", str(runs / name if runs else _scratch() / name)]
    # sphinx-gallery runs the script in its own folder: what is there now, to compare.
    _running.clear()
    _running.update(
        name=name,
        script=f"{source.parent.parent.name}/{source.parent.name}/{source.name}",
        argv=argv,
        cwd=str(source.parent),
        before=sorted(os.listdir(source.parent)),
        start=time.perf_counter(),
    )
    return argv


def record(gallery_conf: dict[str, Any], fname: str | None, when: str) -> None:
    """Write the record of the example that just ran, with ``LENET5_GALLERY_RUNS``.

    A gallery ``reset_modules`` hook: sphinx-gallery calls it before and after each
    script; it acts after.
    """
    runs = _runs()
    if when != "after" or fname is None or runs is None or not _running:
        return
    if Path(fname).stem != _running["name"]:
        return
    left = sorted(set(os.listdir(_running["cwd"])) - set(_running["before"]))
    seconds = time.perf_counter() - _running["start"]
    entry = {key: _running[key] for key in ("name", "script", "argv", "cwd")}
    entry.update(left_in_cwd=left, seconds=round(seconds, 2))
    (runs / f"{_running['name']}.json").write_text(json.dumps(entry, indent=1) + "\n")
    _running.clear()


def order(filename: str) -> int:
    """The sort key of an example's page in its section: its place in GALLERY_ARGS."""
    names = list(GALLERY_ARGS)
    name = Path(filename).stem
    return names.index(name) if name in names else len(names)
