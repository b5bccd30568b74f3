"""Checkpoints and resuming, in one place: the format (written, read, validated, restored
both ways), the :class:`~lenet5.Checkpoint` callback, the resume rules, damaged and hostile
checkpoints, and exact resume wherever a run can be stopped.

A setting changed on resume is applied from the resumed step on or refused, never recorded
without effect; a damaged checkpoint gives one line naming the file, and a damaged newest
one is passed over for the newest intact one; a checkpoint that cannot be written says
where and why; a resumed run ends bitwise as the uninterrupted one, on the fast and the
DataLoader paths, with augmentation, averaging, mixed precision and compilation.

Resuming from the command line (``lenet5 train --resume``) is tested in
``tests/cli/test_train.py``, after a signal in ``tests/cli/test_signals.py``, under DDP in
``tests/training/test_distributed.py``; the TensorBoard curves of a resumed run in
``tests/training/callbacks/test_tensorboard.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from helpers import (
    AUGMENTED_RECIPE,
    StopAfter,
    StopAtBatch,
    StopAtStep,
    Stream,
    assert_same_weights,
    no_temp_files,
    quiet,
    same,
    tmpfs,
    weights,
    weights_differ,
    without_times,
)
from lenet5 import Callback, ImageSet, LeNet5, TrainConfig, Trainer, TrainState
from lenet5._io import WriteError
from lenet5.data import MNIST_MEAN, MNIST_STD, DataError
from lenet5.training import Checkpoint, CSVLogger, EarlyStopping
from lenet5.training.checkpoint import (
    CheckpointError,
    Override,
    ResumeError,
    find_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    resume_overrides,
    save_checkpoint,
)


class Rates(Callback):
    """Records the optimizer's rates before every step."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []

    def on_batch_start(self, state: TrainState) -> None:
        group = state.optimizer.param_groups[0]
        self.seen.append((state.global_step + 1, group["lr"], group["weight_decay"]))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory, data: ImageSet) -> Path:
    """Checkpoints of a 2-epoch run stopped after step 5 (epoch 1, batch 5 of 8)."""
    folder = tmp_path_factory.mktemp("interrupted")
    quiet(epochs=2, seed=3, callbacks=[Checkpoint(folder), StopAtStep(5)]).fit(data)
    assert (folder / "latest").read_text() == "epoch-0001-batch-000005\n"
    return folder


@pytest.fixture(scope="module")
def uninterrupted(data: ImageSet) -> dict[str, torch.Tensor]:
    trainer = quiet(epochs=2, seed=3)
    trainer.fit(data)
    return weights(trainer.model)


# -------------------------------------------------------- the checkpoint format, both ways


class Tally(Callback):
    """A callback with state, to follow it through a checkpoint."""

    def __init__(self) -> None:
        self.count = 0

    def state_dict(self) -> dict[str, object]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.count = int(state["count"])  # type: ignore[call-overload]


