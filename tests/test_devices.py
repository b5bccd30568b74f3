"""Device names (lenet5.devices): misspelt, unavailable, CUDA without CUDA."""

from __future__ import annotations

import pytest
import torch

from lenet5 import ImageSet, Trainer
from lenet5.devices import DeviceError, resolve_device


def test_misspelt_and_unavailable_devices() -> None:
    with pytest.raises(DeviceError, match=r"^unknown device 'tpu'; use auto, cpu, cuda or cuda:N$"):
        resolve_device("tpu")
    if torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    with pytest.raises(DeviceError, match=r"^device 'mps' requested but MPS is not available"):
        resolve_device("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda_raises_device_error(tiny_train: ImageSet) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available"):
        Trainer(epochs=1, device="cuda", verbose=False).fit(tiny_train)
