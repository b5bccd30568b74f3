"""The LeNet-5 model.

The layout follows the reference implementation: two :class:`torch.nn.Sequential` blocks,
``features`` (convolutions) and ``classifier`` (fully connected layers), so that a
``state_dict`` written by the reference code loads with ``strict=True``::

    features.0  Conv2d(1, 6, 5)      -> 6 x 24 x 24
    features.1  Tanh
    features.2  AvgPool2d(2)         -> 6 x 12 x 12
    features.3  Conv2d(6, 16, 5)     -> 16 x 8 x 8
    features.4  Tanh
    features.5  AvgPool2d(2)         -> 16 x 4 x 4
    classifier.0  Flatten            -> 256
    classifier.1  Linear(256, 120)   -> 120
    classifier.2  Tanh
    classifier.3  Linear(120, 84)    -> 84
    classifier.4  Tanh
    classifier.5  Linear(84, 10)     -> 10
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["IMAGE_SIZE", "LeNet5"]

#: File names of a saved model folder (the Hugging Face layout).
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

#: Height and width of the images the model takes.
IMAGE_SIZE = 28


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) for 28x28 images, as in the reference PyTorch recipe.

    Tanh activations and average pooling, 44,426 parameters at the defaults. The model
    returns logits; apply :func:`torch.softmax` for probabilities. Inputs are expected to be
    normalised (see :func:`lenet5.data.normalize`).

    Args:
        num_classes: Number of output classes.
        in_channels: Number of input image channels.

    Raises:
        ValueError: If ``num_classes`` or ``in_channels`` is not a positive integer.

    Example:
        >>> import torch
        >>> from lenet5 import LeNet5
        >>> model = LeNet5()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute class logits.

        Args:
            x: A float tensor of shape ``(N, in_channels, 28, 28)``.

        Returns:
            Logits of shape ``(N, num_classes)``.

        Raises:
            ValueError: If ``x`` does not have the expected shape.
        """
        expected = (self.in_channels, IMAGE_SIZE, IMAGE_SIZE)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"LeNet5 expects input of shape (N, {expected[0]}, {expected[1]}, {expected[2]}), "
                f"got {tuple(x.shape)}; add a batch dimension with x.unsqueeze(0) for a single "
                "image, or resize images to 28x28 (see lenet5.preprocess)"
            )
        logits: torch.Tensor = self.classifier(self.features(x))
        return logits

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, in_channels={self.in_channels}, "
            f"parameters={sum(p.numel() for p in self.parameters()):,}"
        )

    # ------------------------------------------------------------ save / load

    def config(self) -> dict[str, Any]:
        """The constructor arguments, as written to ``config.json``."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels}

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        metadata: dict[str, str] | None = None,
    ) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into a folder.

        Files are written under temporary names and renamed into place, so an existing
        model in the folder is never left half-overwritten.

        Args:
            save_directory: The folder (created if needed).
            metadata: Extra string metadata stored in the safetensors header.

        Returns:
            The folder.
        """
        from ._io import atomic_write_text
        from .weights import save_weights

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(self, folder / WEIGHTS_NAME, metadata=metadata)
        atomic_write_text(folder / CONFIG_NAME, json.dumps(self.config(), indent=2) + "\n")
        if not (folder / "README.md").exists():
            atomic_write_text(folder / "README.md", _model_card(self, metadata or {}))
        return folder

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool = False,
        revision: str | None = None,
        commit_message: str = "Upload LeNet5 weights",
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Upload the model to the Hugging Face Hub (``model.safetensors``, config, model card).

        The repo is created if it does not exist. Load it back with
        ``LeNet5.from_pretrained(repo_id)``.

        Args:
            repo_id: ``"org/name"``.
            token: An access token (default: the one saved by ``hf auth login``).
            private: Create the repo as private.
            revision: Branch to push to.
            commit_message: The commit message.
            metadata: Extra string metadata for the safetensors header.

        Returns:
            The URL of the commit.
        """
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, metadata=metadata)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                revision=revision,
                commit_message=commit_message,
            )
        return str(getattr(info, "commit_url", info))

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = "DEFAULT",
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        strict: bool = True,
        map_location: str | torch.device = "cpu",
    ) -> LeNet5:
        """Load a model from pretrained weights.

        ``name_or_path`` may be:

        * a name from the weights registry (``"DEFAULT"``, ``"mnist-v1"``...; see
          :mod:`lenet5.weights`), loaded from the files shipped in the package;
        * a folder written by :meth:`save_pretrained` (``model.safetensors`` + ``config.json``);
        * a ``.safetensors`` file;
        * a Hugging Face Hub repo id (``"org/name"``), downloaded into (or, offline, read
          from) the Hugging Face cache.

        Args:
            name_or_path: What to load (see above).
            revision: Hub only: a branch, tag or commit.
            cache_dir: Hub only: the cache folder (``HF_HUB_CACHE`` by default).
            local_files_only: Hub only: never use the network (also implied by
                ``HF_HUB_OFFLINE=1``).
            token: Hub only: an access token for private repos.
            strict: Refuse weights with missing or unexpected tensors.
            map_location: Device to load the weights onto.

        Returns:
            The model, in evaluation mode.

        Raises:
            WeightsError: If the weights cannot be found, fail their checksum, or do not fit.
        """
        from .weights import load_weights, resolve_pretrained

        resolved = resolve_pretrained(
            name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
        model = cls(**resolved.config)
        load_weights(model, resolved.tensors, strict=strict, name=resolved.source)
        model.to(map_location)
        model.eval()
        return model


def _model_card(model: LeNet5, metadata: dict[str, str]) -> str:
    """A Hugging Face model card for a saved model folder."""
    dataset = metadata.get("dataset", "mnist")
    accuracy = metadata.get("test_accuracy")
    lines = [
        "---",
        "library_name: lenet5",
        "tags: [lenet5, image-classification, pytorch, safetensors]",
        f"datasets: [{dataset}]",
        "---",
        "",
        "# LeNet-5",
        "",
        f"The classic LeNet-5 ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{model.num_classes} classes, {model.in_channels} input channel(s)), saved by the "
        "`lenet5` library.",
        "",
    ]
    if accuracy:
        lines += [f"Test accuracy on {dataset}: {accuracy}%.", ""]
    lines += [
        "```python",
        "from lenet5 import LeNet5",
        'model = LeNet5.from_pretrained("<this folder or org/name>")',
        "```",
        "",
        "Inputs are 28x28 greyscale images normalised as "
        f"`(x / 255 - {metadata.get('mean', '0.1307')}) / {metadata.get('std', '0.3081')}` "
        "(see `lenet5.normalize`).",
        "",
    ]
    return "\n".join(lines)