def _built_state(engine: str, seed: int) -> TrainState:
    """A state as a fit has it before its loop: model, optimizer, schedule and EMA built."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from lenet5.training.optim import build_optimizer, build_scheduler

    trainer = quiet(
        epochs=3,
        scheduler="cosine",
        ema_decay=0.9,
        engine=engine,
        seed=seed,
        callbacks=[Tally()],
        default_callbacks=False,
    )
    state = TrainState(
        model=trainer.model,
        config=trainer.config,
        device=torch.device("cpu"),
        callbacks=trainer.callbacks,
    )
    state.steps_per_epoch = 4
    state.optimizer = build_optimizer(state.config, state.model, state.device)
    state.scheduler = build_scheduler(state.config, state.optimizer, 12)
    state.ema = AveragedModel(
        state.model,
        multi_avg_fn=get_ema_multi_avg_fn(0.9),  # type: ignore[no-untyped-call]
        use_buffers=True,
    )
    return state


def _implementation_flags(optimizer: torch.optim.Optimizer) -> list[dict[str, object]]:
    return [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]


def test_checkpoint_connector_round_trip(tmp_path: Path, tiny_train: ImageSet) -> None:
    from lenet5.training.checkpoint import (
        CheckpointConnector,
        Override,
        find_checkpoint,
        load_checkpoint,
    )

    saved = _built_state("fast", seed=1)
    inputs, targets = torch.randn(8, 1, 28, 28), tiny_train.labels[:8]
    saved.generator.manual_seed(5)
    saved.begin_epoch(2)
    assert saved.scheduler is not None
    assert saved.ema is not None
    for _ in range(3):  # three steps as the trainer takes them: optimizer, schedule, EMA
        logits = saved.model(inputs)
        loss = nn.functional.cross_entropy(logits, targets)
        loss.backward()  # type: ignore[no-untyped-call]
        saved.optimizer.step()
        saved.optimizer.zero_grad()
        saved.scheduler.step()
        saved.ema.update_parameters(saved.model)
        assert saved._epoch_loss_sum is not None
        assert saved._epoch_correct is not None
        saved._epoch_loss_sum += loss.detach()
        saved._epoch_correct += (logits.argmax(1) == targets).sum()
        saved._epoch_seen += 8
        saved.batch_in_epoch += 1
    saved.global_step = 7
    saved.history = [{"loss": 1.5, "lr": 0.001}]
    saved.callbacks[0].count = 11  # type: ignore[attr-defined]
    folder = CheckpointConnector(saved).save(tmp_path)
    assert folder == tmp_path / "epoch-0002-batch-000003" == find_checkpoint(tmp_path)
    _, trainer_state = load_checkpoint(tmp_path)
    assert set(trainer_state) - {"path"} == set(CheckpointConnector(saved).dump())

    restored = _built_state("plain", seed=1)  # no fused optimizer, and other weights:
    with torch.no_grad():
        for p in restored.model.parameters():
            p.add_(1.0)
    flags = _implementation_flags(restored.optimizer)
    overrides = CheckpointConnector(restored).restore(tmp_path)
    assert overrides == [Override("engine", "fast", "plain", 7)] == restored.overrides

    assert_same_weights(restored.model, saved.model)
    assert restored.ema is not None
    assert saved.ema is not None
    assert_same_weights(restored.ema, saved.ema)
    assert restored.scheduler is not None
    assert saved.scheduler is not None
    assert restored.scheduler.state_dict() == saved.scheduler.state_dict()
    ours, theirs = restored.optimizer.state_dict(), saved.optimizer.state_dict()
    for index, values in theirs["state"].items():
        for key, value in values.items():
            assert torch.equal(ours["state"][index][key], value), key
    # The implementation flags are the restoring device's, not the saved run's.
    assert _implementation_flags(restored.optimizer) == flags
    # The saved run's were others (fused on the CPU needs torch>=2.4).
    assert flags != _implementation_flags(saved.optimizer) or torch.__version__ < "2.4"
    assert (restored.epoch, restored.global_step, restored.batch_in_epoch) == (2, 7, 3)
    assert not restored.epoch_complete
    assert restored._epoch_seen == 24
    assert torch.equal(restored._epoch_loss_sum, saved._epoch_loss_sum)  # type: ignore[arg-type]
    assert torch.equal(restored._epoch_correct, saved._epoch_correct)  # type: ignore[arg-type]
    assert torch.equal(restored._epoch_generator_state, saved._epoch_generator_state)  # type: ignore[arg-type]
    assert torch.equal(restored.generator.get_state(), saved.generator.get_state())
    assert restored.history == saved.history
    assert restored.callbacks[0].count == 11  # type: ignore[attr-defined]


def test_checkpoint_of_a_complete_epoch_restores_a_complete_epoch(tmp_path: Path) -> None:
    from lenet5.training.checkpoint import CheckpointConnector

    saved = _built_state("fast", seed=1)
    saved.epoch, saved.batch_in_epoch = 1, saved.steps_per_epoch
    assert CheckpointConnector(saved).save(tmp_path).name == "epoch-0001"
    restored = _built_state("fast", seed=1)
    CheckpointConnector(restored).restore(tmp_path)
    assert (restored.epoch, restored.batch_in_epoch) == (1, restored.steps_per_epoch)
    assert restored.epoch_complete


def test_save_checkpoint_from_a_callback(tmp_path: Path, tiny_train: ImageSet) -> None:
    class SaveAtEnd(Callback):
        def on_fit_end(self, state: TrainState) -> None:
            self.path = save_checkpoint(tmp_path / "mine", state)

    saver = SaveAtEnd()
    quiet(epochs=1, callbacks=[saver]).fit(tiny_train)
    assert saver.path == tmp_path / "mine" / "epoch-0001"
    assert load_checkpoint(saver.path)[1]["global_step"] == 2


def test_callback_state_is_checkpointed_and_restored(tmp_path: Path, tiny_train: ImageSet) -> None:
    class Counter(Callback):
        def __init__(self) -> None:
            self.count = 0

        def on_batch_end(self, state: TrainState) -> None:
            self.count += 1

        def state_dict(self) -> dict[str, Any]:
            return {"count": self.count, "tensor": torch.tensor([self.count])}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            assert int(state["tensor"]) == state["count"]
            self.count = state["count"]

    first = Counter()
    quiet(epochs=3, callbacks=[first, Checkpoint(tmp_path), StopAfter(1)]).fit(tiny_train)
    assert first.count == 2
    _, saved = load_checkpoint(tmp_path)
    assert saved["callbacks"]["Counter"]["count"] == 2

    second = Counter()
    state = quiet(epochs=3, callbacks=[second, Checkpoint(tmp_path)]).fit(
        tiny_train, resume=tmp_path
    )
    assert state.global_step == 6
    assert second.count == 6  # 2 restored + 4 new steps


def test_duplicate_keys_warn() -> None:
    with pytest.warns(UserWarning, match="share the checkpoint key"):
        Trainer(callbacks=[CSVLogger("a.csv"), CSVLogger("b.csv")])


def test_non_finite_weights_never_become_a_checkpoint(tmp_path: Path, tiny_train: ImageSet) -> None:
    from lenet5 import CheckpointError
    from lenet5.training.checkpoint import CheckpointConnector

    state = Trainer(epochs=1, verbose=False, device="cpu").fit(tiny_train)
    with torch.no_grad():
        next(state.model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(
        CheckpointError, match=r"epoch 1 holds NaN or infinite weights \(features\.0\.weight\)"
    ):
        CheckpointConnector(state).save(tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints").exists()


# ----------------------------------------------------------------- the Checkpoint callback


def test_checkpoint_folders(tmp_path: Path, tiny_train: ImageSet) -> None:
    trainer = quiet(epochs=3, callbacks=[Checkpoint(tmp_path, keep=0)])
    trainer.fit(tiny_train)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch-0001", "epoch-0002", "epoch-0003", "latest"]
    for name in names[:3]:
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "model.safetensors",
            "trainer.pt",
        ]
    assert (tmp_path / "latest").read_text().strip() == "epoch-0003"
    saved = load_file(tmp_path / "epoch-0003" / "model.safetensors")
    final = trainer.model.state_dict()
    assert set(saved) == set(final)
    assert all(torch.equal(saved[k], final[k]) for k in final)
    _, trainer_state = load_checkpoint(tmp_path)
    assert trainer_state["epoch"] == 3
    assert trainer_state["global_step"] == 6
    assert no_temp_files(tmp_path) == []


def test_checkpoint_every_and_keep(tmp_path: Path, tiny_train: ImageSet) -> None:
    quiet(epochs=5, callbacks=[Checkpoint(tmp_path, every=2, keep=2)]).fit(
        tiny_train.subset(slice(0, 32))
    )
    # saved at 2, 4 and 5 (the last), the newest two kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0004", "epoch-0005", "latest"]
    assert no_temp_files(tmp_path) == []
    with pytest.raises(ValueError, match="every"):
        Checkpoint(tmp_path, every=0)


def test_checkpoint_saved_when_stopped(tmp_path: Path, tiny_train: ImageSet) -> None:
    quiet(epochs=5, callbacks=[Checkpoint(tmp_path, every=3), StopAfter(2)]).fit(tiny_train)
    assert (tmp_path / "latest").read_text().strip() == "epoch-0002"


def test_a_stop_asked_after_the_checkpoint_of_an_epoch_is_still_saved(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    class LateStop(Callback):
        order = 95  # after Checkpoint: its on_epoch_end has already passed this epoch by

        def on_epoch_end(self, state: TrainState) -> None:
            state.stop("asked late")

    checkpoint = Checkpoint(tmp_path, every=5)
    state = quiet(epochs=5, callbacks=[checkpoint, LateStop()]).fit(tiny_train)
    assert (state.epoch, state.stop_reason) == (1, "asked late")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "latest"]
    assert checkpoint.last_path == tmp_path / "epoch-0001"


def test_failed_checkpoint_leaves_no_temp_files(tmp_path: Path, tiny_train: ImageSet) -> None:
    class Explodes(Callback):
        def state_dict(self) -> dict[str, Any]:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        quiet(epochs=1, callbacks=[Checkpoint(tmp_path), Explodes()]).fit(tiny_train)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_settings_and_another_runs_folders(tmp_path: Path, tiny_train: ImageSet) -> None:
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'best'"):
        Checkpoint(tmp_path, mode="best")
    for other in ("run", "run-2"):  # two earlier runs' checkpoints
        (tmp_path / other / "epoch-0001").mkdir(parents=True)
    checkpoint = Checkpoint(tmp_path / "run")
    with pytest.warns(UserWarning, match=r"writing this run's into .*run-3 instead"):
        quiet(epochs=1, callbacks=[checkpoint]).fit(tiny_train)
    assert checkpoint.last_path == tmp_path / "run-3" / "epoch-0001"
    with pytest.raises(KeyError, match="Checkpoint monitors 'val_f1' but the metrics are"):
        quiet(epochs=1, callbacks=[Checkpoint(tmp_path / "x", monitor="val_f1")]).fit(
            tiny_train, val=tiny_train
        )


def test_prune_with_a_newest_that_is_not_there_keeps_the_newest(tmp_path: Path) -> None:
    for name in ("epoch-0001", "epoch-0002", "epoch-0003"):
        (tmp_path / name).mkdir()
    prune_checkpoints(tmp_path, keep=1, newest=tmp_path / "epoch-0009")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003"]


def test_pruning_never_touches_checkpoints_after_the_new_one(tmp_path: Path) -> None:
    for name in ("epoch-0001", "epoch-0029", "epoch-0030"):
        (tmp_path / name).mkdir()
    prune_checkpoints(tmp_path, keep=2, newest=tmp_path / "epoch-0001")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "epoch-0029", "epoch-0030"]
    prune_checkpoints(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0030"]


def test_early_stopping_and_checkpoint_monitor_a_named_set(
    tmp_path: Path, tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    from lenet5 import EarlyStopping

    best = Checkpoint(tmp_path, monitor="val_b_loss", mode="min")
    stopper = EarlyStopping(monitor="val_b_accuracy", patience=50)
    quiet(epochs=3, val_every=1, callbacks=[best, stopper]).fit(
        tiny_train, {"a": tiny_test, "b": tiny_test}
    )
    assert best.best_path == tmp_path / "best"
    assert best.best_score is not None
    assert stopper.best is not None
    assert (tmp_path / "best" / "model.safetensors").is_file()
    assert (tmp_path / "latest").read_text().strip() == "epoch-0003"


# --------------------------------------------- a resumed run ends as the uninterrupted one


@pytest.mark.parametrize("scheduler", [None, "onecycle"])
def test_resume_matches_an_uninterrupted_run(
    tmp_path: Path, train_1k: ImageSet, tiny_test: ImageSet, scheduler: str | None
) -> None:
    options = {"epochs": 3, "scheduler": scheduler, "val_every": 1, "seed": 2}
    full = quiet(**options, callbacks=[Checkpoint(tmp_path / "a")])
    full_state = full.fit(train_1k, tiny_test)

    first = quiet(**options, callbacks=[Checkpoint(tmp_path / "b"), StopAfter(1)])
    first_state = first.fit(train_1k, tiny_test)
    assert first_state.epoch == 1
    assert first_state.stop_reason == "simulated interruption"
    assert (tmp_path / "b" / "epoch-0001").is_dir()
    assert weights_differ(first.model, full.model)

    resumed = quiet(**options, callbacks=[Checkpoint(tmp_path / "b")])
    resumed_state = resumed.fit(train_1k, tiny_test, resume=tmp_path / "b")

    assert_same_weights(resumed.model, full.model)
    assert resumed_state.epoch == full_state.epoch == 3
    assert resumed_state.global_step == full_state.global_step
    assert without_times(resumed_state.history) == without_times(full_state.history)
    if scheduler is not None:
        assert resumed_state.scheduler is not None
        assert full_state.scheduler is not None
        assert resumed_state.scheduler.state_dict() == full_state.scheduler.state_dict()


@pytest.mark.parametrize("scheduler", [None, "onecycle"])
def test_resume_mid_epoch_matches_an_uninterrupted_run(
    tmp_path: Path, train_1k: ImageSet, scheduler: str | None
) -> None:
    data = train_1k.subset(slice(0, 256))  # 8 steps per epoch
    options = {"epochs": 3, "scheduler": scheduler, "seed": 6}
    full = quiet(**options)
    full_state = full.fit(data)

    stopped = quiet(**options, callbacks=[Checkpoint(tmp_path), StopAtStep(11)])
    stopped_state = stopped.fit(data)
    assert (stopped_state.epoch, stopped_state.global_step) == (2, 11)
    assert len(stopped_state.history) == 1  # epoch 2 was cut short
    assert (tmp_path / "epoch-0002-batch-000003").is_dir()
    assert (tmp_path / "latest").read_text().strip() == "epoch-0002-batch-000003"

    resumed = quiet(**options)
    resumed_state = resumed.fit(data, resume=tmp_path)
    assert resumed_state.global_step == full_state.global_step == 24
    assert_same_weights(resumed.model, full.model)
    # the resumed epoch's mean loss covers all of its batches, as in the uninterrupted run
    assert without_times(resumed_state.history) == without_times(full_state.history)


def test_resume_with_more_epochs(tmp_path: Path, train_1k: ImageSet) -> None:
    full = quiet(epochs=2, seed=4)
    full.fit(train_1k)
    short = quiet(epochs=1, seed=4, callbacks=[Checkpoint(tmp_path)])
    short.fit(train_1k)
    longer = quiet(epochs=2, seed=4)
    state = longer.fit(train_1k, resume=tmp_path)
    assert state.epoch == 2
    assert len(state.history) == 2
    assert_same_weights(longer.model, full.model)


def test_resume_from_nothing_fails(tmp_path: Path, tiny_train: ImageSet) -> None:
    from lenet5.training import CheckpointError

    with pytest.raises(CheckpointError, match="no checkpoint found"):
        quiet(epochs=1).fit(tiny_train, resume=tmp_path)


class Dropout(nn.Module):
    """LeNet-5 with dropout: global random numbers drawn at every step."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 5), nn.Tanh(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 24 * 24, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


