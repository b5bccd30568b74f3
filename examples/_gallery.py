"""How the docs build runs the examples: a helper of docs/conf.py, not an example.

sphinx-gallery executes every script of ``examples/inference/`` and
``examples/research/`` while the docs are built, in the Sphinx process, one after the
other, and makes a page of each with its output and figures. Before each script it sets
``sys.argv`` to what :func:`reset_argv` returns: the script's flags in
:data:`GALLERY_ARGS`, a short run on a few hundred images, and ``--out`` in a temporary
folder that is removed when the build ends, so that nothing is written into the source
tree. :func:`order` sorts the pages of each section in the order of
:data:`GALLERY_ARGS`.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
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
}


@functools.cache
def _scratch() -> Path:
    """One temporary folder per build, removed when the Sphinx process exits."""
    folder = Path(tempfile.mkdtemp(prefix="lenet5-gallery-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


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
    name = Path(script_vars["src_file"]).stem
    if name not in GALLERY_ARGS:
        raise KeyError(f"examples/_gallery.py: GALLERY_ARGS has no entry for {name}.py")
    return [*GALLERY_ARGS[name], "--out", str(_scratch() / name)]


def order(filename: str) -> int:
    """The sort key of an example's page in its section: its place in GALLERY_ARGS."""
    names = list(GALLERY_ARGS)
    name = Path(filename).stem
    return names.index(name) if name in names else len(names)
