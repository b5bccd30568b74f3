"""The module inside a wrapper: a compiled model's, a DDP model's.

``torch.compile`` returns an ``OptimizedModule`` whose state dict prefixes every name with
``_orig_mod.``, and DDP (or ``DataParallel``) one that prefixes them with ``module.``. The
trainer trains, checkpoints and saves the module inside, so that none of its files carries
a prefix and a compiled run resumes into a plain one and back; a state dict written by a
wrapper elsewhere is read with the prefixes taken off.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["WRAPPER_PREFIXES", "strip_wrapper_prefixes", "unwrap"]

#: The name prefixes that wrappers put in front of a module's state dict keys.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside any number of compile / DDP / DataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(
            model, (nn.parallel.DistributedDataParallel, nn.DataParallel)
        ):
            inner = model.module
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def strip_wrapper_prefixes(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` with the wrappers' prefixes taken off every key that has them all."""
    out = dict(weights)
    changed = True
    while changed and out:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    return out