@pytest.mark.parametrize("kind", ["plain-engine", "dataset-with-random-transform"])
def test_mid_epoch_resume_is_exact_on_the_dataloader_path(
    tmp_path: Path, data: ImageSet, kind: str
) -> None:
    if kind == "plain-engine":
        train: Any = data
        options: dict[str, Any] = {"engine": "plain"}
    else:
        # torchvision draws the rotations from torch's global generator.
        train = data.as_dataset(
            transforms.Compose(
                [
                    transforms.RandomRotation(10),
                    transforms.ToTensor(),
                    transforms.Normalize((MNIST_MEAN,), (MNIST_STD,)),
                ]
            )
        )
        options = {}
    common = {"epochs": 2, "seed": 8, **options}
    whole = quiet(Dropout(), **common)
    whole.fit(train)
    stopped = quiet(Dropout(), **common, callbacks=[Checkpoint(tmp_path), StopAtStep(11)])
    state = stopped.fit(train)
    assert (state.epoch, state.batch_in_epoch) == (2, 3)
    resumed = quiet(Dropout(), **common)
    resumed.fit(train, resume=tmp_path)
    assert same(weights(resumed.model), weights(whole.model))


def _options() -> dict[str, Any]:
    return {
        "epochs": 2,
        "batch_size": 16,
        "accumulate_grad_batches": 2,
        "grad_clip_norm": 0.5,
        "precision": "bf16-mixed",
        "augment": "affine",
        "scheduler": "cosine",
        "ema_decay": 0.9,
    }


