"""Device specs (``"auto"``, ``"cpu"``, ``"cuda:1"``...) and their resolution to a torch device.

:func:`is_device_spec` checks the spelling without importing torch (the command line checks
its arguments before anything heavy is loaded); :func:`resolve_device` checks that the device
is actually there.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceError", "is_device_spec", "is_meta", "resolve_device"]

# The device types torch.device accepts.
_TYPES = (
    "cpu|cuda|mps|xpu|hip|meta|ipu|mkldnn|opengl|opencl|ideep|ve|fpga|maia|xla|lazy|vulkan|"
    "hpu|mtia|privateuseone"
)
_SPEC = re.compile(rf"^(?:auto|(?:{_TYPES})(?::\d+)?)$")


class DeviceError(RuntimeError):
    """The requested device is not available."""


def is_meta(spec: object) -> bool:
    """Whether ``spec`` names torch's ``meta`` device, which holds shapes but no data."""
    return str(spec).partition(":")[0] == "meta"


def is_device_spec(spec: object) -> bool:
    """Whether ``spec`` is spelt like a device that can run a model (``"auto"``, ``"cpu"``,
    ``"cuda:N"``...; not ``"meta"``, which holds no data)."""
    return isinstance(spec, str) and _SPEC.match(spec) is not None and not is_meta(spec)


def resolve_device(spec: str | torch.device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` into an available device.

    Raises:
        DeviceError: If the device is misspelt or ``meta``, or CUDA (or that CUDA device, or MPS) is
            requested but not available.
    """
    import torch

    if str(spec) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if is_meta(spec):
        raise DeviceError("device 'meta' holds no data and cannot run a model; use cpu or cuda")
    if not isinstance(spec, torch.device) and not is_device_spec(spec):
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(spec)!r} requested but CUDA is not available "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
                "use --device cpu or --device auto"
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(spec)!r} requested but only {torch.cuda.device_count()} CUDA "
                "device(s) are present"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' requested but MPS is not available; use --device cpu")
    return device
