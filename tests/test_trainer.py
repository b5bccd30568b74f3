"""The Trainer on real MNIST subsets: configuration, reproducibility, resume, data paths."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from torchvision.transforms import Compose, Normalize, ToTensor

from lenet5 import Callback, EvalResult, ImageSet, LeNet5, TrainConfig, Trainer, TrainState
from lenet5.data import MNIST_MEAN, MNIST_STD, DataError
from lenet5.training import Checkpoint, ConfigError, DeviceError, evaluate

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def quiet(**kwargs: object) -> Trainer:
    """A CPU trainer that prints nothing."""
    options: dict[str, object] = {"verbose": False, "device": "cpu"}
    options.update(kwargs)
    return Trainer(**options)  # type: ignore[arg-type]


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), f"{name} differs"


def without_times(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]


def weights_differ(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------ config


def test_defaults_are_the_reference_recipe() -> None:
    trainer = Trainer()
    config = trainer.config
    assert config == TrainConfig()
    assert config.optimizer == "adam"
    assert config.lr == 1e-3
    assert config.batch_size == 32
    assert config.epochs == 100
    assert config.val_every == 20
    assert config.scheduler is None
    assert config.weight_decay == 0.0
    assert config.label_smoothing == 0.0
    assert config.seed == 0
    assert isinstance(trainer.model, LeNet5)


def test_keyword_options_reach_the_config() -> None:
    trainer = Trainer(
        epochs=3,
        batch_size=64,
        lr=0.01,
        optimizer="sgd",
        scheduler="cosine",
        device="cpu",
        seed=7,
        deterministic=True,
        val_every=2,
    )
    config = trainer.config
    assert (config.epochs, config.batch_size, config.lr) == (3, 64, 0.01)
    assert (config.optimizer, config.scheduler, config.device) == ("sgd", "cosine", "cpu")
    assert (config.seed, config.deterministic, config.val_every) == (7, True, 2)


def test_options_take_effect(tiny_train: ImageSet) -> None:
    trainer = quiet(epochs=2, batch_size=16, lr=0.05, optimizer="sgd", scheduler="cosine")
    state = trainer.fit(tiny_train)
    assert isinstance(state.optimizer, torch.optim.SGD)
    assert isinstance(state.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert state.steps_per_epoch == 4  # 64 images in batches of 16
    assert state.global_step == 8
    assert state.epoch == 2
    assert len(state.history) == 2
    # cosine annealing over the 8 steps ends at (almost) zero learning rate
    assert state.history[0]["lr"] == pytest.approx(0.025, rel=1e-6)
    assert state.history[1]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_seed_changes_the_initial_weights() -> None:
    assert_same_weights(Trainer(seed=3).model, Trainer(seed=3).model)
    assert weights_differ(Trainer(seed=3).model, Trainer(seed=4).model)


def test_config_and_keywords_combine() -> None:
    base = TrainConfig(epochs=5, lr=0.1, verbose=False)
    trainer = Trainer(config=base, batch_size=8)
    assert (trainer.config.epochs, trainer.config.lr, trainer.config.batch_size) == (5, 0.1, 8)
    assert base.batch_size == 32  # the given config is not modified
    assert Trainer(config=base).config is base


def test_callable_optimizer_and_scheduler(tiny_train: ImageSet) -> None:
    def make_sgd(params: object) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.01)  # type: ignore[arg-type]

    def make_step(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
        assert total == 2
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    config = TrainConfig(optimizer=make_sgd, scheduler=make_step, lr=0.01, verbose=False)
    # Keyword overrides on top of a config keep the callables (not their names).
    trainer = Trainer(config=config, epochs=1, device="cpu")
    assert trainer.config.optimizer is make_sgd
    assert trainer.config.scheduler is make_step
    state = trainer.fit(tiny_train)
    assert isinstance(state.optimizer, torch.optim.SGD)
    assert state.history[0]["lr"] == pytest.approx(0.0025)
    assert trainer.config.to_dict()["optimizer"].endswith("make_sgd")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"epochs": -1}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"optimizer": 3}, "optimizer"),
        ({"scheduler": "step"}, "scheduler"),
        ({"device": "tpu"}, "device"),
        ({"seed": -1}, "seed"),
        ({"val_every": -1}, "val_every"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
    ids=repr,
)
def test_bad_values_are_rejected_naming_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**options)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=field):
        Trainer(**options)


def test_unknown_optimizer_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adagrad'.*adam, adamw, sgd"):
        TrainConfig(optimizer="adagrad")


def test_unknown_option_names_are_rejected() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown training option 'epoch' \(did you mean 'epochs'"
    ):
        Trainer(epoch=3)
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainConfig.from_kwargs({"learning_rate": 0.1})


def test_config_round_trips_through_dict() -> None:
    config = TrainConfig(epochs=4, scheduler="onecycle", seed=None)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.replace(lr=0.5).lr == 0.5
    with pytest.raises(ConfigError):
        config.replace(lr=-1)


# --------------------------------------------------------------- reproducibility


def test_same_seed_gives_bitwise_identical_weights(train_1k: ImageSet) -> None:
    a = quiet(epochs=2, seed=11)
    b = quiet(epochs=2, seed=11)
    state_a, state_b = a.fit(train_1k), b.fit(train_1k)
    assert_same_weights(a.model, b.model)
    assert state_a.history[-1]["loss"] == state_b.history[-1]["loss"]
    c = quiet(epochs=2, seed=12)
    c.fit(train_1k)
    assert weights_differ(a.model, c.model)


def test_same_seed_on_the_dataloader_path(train_1k: ImageSet) -> None:
    data = train_1k.subset(slice(0, 256)).as_dataset()
    a, b = quiet(epochs=1, seed=5), quiet(epochs=1, seed=5)
    a.fit(data)
    b.fit(data)
    assert_same_weights(a.model, b.model)


def test_deterministic_mode(tiny_train: ImageSet, restore_determinism: None) -> None:
    seen: list[bool] = []

    class Probe(Callback):
        def on_batch_end(self, state: TrainState) -> None:
            seen.append(torch.are_deterministic_algorithms_enabled())

    torch.use_deterministic_algorithms(False)
    a = quiet(epochs=1, deterministic=True, callbacks=[Probe()])
    b = quiet(epochs=1, deterministic=True)
    a.fit(tiny_train)
    assert seen
    assert all(seen)
    assert not torch.are_deterministic_algorithms_enabled()  # ... and put back after it
    b.fit(tiny_train)
    assert_same_weights(a.model, b.model)


def test_unseeded_runs_shuffle_differently(tiny_train: ImageSet) -> None:
    seeds = {quiet(epochs=1, seed=None).fit(tiny_train).generator.initial_seed() for _ in range(3)}
    assert len(seeds) == 3
    assert quiet(epochs=1, seed=9).fit(tiny_train).generator.initial_seed() == 9


# ------------------------------------------------------------------------ resume


class StopAfter(Callback):
    """Stops the run at the end of epoch ``epoch``, as an interruption would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            state.stop("simulated interruption")


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