def test_exact_resume_with_the_new_options(tmp_path: Path, tiny_train: ImageSet) -> None:
    whole = quiet(**_options())
    whole.fit(tiny_train)
    interrupted = quiet(**_options(), callbacks=[Checkpoint(tmp_path), StopAtBatch(1, 2)])
    state = interrupted.fit(tiny_train)
    assert (state.epoch, state.batch_in_epoch) == (1, 2)
    resumed = quiet(**_options(), callbacks=[Checkpoint(tmp_path)])
    resumed.fit(tiny_train, resume=tmp_path)
    assert same(weights(resumed.model), weights(whole.model))


def test_exact_resume_on_a_shuffling_dataloader(tmp_path: Path, tiny_train: ImageSet) -> None:
    def loader() -> DataLoader[Any]:
        return DataLoader(tiny_train.as_dataset(), batch_size=8, shuffle=True)

    whole = quiet(epochs=2)
    whole.fit(loader())
    quiet(epochs=2, callbacks=[Checkpoint(tmp_path), StopAtBatch(2, 3)]).fit(loader())
    resumed = quiet(epochs=2, callbacks=[Checkpoint(tmp_path)])
    resumed.fit(loader(), resume=tmp_path)
    assert same(weights(resumed.model), weights(whole.model))


@pytest.mark.slow
def test_compiled_runs_save_plain_names_and_resume_both_ways(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    from safetensors.torch import load_file

    plain_keys = list(LeNet5().state_dict())
    compiled = quiet(epochs=1, compile=True, callbacks=[Checkpoint(tmp_path / "a")])
    compiled.fit(tiny_train)
    saved = load_file(tmp_path / "a" / "epoch-0001" / "model.safetensors")
    assert sorted(saved) == sorted(plain_keys)
    assert list(compiled.model.state_dict()) == plain_keys
    # compiled -> plain, then plain -> compiled
    plain = quiet(epochs=2, callbacks=[Checkpoint(tmp_path / "a")])
    plain.fit(tiny_train, resume=tmp_path / "a")
    again = quiet(epochs=3, compile=True, callbacks=[Checkpoint(tmp_path / "a")])
    state = again.fit(tiny_train, resume=tmp_path / "a")
    assert state.epoch == 3
    assert [o.setting for o in state.overrides] == ["epochs", "compile", "epochs", "compile"]
    compiled.model.save_pretrained(tmp_path / "out")
    assert sorted(load_file(tmp_path / "out" / "model.safetensors")) == sorted(plain_keys)
    # A model compiled by the user trains and checkpoints under plain names too.
    user = quiet(torch.compile(LeNet5()), epochs=1, callbacks=[Checkpoint(tmp_path / "b")])
    user.fit(tiny_train)
    assert sorted(load_file(tmp_path / "b" / "epoch-0001" / "model.safetensors")) == sorted(
        plain_keys
    )


def test_augmented_ema_runs_are_reproducible_and_resume_exactly(
    train_1k: ImageSet, tiny_test: ImageSet, tmp_path: Path
) -> None:
    a = Trainer(**AUGMENTED_RECIPE)  # type: ignore[arg-type]
    state = a.fit(train_1k, tiny_test)
    assert state.ema is not None
    # The trained model ends with the averaged weights.
    for key, value in state.ema.module.state_dict().items():
        assert torch.equal(a.model.state_dict()[key], value)

    class StopMidEpoch(Callback):
        def on_batch_end(self, state: TrainState) -> None:
            if state.epoch == 2 and state.batch_in_epoch == 3:
                state.stop("test")

    folder = tmp_path / "ckpt"
    Trainer(callbacks=[Checkpoint(folder), StopMidEpoch()], **AUGMENTED_RECIPE).fit(
        train_1k, tiny_test
    )  # type: ignore[arg-type]
    resumed = Trainer(callbacks=[Checkpoint(folder)], **AUGMENTED_RECIPE)  # type: ignore[arg-type]
    resumed.fit(train_1k, tiny_test, resume=folder)
    for key, value in a.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_exact_resume_with_pixel_augmentation(tmp_path: Path, tiny_train: ImageSet) -> None:
    options = {"epochs": 2, "batch_size": 16, "augment": "affine,noise,fog", "ema_decay": 0.9}
    whole = quiet(**options)
    whole.fit(tiny_train)
    stopped = quiet(**options, callbacks=[Checkpoint(tmp_path), StopAtBatch(2, 1)])
    state = stopped.fit(tiny_train)
    assert (state.epoch, state.batch_in_epoch) == (2, 1)
    resumed = quiet(**options, callbacks=[Checkpoint(tmp_path)])
    resumed.fit(tiny_train, resume=tmp_path)
    assert same(weights(resumed.model), weights(whole.model))
    # The pixel augmentations are part of what was trained on.
    warps_only = quiet(**{**options, "augment": "affine"})
    warps_only.fit(tiny_train)
    assert not same(weights(warps_only.model), weights(whole.model))


def test_mixed_precision_float16_resumes_its_gradient_scaler(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    class ScalerAtStart(Callback):
        def on_epoch_start(self, state: TrainState) -> None:
            assert state.scaler is not None
            self.seen = state.scaler.state_dict()

    quiet(epochs=1, precision="16-mixed", callbacks=[Checkpoint(tmp_path)]).fit(tiny_train)
    saved = load_checkpoint(tmp_path)[1]["scaler"]
    assert saved["_growth_tracker"] == 2  # two steps without an overflow
    probe = ScalerAtStart()
    quiet(epochs=2, precision="16-mixed", callbacks=[probe]).fit(tiny_train, resume=tmp_path)
    assert probe.seen == saved


def test_best_checkpoint_and_early_stopping_state_survive_a_resume(
    tmp_path: Path, tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    """With a learning rate too small to change anything, no later validation is better:
    the best checkpoint stays the first, through the resume, and patience runs out."""

    def callbacks() -> list[Callback]:
        return [
            Checkpoint(tmp_path, monitor="val_loss", mode="min"),
            EarlyStopping(monitor="val_loss", mode="min", patience=2),
        ]

    quiet(epochs=2, lr=1e-30, val_every=1, callbacks=callbacks()).fit(tiny_train, val=tiny_test)
    resumed_callbacks = callbacks()
    state = quiet(epochs=5, lr=1e-30, val_every=1, callbacks=resumed_callbacks).fit(
        tiny_train, val=tiny_test, resume=tmp_path
    )
    checkpoint, stopping = resumed_callbacks
    assert isinstance(checkpoint, Checkpoint)
    assert isinstance(stopping, EarlyStopping)
    assert checkpoint.best_path == tmp_path / "best"
    assert load_checkpoint(tmp_path / "best")[1]["epoch"] == 1  # never bettered
    assert stopping.best_epoch == 1
    assert state.epoch == 3  # epochs 2 and 3 did not improve: patience 2, resumed at 2
    assert (
        state.stop_reason == "val_loss did not improve for 2 validations (best 2.2901 at epoch 1)"
    )


def test_a_monitored_run_not_yet_validated_resumes_without_a_best(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path, monitor="val_loss")]).fit(tiny_train)
    assert load_checkpoint(tmp_path)[1]["callbacks"] == {"Checkpoint": {"best_score": None}}
    checkpoint = Checkpoint(tmp_path, monitor="val_loss")
    quiet(epochs=2, callbacks=[checkpoint]).fit(tiny_train, resume=tmp_path)
    assert (checkpoint.best_score, checkpoint.best_path) == (None, None)


def test_csv_logger_rows_survive_a_resume(tmp_path: Path, tiny_train: ImageSet) -> None:
    path = tmp_path / "metrics.csv"
    ckpt = tmp_path / "ckpt"
    quiet(epochs=3, callbacks=[CSVLogger(path), Checkpoint(ckpt), StopAfter(1)]).fit(tiny_train)
    assert len(path.read_text().splitlines()) == 2
    quiet(epochs=3, callbacks=[CSVLogger(path), Checkpoint(ckpt)]).fit(tiny_train, resume=ckpt)
    with path.open(newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]


# ------------------------------------- a changed setting, applied from the resumed step on


def test_an_unchanged_resume_ends_as_if_never_stopped(
    interrupted: Path, data: ImageSet, uninterrupted: dict[str, torch.Tensor]
) -> None:
    trainer = quiet(epochs=2, seed=3)
    state = trainer.fit(data, resume=interrupted)
    assert state.overrides == []
    assert same(weights(trainer.model), uninterrupted)


def test_a_new_lr_is_the_optimizers_from_the_resumed_step_on(
    interrupted: Path, data: ImageSet, uninterrupted: dict[str, torch.Tensor]
) -> None:
    rates = Rates()
    trainer = quiet(epochs=2, seed=3, lr=0.01, weight_decay=1e-4, callbacks=[rates])
    state = trainer.fit(data, resume=interrupted)
    assert state.overrides == [
        Override("lr", 0.001, 0.01, 5),
        Override("weight_decay", 0.0, 1e-4, 5),
    ]
    # Every step after the checkpoint's fifth ran with the new rates, not the saved ones.
    assert rates.seen == [(step, 0.01, 1e-4) for step in range(6, 17)]
    assert not same(weights(trainer.model), uninterrupted)


def test_sgd_momentum_is_applied(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=1, optimizer="sgd", callbacks=[Checkpoint(tmp_path)]).fit(data)
    trainer = quiet(epochs=2, optimizer="sgd", momentum=0.0)
    state = trainer.fit(data, resume=tmp_path)
    group = state.optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.0, False)
    assert state.overrides == [Override("epochs", 1, 2, 8), Override("momentum", 0.9, 0.0, 8)]


