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

import contextlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from torch import nn

from ._hints import warn
from ._io import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_file,
    remove_stale_leftovers,
    temporary_folder,
)
from .data import IMAGE_SIZE as IMAGE_SIZE  # also importable from here, as before
from .weights import (
    Resolved,
    Weights,
    WeightsError,
    check_finite,
    check_tensors,
    header_meta,
    model_card,
    resolve_pretrained,
    save_weights,
)

if TYPE_CHECKING:
    from typing_extensions import Self

# IMAGE_SIZE (the images' height and width) is a dataset fact, imported here for the shape
# check and kept importable from here for older code.
__all__ = ["LeNet5"]

#: The header metadata of the ``model.safetensors`` that ``save_pretrained`` is writing: the
#: mixin calls ``_save_pretrained(folder)`` with nothing else.
_HEADER: ContextVar[Mapping[str, str] | None] = ContextVar("lenet5_header", default=None)


class LeNet5(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="lenet5",
    license="mit",
    pipeline_tag="image-classification",
    tags=["lenet5", "image-classification", "safetensors"],
    repo_url="https://github.com/lenet5/lenet5",
    docs_url="https://github.com/lenet5/lenet5/tree/main/docs",
):
    """LeNet-5 (LeCun et al., 1998) for 28x28 images, as in the reference PyTorch recipe.

    Tanh activations and average pooling, 44,426 parameters at the defaults. The model
    returns logits; apply :func:`torch.softmax` for probabilities. Inputs are expected to be
    normalised (see :func:`lenet5.data.normalize`, or ``model.weights.transforms()``).

    ``save_pretrained``, ``push_to_hub``, ``from_pretrained`` and the model card come from
    huggingface_hub's :class:`~huggingface_hub.PyTorchModelHubMixin`; the methods below
    override it only where lenet5 promises more (registry names, safetensors only, strict
    loading, atomic writes, a card with real metadata).

    Args:
        num_classes: Number of output classes.
        in_channels: Number of input image channels.

    Attributes:
        weights: The :class:`~lenet5.weights.Weights` record the model was loaded with by
            :meth:`from_pretrained` (``None`` for a model built with the constructor).

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
        self.weights: Weights | None = None
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

    @property
    def num_classes(self) -> int:
        """The number of outputs: those of the last :class:`~torch.nn.Linear` layer, so a
        head replaced after construction counts (``save_pretrained`` writes it)."""
        return self._head()[1].out_features

    @property
    def in_channels(self) -> int:
        """The number of input channels: those of the first convolution."""
        first = next(m for m in self.modules() if isinstance(m, nn.Conv2d))
        return first.in_channels

    def _head(self) -> tuple[str, nn.Linear]:
        """The last :class:`~torch.nn.Linear` layer (the classifier's output layer) and its
        name in the state dict (``classifier.5``)."""
        linears = [(n, m) for n, m in self.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise TypeError(f"{type(self).__name__} has no nn.Linear layer to classify with")
        return linears[-1]

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, in_channels={self.in_channels}, "
            f"parameters={sum(p.numel() for p in self.parameters()):,}"
        )

    # ------------------------------------------- Hugging Face mixin: save / load

    def config(self) -> dict[str, Any]:
        """The constructor arguments, as written to ``config.json``: read off the layers
        (``num_classes`` from the last Linear layer, ``in_channels`` from the first
        convolution), so a model whose head was replaced saves its actual size."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels}

    @classmethod
    def from_pretrained(  # type: ignore[override]  # our signature, kept from before the mixin
        cls,
        name_or_path: str | os.PathLike[str] = "DEFAULT",
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        strict: bool = True,
        map_location: str | torch.device = "cpu",
        num_classes: int | None = None,
    ) -> Self:
        """Load a model from pretrained weights; it keeps their record as ``model.weights``.

        ``name_or_path`` may be:

        * a name from the weights registry (``"DEFAULT"``, ``"mnist-v1"``...; see
          :mod:`lenet5.weights`), loaded from the files shipped in the package after their
          SHA-256 check, never from the network;
        * a folder written by :meth:`save_pretrained` (``model.safetensors`` + ``config.json``);
        * a ``.safetensors`` file;
        * a Hugging Face Hub repo id (``"org/name"``), downloaded into (or, offline, read
          from) the Hugging Face cache. A name of that form that is no local path and
          cannot be had from the Hub or the cache fails within seconds, saying so.

        Args:
            name_or_path: What to load (see above).
            revision: Hub only: a branch, tag or commit.
            cache_dir: Hub only: the cache folder (``HF_HUB_CACHE`` by default).
            force_download: Hub only: download again even if the files are cached.
            local_files_only: Hub only: never use the network (as ``HF_HUB_OFFLINE=1``).
            token: Hub only: an access token for private repos.
            strict: Refuse weights with missing or unexpected tensors.
            map_location: Device to load the weights onto.
            num_classes: Another number of outputs (transfer): all but the last layer is
                loaded, the last is a fresh ``nn.Linear(84, num_classes)`` from torch's
                global generator, and a warning names the skipped tensors and both sizes.

        Returns:
            The model, in evaluation mode, with ``model.weights`` set (with a new head,
            :meth:`Weights.reheaded <lenet5.weights.Weights.reheaded>` of the record).

        Raises:
            WeightsError: If the weights cannot be found, fail their checksum, or do not fit.
            ValueError: If ``num_classes`` is not a positive integer.
        """
        return cls._from_pretrained(
            model_id=os.fspath(name_or_path),
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            strict=strict,
            map_location=map_location,
            num_classes=num_classes,
        )

    @classmethod
    def _from_pretrained(  # type: ignore[override]  # strict by default, no model_kwargs
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | os.PathLike[str] | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        num_classes: int | None = None,
    ) -> Self:
        """The mixin's loading step: safetensors only, checked before the model is built.

        The mixin's version (whose ``from_pretrained`` builds the model before it reads the
        weights, and is overridden too) falls back to a pickled ``pytorch_model.bin`` and
        loads without naming what does not fit. Here the weights are resolved
        (:mod:`lenet5.weights`), the record's constructor arguments checked against a model
        on the ``meta`` device (no memory allocated), and only then is the real model built
        and filled. A ``num_classes`` other than the weights' loads all but the head
        (:meth:`_reheaded`).
        """
        resolved = resolve_pretrained(
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        config = resolved.weights.config()
        if num_classes is not None and num_classes != config["num_classes"]:
            model = cls._reheaded(resolved, {**config, "num_classes": num_classes}, strict)
        else:
            with torch.device("meta"):
                skeleton = cls(**config)
            check_tensors(
                skeleton.state_dict(), resolved.tensors, strict=strict, name=resolved.source
            )
            model = cls(**config)
            model.load_state_dict(resolved.tensors, strict=strict)
            model.weights = resolved.weights
        model.to(map_location)
        model.eval()
        return model

    @classmethod
    def _reheaded(cls, resolved: Resolved, config: dict[str, int], strict: bool) -> Self:
        """A model with ``config``'s new number of classes: every tensor of ``resolved`` but
        the last layer's loaded, the last layer newly initialised, a warning saying so.

        The body is built without drawing from torch's global generator (it is
        overwritten), and the head is then initialised from it, exactly as a new
        ``nn.Linear`` made at this point would be.
        """
        with torch.device("meta"):
            skeleton = cls(**config)
        head_name, head_skeleton = skeleton._head()
        head_keys = [f"{head_name}.{k}" for k, _ in head_skeleton.named_parameters()]
        body = {k: v for k, v in resolved.tensors.items() if k not in head_keys}
        expected = {k: v for k, v in skeleton.state_dict().items() if k not in head_keys}
        check_tensors(expected, body, strict=strict, name=resolved.source)
        with torch.random.fork_rng(devices=[]):
            model = cls(**config)
        model.load_state_dict(body, strict=False)
        _, head = model._head()
        head.reset_parameters()
        skipped = [k for k in head_keys if k in resolved.tensors]
        old = resolved.weights.num_classes
        warn(
            f"{resolved.source}: {' and '.join(skipped) or 'no tensor'} not loaded: the "
            f"weights' last layer has {old} outputs, the model {config['num_classes']}; it is "
            f"newly initialised (nn.Linear({head.in_features}, {head.out_features})), to be "
            "trained; every other layer is loaded"
        )
        num_params = sum(p.numel() for p in model.parameters())
        model.weights = resolved.weights.reheaded(config["num_classes"], num_params=num_params)
        return model

    @classmethod
    def _load_as_pickle(cls, model: Any, model_file: str, map_location: str, strict: bool) -> Any:
        """Refused: lenet5 never unpickles weights (the mixin's ``pytorch_model.bin`` path)."""
        raise WeightsError(
            f"{model_file}: only .safetensors weights are loaded (pickle-based files can run "
            "arbitrary code)"
        )

    def save_pretrained(  # type: ignore[override]  # returns the folder, takes metadata
        self,
        save_directory: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        classes: Sequence[str] | None = None,
        config: Mapping[str, Any] | None = None,
        model_card_kwargs: dict[str, Any] | None = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_to_hub_kwargs: Any,
    ) -> Path:
        """Write ``model.safetensors``, ``config.json`` and a model card ``README.md``.

        The mixin writes the three files into a hidden staging folder inside
        ``save_directory``; each is then copied beside its destination under a temporary
        name and renamed into place (:func:`lenet5._io.atomic_file`), so no file there is
        ever half-written. Whatever a killed save left in the folder is removed by the next
        one. An existing ``README.md`` is left alone, as the mixin does.

        Args:
            save_directory: The folder (created if needed).
            metadata: Extra string metadata stored in the safetensors header; the card takes
                the dataset, accuracy and normalisation from it.
            classes: The class names, indexed by output, stored in the header as
                ``classes`` (a JSON list; it replaces one in ``metadata``), so that
                ``from_pretrained(folder).weights.classes`` gives them back. One name per
                output.
            config: Extra ``config.json`` entries (the constructor arguments, read off the
                layers by :meth:`config`, win).
            model_card_kwargs: Passed to :meth:`generate_model_card`.
            push_to_hub: Also upload the folder with :meth:`push_to_hub`.
            repo_id: The repo to push to (default: the folder's name).
            **push_to_hub_kwargs: Passed to :meth:`push_to_hub`.

        Returns:
            The folder.

        Raises:
            WeightsError: If a weight is NaN or infinite (a diverged run): nothing is
                written.
            ValueError: If ``classes`` is not one string per output.
            lenet5.WriteError: If the folder cannot be written (naming it and the cause).
        """
        folder = Path(save_directory)
        card_kwargs = dict(model_card_kwargs or {})
        if metadata is not None or classes is not None:
            card_kwargs["metadata"] = self._header(metadata, classes)
        # A diverged model is refused before anything is created or written.
        check_finite(self.state_dict(), what=f"{type(self).__name__} (for {folder})")
        header = _HEADER.set(card_kwargs.get("metadata"))
        try:
            self._write_staged(folder, {**(config or {}), **self.config()}, card_kwargs)
        finally:
            _HEADER.reset(header)
        if push_to_hub:
            kwargs = {"config": config, "model_card_kwargs": card_kwargs, **push_to_hub_kwargs}
            self.push_to_hub(repo_id or folder.name, **kwargs)
        return folder

    def _header(
        self, metadata: Mapping[str, str] | None, classes: Sequence[str] | None
    ) -> dict[str, str]:
        """The header metadata: ``metadata``, with ``classes`` as a JSON list over its own."""
        header = dict(metadata or {})
        if classes is not None:
            header["classes"] = self._classes_json(classes)
        return header

    def _classes_json(self, classes: Sequence[str]) -> str:
        """``classes`` as the header stores them, checked: one string per output."""
        names = list(classes) if not isinstance(classes, str) else None
        if names is None or not all(isinstance(c, str) for c in names):
            raise ValueError(f"classes must be a sequence of strings, got {classes!r}")
        if len(names) != self.num_classes:
            raise ValueError(
                f"classes names {len(names)} classes, but the model has {self.num_classes} "
                "outputs; give one name per output"
            )
        return json.dumps(names)

    def _write_staged(
        self, folder: Path, config: dict[str, Any], card_kwargs: dict[str, Any]
    ) -> None:
        """The mixin's files written into ``folder``, each one atomically.

        The mixin writes into a temporary folder (it deletes an existing config.json first
        and writes in place), then each file is put in place with
        :func:`lenet5._io.atomic_file` (a temporary name beside it, a rename). The staging
        folder is a hidden one inside the target, named after this process, so that
        whatever a killed save left there (staging folder or temporary files) the next save
        removes: nothing accumulates, in the folder or in /tmp.
        """
        created = not folder.exists()
        try:
            with temporary_folder(folder, "lenet5-save") as staged:
                remove_stale_leftovers(folder)
                super().save_pretrained(staged, config=config, model_card_kwargs=card_kwargs)
                for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
                    if name == CARD_NAME and (folder / name).exists():
                        continue
                    with atomic_file(folder / name) as part:
                        shutil.copyfile(staged / name, part)
        except BaseException:
            if created:  # a folder made for nothing goes again (only if empty)
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's writing step: the weights, with the header metadata, atomically."""
        save_weights(self, save_directory / WEIGHTS_NAME, metadata=_HEADER.get())

    def push_to_hub(
        self,
        repo_id: str,
        *,
        metadata: Mapping[str, str] | None = None,
        revision: str | None = None,
        commit_message: str = "Upload LeNet5 weights",
        model_card_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Upload the model to the Hugging Face Hub (weights, config, model card).

        The mixin's ``push_to_hub`` (it creates the repo if needed and writes the files with
        :meth:`save_pretrained`), with two more arguments. Load it back with
        ``LeNet5.from_pretrained(repo_id)``.

        Args:
            repo_id: ``"org/name"``.
            metadata: Extra string metadata for the safetensors header and the card.
            revision: The branch to push to (the mixin's ``branch``).
            commit_message: The commit message.
            model_card_kwargs: Passed to :meth:`generate_model_card`.
            **kwargs: The mixin's other arguments: ``token``, ``private``, ``branch``,
                ``create_pr``, ``config``, ``allow_patterns``, ``ignore_patterns``,
                ``delete_patterns``.

        Returns:
            The URL of the commit.
        """
        card_kwargs = dict(model_card_kwargs or {})
        if metadata is not None:
            card_kwargs["metadata"] = dict(metadata)
        if revision is not None:
            kwargs.setdefault("branch", revision)
        url = super().push_to_hub(
            repo_id, commit_message=commit_message, model_card_kwargs=card_kwargs, **kwargs
        )
        return str(url)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The model card: Hub metadata (library, license, dataset, pipeline tag, tags, and
        the test accuracy in ``model-index`` form when known) and a short text.

        Overrides the mixin's, which renders a Jinja template without the dataset or the
        accuracy (and needs jinja2, which huggingface_hub does not install).

        Args:
            *args: Ignored (the mixin's signature).
            **kwargs: ``metadata``, the safetensors header fields being saved (``dataset``,
                ``test_accuracy``, ``mean``, ``std``, ``classes``, ``name``).

        Returns:
            A :class:`huggingface_hub.ModelCard`.
        """
        header = dict(kwargs.get("metadata") or {})
        meta = header_meta(
            header,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            num_params=sum(p.numel() for p in self.parameters()),
            file_size=0,
            source="metadata",
        )
        return model_card(meta, self._hub_mixin_info.model_card_data, name=header.get("name"))
