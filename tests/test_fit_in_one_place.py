"""The fit after its move into one module: the same weights as before, and the two bugs the
split hid (validation without the default callbacks, validation sets left off the device),
and warnings that point at the user's line."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from lenet5 import (
    Callback,
    Checkpoint,
    ConfigError,
    DevicePlacement,
    ImageSet,
    NormalizationWarning,
    PeriodicValidation,
    TrainConfig,
    Trainer,
    TrainState,
)

# SHA-256 of the weights after 2 epochs on the first 1,024 training images (seed 0, one
# thread), recorded on 30a5e24, before the fit moved into trainer.py: the move changed no
# arithmetic, no random draw and no order of operations.
BEFORE_THE_MOVE = {
    "reference": "4d743b22d6de523aad3f2a2a23c129ad43ff80d208d81d10358a9236f13d298e",
    "fast": "3008aa0cca9427cde759b9caadb7490f9891a958a59a81f689e5c54cceb8443c",
    "mnist-v3": "6ca497a502006d8de3cd1497713e1ded342d00bb8843dd536a24578d7be2a30f",
}


def _weights_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("recipe", sorted(BEFORE_THE_MOVE))
def test_the_recipes_train_bitwise_as_before(recipe: str, mnist_train: ImageSet) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the recorded hashes are of one-thread runs
    try:
        config = TrainConfig.from_recipe(
            recipe, epochs=2, val_every=0, verbose=False, device="cpu", seed=0
        )
        trainer = Trainer(config=config)
        trainer.fit(mnist_train.subset(slice(1024)))
    finally:
        torch.set_num_threads(threads)
    assert _weights_hash(trainer.model) == BEFORE_THE_MOVE[recipe]


def test_validation_data_without_a_schedule_is_refused(
    tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    """It used to train to the end and silently never validate."""
    trainer = Trainer(epochs=1, verbose=False, device="cpu", default_callbacks=False)
    with pytest.raises(ConfigError, match=r"callbacks=\[PeriodicValidation\(\)\]"):
        trainer.fit(tiny_train, val=tiny_test)
    with pytest.raises(ConfigError, match="no callback schedules validation"):
        Trainer(epochs=1, val_split=16, default_callbacks=False).fit(tiny_train)
    assert trainer.state is None  # refused before anything ran


def test_validation_without_the_defaults_runs_when_scheduled(
    tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    trainer = Trainer(
        epochs=2,
        val_every=1,
        device="cpu",
        default_callbacks=False,
        callbacks=[PeriodicValidation()],
    )
    state = trainer.fit(tiny_train, val=tiny_test)
    assert [("val_accuracy" in h) for h in state.history] == [True, True]
    assert state.history[-1]["val_accuracy"] == trainer.evaluate(tiny_test).accuracy


def test_a_callback_of_ones_own_schedules_with_val_every_0(
    tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    class EveryEpoch(Callback):
        def on_epoch_start(self, state: TrainState) -> None:
            state.validate = True

    state = Trainer(
        epochs=2, val_every=0, device="cpu", default_callbacks=False, callbacks=[EveryEpoch()]
    ).fit(tiny_train, val=tiny_test)
    assert all("val_accuracy" in h for h in state.history)


@dataclasses.dataclass(frozen=True)
class _Tracked(ImageSet):
    """An ImageSet that records every device it is moved to (in ``moves``, shared)."""

    moves: list[str] = dataclasses.field(default_factory=list, compare=False)

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> ImageSet:
        self.moves.append(self.name)
        return self


def test_device_placement_moves_every_validation_set(
    tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    """It used to move only the first set (``state.val_data``), and validation read all."""
    moves: list[str] = []
    sets = {
        name: _Tracked(
            **{f.name: getattr(tiny_test, f.name) for f in dataclasses.fields(tiny_test)}
        )
        for name in ("a", "b", "c")
    }
    sets = {name: dataclasses.replace(s, name=name, moves=moves) for name, s in sets.items()}
    seen: list[list[object]] = []

    class Look(Callback):
        order = -10  # after DevicePlacement (-90)

        def on_fit_start(self, state: TrainState) -> None:
            seen.append([list(moves), list(state.val_sets.values())])

    Trainer(epochs=1, verbose=False, callbacks=[DevicePlacement("cpu"), Look()]).fit(
        tiny_train, val=sets
    )
    assert seen == [[["a", "b", "c"], list(sets.values())]]


def _fit_from_a_helper(trainer: Trainer, data: TensorDataset) -> int:
    """Calls fit two frames below the test; returns the line of that call."""
    line = _line() + 1
    trainer.fit(data)
    return line


def _line() -> int:
    import inspect

    frame = inspect.currentframe()
    assert frame is not None
    assert frame.f_back is not None
    return frame.f_back.f_lineno


def test_warnings_point_at_the_users_line(tiny_train: ImageSet, tmp_path: Path) -> None:
    """Raised four calls deep in the fit, the warning names the line that called fit."""
    data = TensorDataset(tiny_train.images[:32], tiny_train.labels[:32])  # uint8, no norm
    trainer = Trainer(epochs=1, verbose=False, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _fit_from_a_helper(trainer, data)
    norm = [w for w in caught if issubclass(w.category, NormalizationWarning)]
    assert len(norm) == 1
    assert (Path(norm[0].filename).resolve(), norm[0].lineno) == (Path(__file__).resolve(), line)

    # And from a callback's hook: a Checkpoint folder of another run, found in on_fit_start.
    Trainer(epochs=1, verbose=False, callbacks=[Checkpoint(tmp_path)]).fit(tiny_train)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _line() + 1
        Trainer(epochs=1, verbose=False, callbacks=[Checkpoint(tmp_path)]).fit(tiny_train)
    other = [w for w in caught if "another run" in str(w.message)]
    assert len(other) == 1
    assert (Path(other[0].filename).resolve(), other[0].lineno) == (Path(__file__).resolve(), line)


def test_a_diverged_run_stops_and_keeps_its_last_good_checkpoint(
    tmp_path: Path, small_mnist_dir: Path, run_cli: Callable[..., Any]
) -> None:
    """``--lr 1e300`` used to train to the end, print 8% and save NaN weights with exit 0."""
    out = tmp_path / "run"
    result = run_cli(
        "train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", "3",
        "--lr", "1e300", "--batch-size", "500", "--quiet",
    )  # fmt: skip
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert len(error) == 1
    assert "the training loss became nan in epoch 1" in error[0]
    assert "lower the learning rate" in error[0]
    assert not (out / "model.safetensors").exists()
    assert not (out / "results.json").exists()
    # The loss is NaN from the first epoch on, so there was no good checkpoint to keep.
    assert list(out.glob("checkpoints/epoch-*")) == []


def test_non_finite_weights_never_become_a_checkpoint(tmp_path: Path, tiny_train: ImageSet) -> None:
    from lenet5 import CheckpointError
    from lenet5.training.checkpoint import CheckpointConnector

    state = Trainer(epochs=1, verbose=False, device="cpu").fit(tiny_train)
    with torch.no_grad():
        next(state.model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match=r"epoch 1 holds NaN or infinite weights \(features\.0\.weight\)"):
        CheckpointConnector(state).save(tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints").exists()


def test_a_crafted_checkpoint_config_is_a_checkpoint_error(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    """A trainer.pt whose settings nest 100,000 lists deep: one line, no RecursionError."""
    from lenet5 import CheckpointError
    from lenet5.training.checkpoint import CheckpointConnector, load_checkpoint

    state = Trainer(epochs=1, verbose=False, device="cpu").fit(tiny_train)
    folder = CheckpointConnector(state).save(tmp_path)
    saved = torch.load(folder / "trainer.pt", weights_only=True)
    saved["config"] = "[" * 100_000 + "]" * 100_000
    torch.save(saved, folder / "trainer.pt")
    with pytest.raises(CheckpointError, match="'config' is not the settings as JSON"):
        load_checkpoint(folder)