def test_more_epochs_without_a_schedule(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(data)
    state = quiet(epochs=3).fit(data, resume=tmp_path)
    assert (state.epoch, state.global_step) == (3, 24)
    assert state.overrides == [Override("epochs", 1, 3, 8)]


def test_averaging_turned_on_at_resume_starts_from_the_restored_weights(
    tmp_path: Path, data: ImageSet
) -> None:
    first = quiet(epochs=1, callbacks=[Checkpoint(tmp_path)])
    first.fit(data)
    # Nothing is left to train: the result is the checkpoint's weights, not the average's
    # starting point (the freshly initialised model).
    resumed = quiet(epochs=1, ema_decay=0.9)
    state = resumed.fit(data, resume=tmp_path)
    assert state.overrides == [Override("ema_decay", 0.0, 0.9, 8)]
    assert same(weights(resumed.model), weights(first.model))


def test_overrides_of_earlier_resumes_are_kept(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(data)
    quiet(epochs=2, lr=0.002, callbacks=[Checkpoint(tmp_path)]).fit(data, resume=tmp_path)
    state = quiet(epochs=3, lr=0.002).fit(data, resume=tmp_path)
    assert state.overrides == [
        Override("epochs", 1, 2, 8),
        Override("lr", 0.001, 0.002, 8),
        Override("epochs", 2, 3, 16),
    ]
    _, saved = load_checkpoint(tmp_path)
    assert saved["overrides"] == [o.to_dict() for o in state.overrides[:2]]


# ------------------------------------------------------------------------------ or refused


REFUSED = {
    "batch_size": 16,
    "optimizer": "sgd",
    "scheduler": "cosine",
    "seed": 4,
    "val_split": 32,
}


@pytest.mark.parametrize(("setting", "value"), REFUSED.items())
def test_a_setting_that_cannot_take_effect_is_refused_before_anything_changes(
    interrupted: Path, data: ImageSet, setting: str, value: object
) -> None:
    options: dict[str, Any] = {"epochs": 2, "seed": 3, setting: value}
    trainer = quiet(**options)
    before = weights(trainer.model)
    with pytest.raises(ResumeError) as info:
        trainer.fit(data, resume=interrupted)
    assert info.value.settings == (setting,)
    saved = TrainConfig(epochs=2, seed=3).to_dict()[setting]
    message = str(info.value)
    assert message.startswith(
        f"{interrupted / 'epoch-0001-batch-000005'}: cannot resume with {setting} {value!r} "
        f"(trained with {saved!r}: "
    )
    assert message.endswith(f"; resume with {setting}={saved!r}, or start a new run")
    assert "\n" not in message
    assert same(weights(trainer.model), before)


def test_the_refusal_names_each_setting_and_what_to_do(interrupted: Path, data: ImageSet) -> None:
    with pytest.raises(ResumeError) as info:
        quiet(epochs=2, seed=3, batch_size=16, optimizer="adamw").fit(data, resume=interrupted)
    assert str(info.value) == (
        f"{interrupted / 'epoch-0001-batch-000005'}: cannot resume with batch_size 16 "
        "(trained with 32: the batches of every epoch, and the checkpoint's place among them, "
        "depend on it); optimizer 'adamw' (trained with 'adam': the saved optimizer state "
        "belongs to the optimizer it was trained with); resume with batch_size=32 and "
        "optimizer='adam', or start a new run"
    )
    assert info.value.settings == ("batch_size", "optimizer")


def test_fewer_epochs_than_done_are_refused(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=3, callbacks=[Checkpoint(tmp_path)]).fit(data)
    with pytest.raises(ResumeError) as info:
        quiet(epochs=2).fit(data, resume=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'epoch-0003'}: cannot resume with epochs 2 (trained with 3: the run has "
        "reached epoch 3 already); resume with epochs >= 3, or start a new run"
    )


def test_a_schedule_keeps_its_length_and_its_rate(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=2, scheduler="onecycle", callbacks=[Checkpoint(tmp_path)]).fit(data)
    with pytest.raises(ResumeError) as info:
        quiet(epochs=4, lr=0.01, scheduler="onecycle").fit(data, resume=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'epoch-0002'}: cannot resume with epochs 4 (trained with 2: the "
        "'onecycle' schedule is laid out for that length); lr 0.01 (trained with 0.001: the "
        "'onecycle' schedule sets it at every step); resume with the same number of epochs "
        "(2) and lr=0.001, or start a new run"
    )


def test_a_scheduled_run_cannot_change_its_length_on_resume(
    tiny_train: ImageSet, tmp_path: Path
) -> None:
    Trainer(callbacks=[Checkpoint(tmp_path)], epochs=2, scheduler="onecycle", verbose=False).fit(
        tiny_train
    )
    longer = Trainer(
        callbacks=[Checkpoint(tmp_path)], epochs=4, scheduler="onecycle", verbose=False
    )
    with pytest.raises(CheckpointError, match="same number of epochs"):
        longer.fit(tiny_train, resume=tmp_path)
    # Without a schedule, more epochs are fine.
    Trainer(callbacks=[Checkpoint(tmp_path / "b")], epochs=1, verbose=False).fit(tiny_train)
    Trainer(epochs=2, verbose=False).fit(tiny_train, resume=tmp_path / "b")


# Every field, with a changed value and whether a resumed run applies it. A new field of
# TrainConfig fails test_every_setting_has_a_rule until it is decided here.
TABLE: dict[str, tuple[object, bool]] = {
    "epochs": (20, True),
    "batch_size": (64, False),
    "lr": (0.01, True),
    "optimizer": ("sgd", False),
    "weight_decay": (0.1, True),
    "no_decay": (True, False),  # the saved optimizer state is laid out in its groups
    "param_groups": (lambda model: [{"params": model.parameters()}], False),
    "momentum": (0.5, False),  # adam does not use it
    "scheduler": ("cosine", False),
    "label_smoothing": (0.1, True),
    "augment": ("affine", True),
    "ema_decay": (0.99, True),
    "device": ("cuda", True),
    "seed": (1, False),
    "deterministic": (True, True),
    "val_every": (1, True),
    "val_split": (100, False),
    "eval_batch_size": (64, True),
    "verbose": (False, True),
    "engine": ("plain", True),
    "strategy": ("single", True),
    "dist_timeout": (30.0, True),
    "precision": ("bf16-mixed", True),
    "grad_clip_norm": (1.0, True),
    "accumulate_grad_batches": (2, False),
    "compile": (True, True),
    "val_every_steps": (100, True),
    "mean": (0.5, False),  # given with std, which is refused alike
    "std": (0.2, False),
}


#: Settings that are only valid together.
PAIRED = {"mean": 0.5, "std": 0.2}


def test_every_setting_has_a_rule() -> None:
    assert list(TABLE) == [f.name for f in dataclasses.fields(TrainConfig)]


@pytest.mark.parametrize(("setting", "rule"), TABLE.items())
def test_the_resume_table(setting: str, rule: tuple[object, bool]) -> None:
    value, applied = rule
    saved = TrainConfig(epochs=10).to_dict()
    changes = PAIRED if setting in PAIRED else {setting: value}
    current = TrainConfig.from_dict({**saved, **changes})
    if setting in PAIRED:
        with pytest.raises(ResumeError) as info:
            resume_overrides(saved, current, epochs_done=5, global_step=40)
        assert info.value.settings == tuple(PAIRED)
        return
    if applied:
        overrides = resume_overrides(saved, current, epochs_done=5, global_step=40)
        assert overrides == [Override(setting, saved[setting], value, 40)]
    else:
        with pytest.raises(ResumeError) as info:
            resume_overrides(saved, current, epochs_done=5, global_step=40)
        assert info.value.settings == (setting,)


def test_settings_that_follow_the_optimizer_or_the_schedule() -> None:
    sgd = TrainConfig(optimizer="sgd").to_dict()
    assert resume_overrides(
        sgd, TrainConfig(optimizer="sgd", momentum=0.5), epochs_done=1, global_step=1
    ) == [Override("momentum", 0.9, 0.5, 1)]
    cosine = TrainConfig(scheduler="cosine").to_dict()
    with pytest.raises(ResumeError, match="'cosine' schedule sets it at every step"):
        resume_overrides(
            cosine, TrainConfig(scheduler="cosine", lr=0.1), epochs_done=1, global_step=1
        )

    def build(params: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.1)

    built = TrainConfig(optimizer=build)
    with pytest.raises(ResumeError, match="built by a callable, which sets its own"):
        resume_overrides(built.to_dict(), built.replace(lr=0.5), epochs_done=1, global_step=1)
    onecycle = TrainConfig(optimizer="sgd", scheduler="onecycle")
    with pytest.raises(ResumeError, match="'onecycle' schedule may set it at every step"):
        resume_overrides(
            onecycle.to_dict(), onecycle.replace(momentum=0.5), epochs_done=1, global_step=1
        )
    # The same setting spelt another way is no change.
    spelt = TrainConfig(optimizer="Adam", scheduler="none")
    assert resume_overrides(TrainConfig().to_dict(), spelt, epochs_done=1, global_step=1) == []
    # A field the checkpoint's settings lack counts as its default.
    partial = {k: v for k, v in TrainConfig().to_dict().items() if k != "dist_timeout"}
    assert resume_overrides(partial, TrainConfig(), epochs_done=1, global_step=1) == []


def test_another_number_of_processes_or_examples_is_refused(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(data)
    trainer_pt = tmp_path / "epoch-0001" / "trainer.pt"
    saved = torch.load(trainer_pt, weights_only=True)
    torch.save({**saved, "world_size": 2}, trainer_pt)
    with pytest.raises(ResumeError, match=r"cannot resume on 1 process\(es\) \(trained on 2"):
        quiet(epochs=2).fit(data, resume=tmp_path)
    torch.save(saved, trainer_pt)
    with pytest.raises(ResumeError) as info:
        quiet(epochs=2).fit(data.subset(slice(0, 200)), resume=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'epoch-0001'}: cannot resume on 200 training examples (trained on 256: "
        "the batches of every epoch depend on them); resume with the same training data, or "
        "start a new run"
    )


def test_a_resumed_epoch_whose_data_runs_short_is_refused(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet(epochs=1, callbacks=[Checkpoint(tmp_path), StopAtBatch(1, 2)]).fit(
            Stream(tiny_train, 128)
        )
        with pytest.raises(DataError, match=r"ran out after 1 batches, before the 2 that the"):
            quiet(epochs=1).fit(Stream(tiny_train, 32), resume=tmp_path)


# -------------------------------------------------- damaged, newer and hostile checkpoints


@pytest.fixture
def two_checkpoints(tmp_path: Path, data: ImageSet) -> Path:
    """A folder with epoch-0001 and epoch-0002 (latest) of a 3-epoch run."""
    folder = tmp_path / "ckpt"
    quiet(epochs=3, seed=5, callbacks=[Checkpoint(folder, keep=0)]).fit(data)
    (folder / "epoch-0003").rename(tmp_path / "epoch-0003-aside")
    (folder / "latest").write_text("epoch-0002\n")
    return folder


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", ["trainer.pt", "model.safetensors"])
def test_a_damaged_newest_checkpoint_is_passed_over(
    two_checkpoints: Path, data: ImageSet, name: str
) -> None:
    damaged = two_checkpoints / "epoch-0002" / name
    _truncate(damaged)
    with pytest.warns(UserWarning, match="passing over") as record:
        found = find_checkpoint(two_checkpoints)
    assert found == two_checkpoints / "epoch-0001"
    (warning,) = record
    message = str(warning.message)
    assert message.startswith(f"passing over a damaged checkpoint: {damaged} is damaged: ")
    assert message.endswith(f"; using {two_checkpoints / 'epoch-0001'}, the newest intact one")
    assert warning.filename == __file__
    # Resuming from it goes on from epoch 1 and ends as the run did.
    whole = quiet(epochs=3, seed=5)
    whole.fit(data)
    resumed = quiet(epochs=3, seed=5)
    with pytest.warns(UserWarning, match="passing over a damaged checkpoint") as record:
        resumed.fit(data, resume=two_checkpoints.parent / "ckpt")
    assert record[0].filename == __file__  # the caller of fit
    assert same(weights(resumed.model), weights(whole.model))


def test_an_explicit_damaged_checkpoint_is_an_error(two_checkpoints: Path) -> None:
    folder = two_checkpoints / "epoch-0002"
    (folder / "trainer.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError) as info:
        find_checkpoint(folder)
    assert str(info.value) == (
        f"{folder / 'trainer.pt'} is damaged: it is not a file that torch.save wrote"
    )
    with pytest.raises(CheckpointError, match="is damaged"):
        find_checkpoint(folder / "trainer.pt")  # a file of it means the folder
    (folder / "trainer.pt").unlink()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder)
    assert str(info.value) == f"checkpoint {folder} is damaged: trainer.pt is missing"


def test_no_intact_checkpoint(two_checkpoints: Path) -> None:
    for name in ("epoch-0001", "epoch-0002"):
        _truncate(two_checkpoints / name / "trainer.pt")
    with pytest.raises(CheckpointError) as info:
        find_checkpoint(two_checkpoints)
    message = str(info.value)
    assert message == (
        f"no intact checkpoint in {two_checkpoints}: 2 found, all damaged; the newest: "
        f"{two_checkpoints / 'epoch-0002' / 'trainer.pt'} is damaged: truncated or corrupt "
        "(RuntimeError)"
    )
    assert "weights_only" not in message


def test_a_garbage_latest_file_is_ignored(two_checkpoints: Path) -> None:
    (two_checkpoints / "latest").write_bytes(os.urandom(300))
    assert find_checkpoint(two_checkpoints) == two_checkpoints / "epoch-0002"


def _rewrite(trainer_pt: Path, **changes: object) -> None:
    saved = torch.load(trainer_pt, weights_only=True)
    saved.update(changes)
    for key in [k for k, v in changes.items() if v is _DROP]:
        del saved[key]
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    trainer_pt.write_bytes(buffer.getvalue())


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"rng": _DROP, "history": _DROP}, "it lacks 'history', 'rng'"),
        ({"epoch": "3"}, "'epoch' is not a non-negative integer"),
        ({"config": "{not json"}, "'config' is not the settings as JSON"),
        (
            {"rng": {"torch": torch.zeros(3, dtype=torch.uint8)}},
            "'rng' is not the random-generator states",
        ),
        ({"history": [{"loss": "low"}]}, "'history' is not a list of metric dicts"),
        ({"optimizer": {"state": {}}}, "'optimizer' is not an optimizer state"),
        ({"world_size": 0}, "'world_size' is not a positive integer"),
    ],
)
def test_the_trainer_state_structure_is_checked(
    tmp_path: Path, data: ImageSet, changes: dict[str, object], problem: str
) -> None:
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(data)
    trainer_pt = tmp_path / "epoch-0001" / "trainer.pt"
    _rewrite(trainer_pt, **changes)
    with pytest.raises(CheckpointError) as info:
        quiet(epochs=1).fit(data, resume=tmp_path / "epoch-0001")
    assert str(info.value) == f"{trainer_pt} is damaged: {problem}"


