"""The numeric precision of training: autocast and, for float16, the gradient scaler."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..devices import DeviceError

__all__ = ["Precision"]

_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class Precision:
    """What ``TrainConfig.precision`` means on one device.

    ``"32"`` runs everything in float32. ``"bf16-mixed"`` and ``"16-mixed"`` run the forward
    pass and the loss under :func:`torch.autocast` (matrix products and convolutions in the
    low precision, reductions such as the cross-entropy in float32) while the weights, the
    gradients and the optimizer stay in float32; ``"16-mixed"`` also scales the loss with a
    :class:`torch.amp.GradScaler`, since float16 gradients of small losses underflow
    (bfloat16 has float32's range and needs no scaling).

    Args:
        precision: One of :data:`~lenet5.training.config.PRECISIONS`.
        device: The training device.

    Raises:
        DeviceError: If the device cannot autocast to that type, naming what can.
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        self.name = precision
        self.device = device
        self.dtype = _DTYPES.get(precision)
        if self.dtype is None:
            return
        supported = torch.amp.is_autocast_available(device.type)
        if supported and device.type == "cuda" and self.dtype == torch.bfloat16:
            supported = torch.cuda.is_bf16_supported()
        if not supported:
            raise DeviceError(
                f"precision={precision!r} cannot run on {device}: it has no {self.dtype} "
                "autocast; use precision='32'"
                + (" or '16-mixed'" if self.dtype == torch.bfloat16 else "")
                + ", or another device"
            )

    def new_scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for float16, else ``None``."""
        if self.dtype != torch.float16:
            return None
        return torch.amp.GradScaler(self.device.type)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass and the loss run inside this."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield
