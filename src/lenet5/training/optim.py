"""The optimizer and the learning-rate schedule a :class:`~lenet5.TrainConfig` names."""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler"]


def build_optimizer(
    config: TrainConfig, model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """Create the optimizer the config names, using the fastest correct implementation."""
    params = [p for p in model.parameters() if p.requires_grad]
    factory = config.optimizer
    if callable(factory):
        return factory(params)
    name = factory.lower()
    # Fused kernels do the same arithmetic as the for-loop version in one launch; they
    # exist for CUDA and, since torch 2.4, for the CPU. The plain engine keeps the default.
    fused = _fused_available(device) if config.engine == "fast" else None
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, weight_decay=config.weight_decay, fused=fused
        )
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def _fused_available(device: torch.device) -> bool | None:
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        major, minor = (int(p) for p in torch.__version__.split(".")[:2])
        return True if (major, minor) >= (2, 4) else None
    return None


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Create the per-batch learning-rate scheduler the config names, or ``None``."""
    sched = config.scheduler
    if sched is None:
        return None
    if callable(sched):
        return sched(optimizer, total_steps)
    name = sched.lower()
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(total_steps, 1)
    )
