"""The model card of a saved weight set: huggingface_hub's :class:`~huggingface_hub.ModelCard`.

The card's metadata is what the Hub indexes (library, license, dataset, pipeline tag, tags
and, when the test accuracy is known, a ``model-index`` entry); its text says how to load
the weights and prepare inputs.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from huggingface_hub import EvalResult, ModelCard

from ._record import WeightsMeta

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

__all__ = ["model_card"]


def model_card(
    meta: WeightsMeta, card_data: ModelCardData, *, name: str | None = None
) -> ModelCard:
    """A model card for weights described by ``meta``.

    Args:
        meta: What is known about the weights (a record's ``meta``, or :func:`header_meta`).
        card_data: The metadata to start from (the library's: name, license, tags...); it is
            not modified.
        name: The model's name in ``model-index`` (default ``"lenet5-<dataset>"``).

    Returns:
        The card; ``card.data`` holds the metadata, ``str(card)`` the ``README.md`` text.
    """
    data = copy.deepcopy(card_data)
    data.datasets = [meta["dataset"]]
    data.model_name = name or f"lenet5-{meta['dataset']}"
    if meta["test_accuracy"] is not None:
        data.eval_results = [
            EvalResult(
                task_type="image-classification",
                dataset_type=meta["dataset"],
                dataset_name=meta["dataset"],
                dataset_split="test",
                metric_type="accuracy",
                metric_value=meta["test_accuracy"],
            )
        ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_card_text(meta)}")


def _card_text(meta: WeightsMeta) -> str:
    """The text of the model card, below its metadata."""
    accuracy = meta["test_accuracy"]
    lines = [
        "# LeNet-5",
        "",
        f"The classic LeNet-5 ({meta['num_params']:,} parameters, {len(meta['classes'])} "
        f"classes, {meta['in_channels']} input channel(s)), saved by the `lenet5` library.",
        "",
    ]
    if accuracy is not None:
        lines += [f"Test accuracy on {meta['dataset']}: {accuracy:.2f}%.", ""]
    lines += [
        "```python",
        "from lenet5 import LeNet5",
        'model = LeNet5.from_pretrained("<this folder or org/name>")',
        'x = model.weights.transforms()("digit.png")[None]  # (1, 1, 28, 28)',
        "print(model(x).argmax(dim=1))",
        "```",
        "",
        "Inputs are 28x28 greyscale images normalised as "
        f"`(x / 255 - {meta['mean']!r}) / {meta['std']!r}`; `model.weights.transforms()` "
        "prepares any picture of a digit that way.",
        "",
    ]
    return "\n".join(lines)
