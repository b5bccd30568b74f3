"""Kept so that ``from lenet5.callbacks import Checkpoint`` in older code keeps working.

The callbacks are defined in :mod:`lenet5.training.callbacks`; import them from
:mod:`lenet5` (``from lenet5 import Checkpoint``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    root = __name__.rpartition(".")[0]  # hubconf.py loads the package under a private name
    return getattr(importlib.import_module(f"{root}.training.callbacks"), name)
