"""Resuming honestly and failing safely: real training on small MNIST subsets.

A setting changed on resume is applied from the resumed step on or refused, never recorded
without effect; a damaged checkpoint gives one line naming the file, and a damaged newest
one is passed over for the newest intact one; a checkpoint that cannot be written says
where and why; exact mid-epoch resume holds on the DataLoader path too.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchvision import transforms

from helpers import quiet, same, tmpfs, weights
from lenet5 import Callback, ImageSet, TrainConfig, TrainState
from lenet5._io import WriteError
from lenet5.data import MNIST_MEAN, MNIST_STD
from lenet5.training import Checkpoint
from lenet5.training.checkpoint import (
    CheckpointError,
    Override,
    ResumeError,
    find_checkpoint,
    load_checkpoint,
    resume_overrides,
)


def no_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


class StopAtStep(Callback):
    """Stops the run after optimisation step ``step`` (mid-epoch, as Ctrl-C would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, state: TrainState) -> None:
        if state.global_step == self.step:
            state.stop("simulated Ctrl-C")


class Rates(Callback):
    """Records the optimizer's rates before every step."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []

    def on_batch_start(self, state: TrainState) -> None:
        group = state.optimizer.param_groups[0]
        self.seen.append((state.global_step + 1, group["lr"], group["weight_decay"]))


@pytest.fixture(scope="module")
def data(train_1k: ImageSet) -> ImageSet:
    """256 images: 8 steps of 32 per epoch."""
    return train_1k.subset(slice(0, 256))


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


# ------------------------------------------------------------ applied from the step on


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


# ---------------------------------------------------------------------- refused

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


# ---------------------------------------------------------------- damaged checkpoints


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


# ------------------------------------------------------------- leftovers, full disks


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


# ------------------------------------------------- exact resume on the DataLoader path


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
