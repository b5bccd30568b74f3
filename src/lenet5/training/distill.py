"""Knowledge distillation (Hinton, Vinyals & Dean, 2015): a teacher's soft targets.

:class:`Distillation` is a callback and the loss that goes with it::

    distil = Distillation(teacher, temperature=4.0, alpha=0.9)
    Trainer(LeNet5(), loss_fn=distil.loss, callbacks=[distil]).fit(train)

In ``on_batch_start`` it runs the teacher on the batch exactly as the student sees it
(``state.inputs``, after augmentation and after any callback of a lower ``order``, such as
mixup) and sets ``state.targets`` to the teacher's probabilities at temperature ``T``; the
targets it replaced (the labels, or mixed labels) are kept for the loss. :meth:`loss` is
``alpha * T**2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, replaced targets)``:
the ``T**2`` keeps the soft term's gradients at the scale of the hard one's as ``T``
changes. The student is any model with the teacher's classes (LeNet-5 stays LeNet-5); the
teacher is never trained (eval mode, no gradients) and is moved to the training device when
the fit starts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .callbacks import Callback
from .state import TrainState

__all__ = ["Distillation"]


class Distillation(Callback):
    """Soft targets from a teacher, and the distillation loss (see the module docstring).

    Args:
        teacher: A trained model with the student's input and classes.
        temperature: ``T > 0``; higher values soften the teacher's probabilities.
        alpha: Weight of the soft (teacher) term in ``[0, 1]``; ``1 - alpha`` goes to the
            cross-entropy with the targets the data (or an earlier callback) gave.

    Attributes:
        order: ``10``: after callbacks of the default order 0 (a mixup), so that the
            teacher sees what the student sees.

    Raises:
        ValueError: For a temperature that is not positive or an ``alpha`` outside [0, 1].
    """

    order = 10

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9) -> None:
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"Distillation needs a positive temperature, got {temperature!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Distillation needs alpha in [0, 1], got {alpha!r}")
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha
        self._truth: torch.Tensor | None = None

    def on_fit_start(self, state: TrainState) -> None:
        # Runs after DevicePlacement (order -90), which chose the device.
        self.teacher.to(state.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def on_batch_start(self, state: TrainState) -> None:
        self._truth = state.targets
        with torch.no_grad():
            logits = self.teacher(state.inputs).float()
        state.targets = F.softmax(logits / self.temperature, dim=1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The distillation loss of the student's ``logits``; ``targets`` are the teacher's
        probabilities that :meth:`on_batch_start` set.

        Raises:
            RuntimeError: If called outside a fit that runs this callback.
        """
        if self._truth is None:
            raise RuntimeError(
                "Distillation.loss needs the callback in the same fit: "
                "Trainer(loss_fn=distil.loss, callbacks=[distil])"
            )
        t = self.temperature
        log_p = F.log_softmax(logits.float() / t, dim=1)
        soft = F.kl_div(log_p, targets, reduction="batchmean") * t * t
        if self.alpha == 1.0:
            return soft
        hard = F.cross_entropy(logits.float(), self._truth)
        return self.alpha * soft + (1.0 - self.alpha) * hard

    def __repr__(self) -> str:
        return (
            f"Distillation(teacher={type(self.teacher).__name__}, "
            f"temperature={self.temperature}, alpha={self.alpha}, order={self.order})"
        )