class StopAtStep(Callback):
    """Stops the run after optimisation step ``step``, in the middle of an epoch."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, state: TrainState) -> None:
        if state.global_step == self.step:
            state.stop("simulated Ctrl-C")


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


# ------------------------------------------------------------------- data paths


def _normalizing() -> Compose:
    return Compose([ToTensor(), Normalize((MNIST_MEAN,), (MNIST_STD,))])


@pytest.mark.parametrize("kind", ["imageset", "tensordataset", "torchvision-transform"])
def test_fit_accepts_data_and_learns(kind: str, train_2k: ImageSet, test_1k: ImageSet) -> None:
    if kind == "imageset":
        train: object = train_2k
        test: object = test_1k
    elif kind == "tensordataset":
        train = TensorDataset(train_2k.images, train_2k.labels)
        test = TensorDataset(test_1k.images.unsqueeze(1), test_1k.labels)
    else:
        train = train_2k.as_dataset(transform=_normalizing())
        test = test_1k.as_dataset(transform=_normalizing())
    trainer = quiet(epochs=2, val_every=1)
    state = trainer.fit(train, test)  # type: ignore[arg-type]
    expected = torch.utils.data.DataLoader if kind == "torchvision-transform" else ImageSet
    assert isinstance(state.train_data, expected)
    assert state.steps_per_epoch == math.ceil(2000 / 32)
    result = trainer.evaluate(test)  # type: ignore[arg-type]
    assert result.total == 1000
    assert result.accuracy > 80.0
    assert state.history[-1]["val_accuracy"] == pytest.approx(result.accuracy)
    assert state.history[1]["loss"] < state.history[0]["loss"]


def test_fit_with_plain_uint8_dataset(tiny_train: ImageSet) -> None:
    state = quiet(epochs=1).fit(tiny_train.as_dataset())
    assert isinstance(state.train_data, torch.utils.data.DataLoader)
    assert state.global_step == 2
    assert math.isfinite(state.history[0]["loss"])


def test_fast_path_keeps_one_resident_tensor(train_2k: ImageSet) -> None:
    trainer = Trainer(epochs=1, verbose=False)  # device "auto"
    state = trainer.fit(train_2k)
    assert isinstance(state.train_data, ImageSet)
    assert state.train_data.device.type == state.device.type
    assert state.train_data.images.dtype == torch.uint8  # normalised per batch, not up front
    assert next(trainer.model.parameters()).device.type == state.device.type
    if state.device.type == "cpu":
        assert state.train_data is train_2k  # no copy at all on the CPU


def test_val_split_holds_out_training_images(train_1k: ImageSet) -> None:
    state = quiet(epochs=1, val_split=200).fit(train_1k)
    assert isinstance(state.train_data, ImageSet)
    assert isinstance(state.val_data, ImageSet)
    assert (len(state.train_data), len(state.val_data)) == (800, 200)
    assert "val_accuracy" in state.history[-1]  # the last epoch always validates


def test_empty_training_data_is_rejected(train_1k: ImageSet) -> None:
    with pytest.raises(DataError, match="empty"):
        quiet(epochs=1).fit(train_1k.subset(slice(0, 0)))


# --------------------------------------------------------------------- evaluate


def test_evaluate_result(train_1k: ImageSet, test_1k: ImageSet) -> None:
    trainer = quiet(epochs=1)
    trainer.fit(train_1k)
    result = trainer.evaluate(test_1k)
    assert isinstance(result, EvalResult)
    assert result.total == 1000
    assert result.confusion.shape == (10, 10)
    assert result.confusion.dtype == torch.int64
    assert int(result.confusion.sum()) == 1000
    assert result.confusion.sum(dim=1).tolist() == test_1k.class_counts().tolist()
    assert result.correct == int(result.confusion.trace())
    assert result.accuracy == pytest.approx(100.0 * result.correct / 1000)
    assert 0 < result.loss < 10
    per_class = result.per_class_accuracy
    assert len(per_class) == 10
    assert all(0.0 <= a <= 100.0 for a in per_class)

    # The same numbers by hand.
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(test_1k.normalized())
    assert result.correct == int((logits.argmax(1) == test_1k.labels).sum())
    expected_loss = nn.functional.cross_entropy(logits, test_1k.labels).item()
    assert result.loss == pytest.approx(expected_loss, rel=1e-4)

    # Batch size and data form do not change the result.
    assert trainer.evaluate(test_1k, batch_size=7).correct == result.correct
    as_dataset = trainer.evaluate(test_1k.as_dataset())
    assert as_dataset.correct == result.correct
    assert torch.equal(as_dataset.confusion, result.confusion)
    assert evaluate(model, test_1k).correct == result.correct


def test_evaluate_keeps_training_mode(tiny_test: ImageSet) -> None:
    model = LeNet5().train()
    evaluate(model, tiny_test)
    assert model.training


def test_per_class_accuracy_nan_for_absent_class(tiny_test: ImageSet) -> None:
    only_sevens = tiny_test.subset((tiny_test.labels == 7).nonzero().flatten())
    result = evaluate(LeNet5(), only_sevens)
    assert result.total == len(only_sevens)
    assert not math.isnan(result.per_class_accuracy[7])
    assert math.isnan(result.per_class_accuracy[0])


# ----------------------------------------------------------------------- devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda_raises_device_error(tiny_train: ImageSet) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available"):
        Trainer(epochs=1, device="cuda", verbose=False).fit(tiny_train)


@pytest.mark.gpu
@requires_cuda
def test_fit_on_cuda(train_2k: ImageSet, test_1k: ImageSet) -> None:
    trainer = Trainer(epochs=2, device="cuda", verbose=False, val_every=1)
    state = trainer.fit(train_2k, test_1k)
    assert state.device.type == "cuda"
    assert isinstance(state.train_data, ImageSet)
    assert state.train_data.device.type == "cuda"
    assert next(trainer.model.parameters()).is_cuda
    assert state.history[-1]["val_accuracy"] > 80.0


@pytest.mark.gpu
@requires_cuda
def test_cuda_deterministic_runs_match(train_1k: ImageSet, restore_determinism: None) -> None:
    a = Trainer(epochs=1, device="cuda", deterministic=True, verbose=False)
    b = Trainer(epochs=1, device="cuda", deterministic=True, verbose=False)
    a.fit(train_1k)
    b.fit(train_1k)
    assert_same_weights(a.model, b.model)


# ------------------------------------------------- the checkpoint format, both ways


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


# ------------------------------------------------------ per-fit values on the state


def test_per_fit_values_live_on_the_state(train_1k: ImageSet) -> None:
    data = train_1k.subset(slice(0, 96))
    trainer = quiet(epochs=1, augment="affine(degrees=10)")
    state = trainer.fit(data)
    assert state.norm == (data.mean, data.std)
    assert state.train_size == 96
    assert state.augment is not None
    assert state.augment_seed == state.generator.initial_seed()
    assert state.process_group.world_size == 1
    assert trainer.state is state
    assert not {"_norm", "_augment", "_augment_seed", "_group", "_train_size"} & set(vars(trainer))


def test_trainer_evaluate_delegates_to_evaluate(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    trainer = quiet(epochs=1)
    trainer.fit(tiny_train)
    ours = trainer.evaluate(tiny_test, batch_size=16)
    theirs = evaluate(trainer.model, tiny_test, batch_size=16)
    assert (ours.loss, ours.correct, ours.total) == (theirs.loss, theirs.correct, theirs.total)
    assert torch.equal(ours.confusion, theirs.confusion)


def test_model_input_normalises_uint8_and_keeps_floats() -> None:
    from lenet5.data import normalize
    from lenet5.inference import model_input

    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    assert torch.equal(model_input(images, 0.5, 0.25), normalize(images, 0.5, 0.25))
    floats = torch.randn(3, 28, 28)
    assert model_input(floats, 0.5, 0.25).shape == (3, 1, 28, 28)
    batch = torch.randn(3, 1, 28, 28)
    assert model_input(batch, 0.5, 0.25) is batch