def test_a_checkpoint_that_does_not_fit_says_so(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=2, callbacks=[Checkpoint(tmp_path), StopAtStep(3)]).fit(data)
    folder = tmp_path / "epoch-0001-batch-000003"
    _, saved = load_checkpoint(folder)
    _rewrite(folder / "trainer.pt", epoch_progress={**saved["epoch_progress"], "batches": 99})
    with pytest.raises(CheckpointError) as info:
        quiet(epochs=2).fit(data, resume=folder)
    assert str(info.value) == (
        f"checkpoint {folder} does not fit this run: it stopped after batch 99 of an epoch "
        "of 8 batches"
    )


@pytest.fixture(scope="module")
def one_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_train: ImageSet) -> Path:
    """The folder of checkpoints of a one-epoch fit (``epoch-0001``, ``latest``)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    quiet(epochs=1, callbacks=[Checkpoint(folder)]).fit(tiny_train)
    return folder


def _damaged(one_checkpoint: Path, tmp_path: Path, change: Callable[[Any], Any]) -> Path:
    """A copy of the checkpoint whose ``trainer.pt`` holds ``change(saved state)``."""
    folder = tmp_path / "epoch-0001"
    shutil.copytree(one_checkpoint / "epoch-0001", folder)
    saved = torch.load(folder / "trainer.pt", weights_only=True)
    buffer = io.BytesIO()
    torch.save(change(saved), buffer)
    (folder / "trainer.pt").write_bytes(buffer.getvalue())
    return folder


def _with(**changes: Any) -> Callable[[Any], Any]:
    return lambda saved: {**saved, **changes}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda saved: list(saved), " is damaged: it holds a list, not a trainer state"),
        (
            _with(rng={"torch": torch.zeros(4), "generator": torch.zeros(4)}),
            " is damaged: 'rng' is not the random-generator states",
        ),
        (_with(epoch_progress={"batches": 1}), " is damaged: 'epoch_progress' is not the progress"),
        (_with(format_version=2), ": checkpoint format 2 is not supported (expected 1)"),
    ],
)
def test_a_damaged_or_newer_trainer_state_is_named(
    one_checkpoint: Path, tmp_path: Path, change: Callable[[Any], Any], problem: str
) -> None:
    folder = _damaged(one_checkpoint, tmp_path, change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder)
    assert str(info.value).startswith(f"{folder / 'trainer.pt'}{problem}")


def test_a_checkpoint_without_optimizer_state_resumes_with_a_fresh_one(
    one_checkpoint: Path, tmp_path: Path, tiny_train: ImageSet
) -> None:
    folder = _damaged(one_checkpoint, tmp_path, _with(optimizer=None))
    state = quiet(epochs=2).fit(tiny_train, resume=folder)
    assert (state.epoch, state.global_step) == (2, 4)


def test_weights_of_another_dtype_do_not_fit(
    one_checkpoint: Path, tmp_path: Path, tiny_train: ImageSet
) -> None:
    folder = tmp_path / "epoch-0001"
    shutil.copytree(one_checkpoint / "epoch-0001", folder)
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v.double() for k, v in tensors.items()}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"is torch.float64 in the checkpoint, torch.float32"):
        quiet(epochs=2).fit(tiny_train, resume=folder)


def test_weights_written_by_a_wrapper_resume_into_the_plain_model(
    one_checkpoint: Path, tmp_path: Path, tiny_train: ImageSet
) -> None:
    from lenet5.training._modules import unwrap

    folder = tmp_path / "epoch-0001"
    shutil.copytree(one_checkpoint / "epoch-0001", folder)
    tensors = load_file(folder / "model.safetensors")
    save_file(
        {f"module._orig_mod.{k}": v for k, v in tensors.items()}, folder / "model.safetensors"
    )
    model = LeNet5()
    quiet(model, epochs=1).fit(tiny_train, resume=folder)  # done: the weights restored only
    assert all(torch.equal(model.state_dict()[k], v) for k, v in tensors.items())
    assert unwrap(nn.DataParallel(model)) is model


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


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, data: ImageSet) -> None:
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path / "ckpt")]).fit(data)
    trainer_pt = tmp_path / "ckpt" / "epoch-0001" / "trainer.pt"
    marker = tmp_path / "pwned"
    saved = torch.load(trainer_pt, weights_only=True)
    torch.save({**saved, "callbacks": {"Evil": {"payload": _Evil(marker)}}}, trainer_pt)
    for resume in (tmp_path / "ckpt" / "epoch-0001", tmp_path / "ckpt"):
        with pytest.raises(CheckpointError) as info:
            quiet(epochs=2).fit(data, resume=resume)
        assert str(info.value).endswith(
            f"{trainer_pt} is damaged: it refers to the Python object posix.system, which a "
            "checkpoint never holds (refused; nothing in it was run)"
        )
        assert "weights_only" not in str(info.value)
    assert not marker.exists()


# ------------------------------------------------------------------- leftovers, full disks


def test_leftovers_of_a_crashed_save_are_removed_when_a_fit_starts(
    tmp_path: Path, data: ImageSet
) -> None:
    (tmp_path / ".epoch-0002.x1y2.tmp").mkdir()
    (tmp_path / ".epoch-0002.x1y2.tmp" / "trainer.pt").write_bytes(b"half")
    (tmp_path / ".latest.abc.tmp").write_text("epoch-0002")
    (tmp_path / "notes.txt").write_text("mine")
    quiet(epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "latest", "notes.txt"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs): room for one checkpoint of LeNet-5 and Adam, not two."""
    with tmpfs(tmp_path / "disk", "size=1m") as mount:
        yield mount


def test_a_full_disk_names_the_checkpoint_and_keeps_the_last_one(
    small_disk: Path, data: ImageSet
) -> None:
    folder = small_disk / "ckpt"
    with pytest.raises(WriteError) as info:
        quiet(epochs=2, callbacks=[Checkpoint(folder, keep=0)]).fit(data)
    assert str(info.value) == f"cannot write {folder / 'epoch-0002'}: No space left on device"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0001", "latest"]
    assert no_temp_files(folder) == []
    assert find_checkpoint(folder) == folder / "epoch-0001"
