"""The Trainer on real MNIST subsets: the fit from set-up to the optimizer step, what the
hooks and options shape in a step, validation, reproducibility and the recipes' weights.

What else of a fit has its own home: the settings in ``test_config.py``, checkpoints and
resuming in ``test_checkpoint.py``, the state in ``test_state.py``, optimizers and
precision in ``test_optim.py``, the callbacks in ``callbacks/``, the forms of data that
fit, evaluate and predict take in ``tests/data/test_forms.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import (
    AUGMENTED_RECIPE,
    Stream,
    assert_same_weights,
    quiet,
    requires_cuda,
    same,
    weights,
    weights_differ,
)
from lenet5 import (
    Callback,
    ImageSet,
    LeNet5,
    NormalizationWarning,
    PeriodicValidation,
    TrainConfig,
    Trainer,
    TrainState,
)
from lenet5.training import Checkpoint, ConfigError, EarlyStopping, evaluate

# ------------------------------------------------------------- options and reproducibility


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


# ------------------------------------------------------- the engines and the resident data


class Steps(Callback):
    """Stop after ``n`` steps; record what the loop looked like."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.data_kind = ""
        self.fused: object = None
        self.losses: list[torch.Tensor] = []

    def on_epoch_start(self, state: TrainState) -> None:
        self.data_kind = type(state.train_data).__name__
        self.fused = state.optimizer.param_groups[0].get("fused")

    def on_batch_end(self, state: TrainState) -> None:
        loss = state.batch_loss_tensor
        assert loss is not None
        self.losses.append(loss)  # a device tensor: reading it is the callback's choice
        if state.global_step == self.n:
            state.stop()


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_fast_and_plain_engines_agree(train_1k: ImageSet, optimizer: str) -> None:
    weights = {}
    for engine in ("fast", "plain"):
        steps = Steps(25)
        trainer = Trainer(
            callbacks=[steps],
            engine=engine,
            optimizer=optimizer,
            weight_decay=1e-4,
            scheduler="onecycle",
            epochs=2,
            verbose=False,
            device="cpu",
        )
        trainer.fit(train_1k)
        weights[engine] = trainer.model.state_dict()
        assert len(steps.losses) == 25
        if engine == "fast":
            assert steps.data_kind == "ImageSet"  # resident, sliced on the device
            assert steps.fused is (True if optimizer != "sgd" else None)
        else:
            assert steps.data_kind == DataLoader.__name__
            assert not steps.fused
        # The model leaves fit in the default memory layout, whatever the engine used.
        assert trainer.model.features[0].weight.is_contiguous()
    for name, tensor in weights["fast"].items():
        torch.testing.assert_close(tensor, weights["plain"][name], atol=1e-6, rtol=1e-5)


class FlatView(nn.Module):
    """A textbook model that flattens with .view (fails on channels-last activations)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 5)
        self.fc = nn.Linear(4 * 24 * 24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).view(x.size(0), -1))


def test_a_view_flattening_model_trains_on_the_default_engine(tiny_train: ImageSet) -> None:
    trainer = quiet(FlatView(), epochs=1)
    assert trainer.config.engine == "fast"
    state = trainer.fit(tiny_train, tiny_train)
    assert state.global_step == 2


def test_fast_path_keeps_one_resident_tensor(train_2k: ImageSet) -> None:
    trainer = Trainer(epochs=1, verbose=False)  # device "auto"
    state = trainer.fit(train_2k)
    assert isinstance(state.train_data, ImageSet)
    assert state.train_data.device.type == state.device.type
    assert state.train_data.images.dtype == torch.uint8  # normalised per batch, not up front
    assert next(trainer.model.parameters()).device.type == state.device.type
    if state.device.type == "cpu":
        assert state.train_data is train_2k  # no copy at all on the CPU


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


# -------------------------------------------------------- the step: hooks, loss, gradients


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, 10).float()


class Spy(Callback):
    """Records what each step hook sees."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.grads_present: list[bool] = []

    def on_batch_start(self, state: TrainState) -> None:
        assert state.in_step
        with pytest.raises(RuntimeError, match="from on_before_backward on"):
            _ = state.logits
        self.calls.append("batch_start")

    def on_before_backward(self, state: TrainState) -> None:
        assert state.loss.requires_grad
        self.calls.append("before_backward")

    def on_before_optimizer_step(self, state: TrainState) -> None:
        self.grads_present.append(all(p.grad is not None for p in state.model.parameters()))
        self.calls.append("before_optimizer_step")

    def on_batch_end(self, state: TrainState) -> None:
        self.calls.append("batch_end")


def test_step_hooks_see_the_batch_and_the_gradients(tiny_train: ImageSet) -> None:
    spy = Spy()
    state = quiet(epochs=1, callbacks=[spy]).fit(tiny_train)
    assert not state.in_step
    with pytest.raises(RuntimeError, match="exists during a training step"):
        _ = state.inputs
    one = ["batch_start", "before_backward", "before_optimizer_step", "batch_end"]
    assert spy.calls == one * 2
    assert spy.grads_present == [True, True]
    assert state.global_step == 2


def test_loss_fn_gets_the_logits_and_targets(tiny_train: ImageSet) -> None:
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(logits.shape), tuple(targets.shape)))
        return F.cross_entropy(logits, targets) * 2.0

    trainer = quiet(epochs=1, loss_fn=loss_fn)
    state = trainer.fit(tiny_train)
    assert seen == [((32, 10), (32,)), ((32, 10), (32,))]
    reference = quiet(epochs=1).fit(tiny_train)
    # The reported loss is loss_fn's: twice the cross-entropy of the first batch.
    assert state.history[0]["loss"] != pytest.approx(reference.history[0]["loss"])


def test_soft_targets_from_the_data(tiny_train: ImageSet) -> None:
    images = tiny_train.images.float().div(255).unsqueeze(1)
    soft = TensorDataset(images, one_hot(tiny_train.labels))
    hard = TensorDataset(images, tiny_train.labels)
    a, b = quiet(epochs=1), quiet(epochs=1)
    a.fit(soft)
    b.fit(hard)
    # One-hot probabilities and class indices are the same cross-entropy.
    for k, v in weights(a.model).items():
        torch.testing.assert_close(v, weights(b.model)[k], rtol=1e-5, atol=1e-6)
    assert a.evaluate(soft).accuracy == b.evaluate(hard).accuracy


class Mixup(Callback):
    """Mixes each batch with itself reversed, as probabilities."""

    def on_batch_start(self, state: TrainState) -> None:
        lam = 0.7
        state.inputs = lam * state.inputs + (1 - lam) * state.inputs.flip(0)
        targets = one_hot(state.targets)
        state.targets = lam * targets + (1 - lam) * targets.flip(0)


def test_mixup_through_on_batch_start(tiny_train: ImageSet) -> None:
    seen: list[torch.Tensor] = []

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        seen.append(targets)
        return F.cross_entropy(logits, targets)

    labels: list[torch.Tensor] = []

    class Labels(Callback):
        order = 10  # after Mixup

        def on_batch_start(self, state: TrainState) -> None:
            labels.append(state.labels)

    trainer = quiet(epochs=1, loss_fn=loss_fn, callbacks=[Mixup(), Labels()])
    state = trainer.fit(tiny_train)
    assert [t.shape for t in seen] == [torch.Size([32, 10])] * 2
    # The data's labels stay there, whatever the targets became.
    assert sorted(torch.cat(labels).tolist()) == sorted(tiny_train.labels.tolist())
    for t in seen:  # each row mixes two one-hot rows: 0.7 on one class (1.0 where they agree)
        top = t.max(dim=1).values
        assert bool(
            (torch.isclose(top, torch.tensor(0.7)) | torch.isclose(top, torch.tensor(1.0))).all()
        )
        torch.testing.assert_close(t.sum(dim=1), torch.ones(32))
    assert math.isfinite(state.history[0]["loss"])


def test_on_before_backward_replaces_the_loss(tiny_train: ImageSet) -> None:
    class Zero(Callback):
        def on_before_backward(self, state: TrainState) -> None:
            state.loss = state.loss * 0.0

    trainer = quiet(epochs=1, callbacks=[Zero()], optimizer="sgd", momentum=0.0)
    before = weights(trainer.model)
    trainer.fit(tiny_train)
    assert same(weights(trainer.model), before)  # a zero loss moves nothing


def test_a_loss_that_is_not_a_scalar_is_refused(tiny_train: ImageSet) -> None:
    def per_example(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction="none")

    with pytest.raises(TypeError, match=r"scalar tensor.*\.mean\(\)"):
        quiet(epochs=1, loss_fn=per_example).fit(tiny_train)


def test_label_smoothing_and_a_loss_function_exclude_each_other(tiny_train: ImageSet) -> None:
    trainer = quiet(epochs=1, label_smoothing=0.1, loss_fn=nn.functional.cross_entropy)
    with pytest.raises(ConfigError, match="label_smoothing shapes the built-in cross-entropy"):
        trainer.fit(tiny_train)


def test_grad_clip_norm_clips_the_step(tiny_train: ImageSet) -> None:
    # One SGD step without momentum moves the weights by lr times the clipped gradient.
    trainer = quiet(
        epochs=1, optimizer="sgd", momentum=0.0, lr=0.5, grad_clip_norm=0.01, batch_size=64
    )
    before = weights(trainer.model)
    norms: list[float] = []

    class Norm(Callback):
        def on_before_optimizer_step(self, state: TrainState) -> None:
            grads = [p.grad for p in state.model.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))

    trainer.callbacks.append(Norm())
    trainer._bind_hooks(0)
    trainer.fit(tiny_train)
    after = weights(trainer.model)
    moved = torch.cat([(after[k] - before[k]).flatten() for k in before])
    assert norms[0] > 0.01  # the hook sees the gradient before clipping
    state = trainer.state
    assert state is not None
    assert state.grad_norm is not None
    assert float(state.grad_norm) == pytest.approx(norms[0], rel=1e-5)  # kept, unclipped
    assert float(torch.linalg.vector_norm(moved)) == pytest.approx(0.5 * 0.01, rel=1e-4)


def test_accumulation_equals_the_larger_batch(train_1k: ImageSet) -> None:
    data = train_1k.subset(slice(0, 256))
    big = quiet(epochs=2, batch_size=64, optimizer="sgd", momentum=0.0, lr=0.1)
    small = quiet(
        epochs=2, batch_size=16, accumulate_grad_batches=4, optimizer="sgd", momentum=0.0, lr=0.1
    )
    a, b = big.fit(data), small.fit(data)
    assert a.global_step == b.global_step == 8
    for k, v in weights(big.model).items():
        torch.testing.assert_close(weights(small.model)[k], v, rtol=1e-4, atol=1e-5)


def test_accumulation_counts_optimizer_steps_for_the_schedule(tiny_train: ImageSet) -> None:
    data = tiny_train  # 64 images, batch 16: 4 batches an epoch, groups of 3 -> 2 steps
    steps: list[int] = []

    class Steps(Callback):
        def on_before_optimizer_step(self, state: TrainState) -> None:
            steps.append(state.batch_in_epoch)

    state = quiet(
        epochs=2,
        batch_size=16,
        accumulate_grad_batches=3,
        scheduler="cosine",
        callbacks=[Steps()],
    ).fit(data)
    assert state.global_step == 4
    assert steps == [2, 3] * 2  # after the 3rd batch, and the short group of the 4th
    assert state.scheduler is not None
    assert state.scheduler.last_epoch == 4  # type: ignore[attr-defined]
    assert state.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine reached its end


def test_a_short_last_group_of_data_without_a_length_still_steps(tiny_train: ImageSet) -> None:
    torch.manual_seed(0)
    model = LeNet5()
    model.unused = nn.Linear(2, 2)  # a parameter the forward pass never uses: no gradient
    before = weights(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = quiet(model, epochs=1, accumulate_grad_batches=2).fit(Stream(tiny_train, 96))
    # Three batches: one group of two, then the third alone (found out when the data ended).
    assert state.global_step == 2
    after = weights(model)
    assert torch.equal(before["unused.weight"], after["unused.weight"])
    assert not torch.equal(before["features.0.weight"], after["features.0.weight"])


def test_on_after_optimizer_step_changes_what_the_ema_averages(tiny_train: ImageSet) -> None:
    """A projection in on_after_optimizer_step holds on the weights and on the EMA copy
    (which the fit returns): weight clipping to [-0.01, 0.01]."""
    seen: list[tuple[int, float]] = []

    class ClipWeights(Callback):
        def on_after_optimizer_step(self, state: TrainState) -> None:
            seen.append((state.global_step, float(state.optimizer.param_groups[0]["lr"])))
            with torch.no_grad():
                for p in state.model.parameters():
                    p.clamp_(-0.01, 0.01)

    trainer = quiet(epochs=2, ema_decay=0.9, scheduler="cosine", callbacks=[ClipWeights()])
    trainer.fit(tiny_train)
    assert [step for step, _ in seen] == [1, 2, 3, 4]  # global_step counts the step
    assert seen[0][1] == trainer.config.lr  # before the schedule steps
    assert all(float(p.abs().max()) <= 0.01 + 1e-7 for p in trainer.model.parameters())


def test_augmentation_changes_training(train_1k: ImageSet) -> None:
    plain = Trainer(**{**AUGMENTED_RECIPE, "augment": None, "ema_decay": 0.0, "epochs": 1})  # type: ignore[arg-type]
    augmented = Trainer(**{**AUGMENTED_RECIPE, "ema_decay": 0.0, "epochs": 1})  # type: ignore[arg-type]
    plain.fit(train_1k)
    augmented.fit(train_1k)
    w1 = plain.model.state_dict()["features.0.weight"]
    w2 = augmented.model.state_dict()["features.0.weight"]
    assert not torch.equal(w1, w2)


# ------------------------------------------------------------------------------ validation


def test_val_split_holds_out_training_images(train_1k: ImageSet) -> None:
    state = quiet(epochs=1, val_split=200).fit(train_1k)
    assert isinstance(state.train_data, ImageSet)
    assert isinstance(state.val_data, ImageSet)
    assert (len(state.train_data), len(state.val_data)) == (800, 200)
    assert "val_accuracy" in state.history[-1]  # the last epoch always validates


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


def test_val_every_steps_validates_between_batches(
    tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    seen: list[tuple[int, bool]] = []

    class Val(Callback):
        def on_validation_end(self, state: TrainState) -> None:
            seen.append((state.global_step, state.epoch_complete))

    quiet(epochs=2, batch_size=16, val_every=2, val_every_steps=3, callbacks=[Val()]).fit(
        tiny_train, tiny_test
    )
    # 4 steps an epoch: after steps 3 and 6 mid-epoch, and at the end of epoch 2.
    assert seen == [(3, False), (6, False), (8, True)]


def test_several_validation_sets(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    noisy = tiny_test.subset(slice(0, 32))
    trainer = quiet(epochs=1)
    state = trainer.fit(tiny_train, {"clean": tiny_test, "half": noisy})
    m = state.history[-1]
    assert {"val_clean_loss", "val_clean_accuracy", "val_half_loss", "val_half_accuracy"} <= set(m)
    assert m["val_loss"] == m["val_clean_loss"]
    assert m["val_accuracy"] == m["val_clean_accuracy"]
    assert m["val_half_accuracy"] == pytest.approx(trainer.evaluate(noisy).accuracy)


# -------------------------------------------------------------------- evaluate and predict


def test_trainer_evaluate_delegates_to_evaluate(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    trainer = quiet(epochs=1)
    trainer.fit(tiny_train)
    ours = trainer.evaluate(tiny_test, batch_size=16)
    theirs = evaluate(trainer.model, tiny_test, batch_size=16)
    assert (ours.loss, ours.correct, ours.total) == (theirs.loss, theirs.correct, theirs.total)
    assert torch.equal(ours.confusion, theirs.confusion)


def test_the_trainers_mean_and_std_override_an_image_sets_own(tiny_test: ImageSet) -> None:
    model = LeNet5.from_pretrained("DEFAULT")
    own = Trainer(model, verbose=False, device="cpu").evaluate(tiny_test)
    other = Trainer(model, verbose=False, device="cpu", mean=0.5, std=0.5).evaluate(tiny_test)
    expected = evaluate(model, dataclasses.replace(tiny_test, mean=0.5, std=0.5))
    assert (other.loss, other.correct) == (expected.loss, expected.correct)
    assert other.loss != own.loss


def test_predict_warns_on_bare_uint8_images_only(tiny_test: ImageSet) -> None:
    trainer = quiet(epochs=1)
    with pytest.warns(NormalizationWarning):
        trainer.predict(tiny_test.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalizationWarning)
        trainer.predict(tiny_test)
        trainer.predict(tiny_test.as_dataset())
        trainer.predict(tiny_test.normalized())
        quiet(epochs=1, mean=0.1307, std=0.3081).predict(tiny_test.images)


def test_predict_gives_logits_in_data_order(tiny_test: ImageSet) -> None:
    trainer = quiet(epochs=1)
    model = trainer.model.eval()
    with torch.no_grad():
        expected = model(tiny_test.normalized())
    for data in (
        tiny_test,
        tiny_test.images,
        tiny_test.images.unsqueeze(1),
        tiny_test.normalized(),
        tiny_test.as_dataset(),
        [img for img in tiny_test.normalized()],
        DataLoader(tiny_test.as_dataset(), batch_size=7),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NormalizationWarning)  # the bare uint8 tensors
            out = trainer.predict(data, batch_size=5)
        assert out.shape == (64, 10)
        assert out.device.type == "cpu"
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- the Trainer object


def test_a_second_fit_is_a_new_run_from_the_current_weights(
    tmp_path: Path, tiny_train: ImageSet
) -> None:
    checkpoint = Checkpoint(tmp_path / "ckpt")
    trainer = quiet(epochs=2, callbacks=[checkpoint])
    first = trainer.fit(tiny_train)
    after_first = weights(trainer.model)
    first_files = {p: p.read_bytes() for p in (tmp_path / "ckpt").rglob("*") if p.is_file()}
    starts: list[dict[str, torch.Tensor]] = []

    class Start(Callback):
        def on_epoch_start(self, state: TrainState) -> None:
            if state.epoch == 1:
                starts.append(weights(state.model))

    trainer.callbacks.append(Start())
    trainer._bind_hooks(0)
    with pytest.warns(UserWarning, match="holds the checkpoints of another run"):
        second = trainer.fit(tiny_train)
    assert second is not first
    assert same(starts[0], after_first)  # continued from the first fit's weights
    assert [h["lr"] for h in second.history] == [0.001, 0.001]
    assert second.global_step == 2 * 2
    assert trainer.fits == 2
    assert checkpoint.directory == tmp_path / "ckpt-2"
    assert (tmp_path / "ckpt-2" / "epoch-0002").is_dir()
    assert {p: p.read_bytes() for p in first_files} == first_files  # untouched


def test_trainer_is_generic_in_its_model() -> None:
    trainer = Trainer(LeNet5(), verbose=False)
    assert isinstance(trainer.model, LeNet5)
    assert Trainer[LeNet5] is not None  # subscriptable at run time too


def test_repr_of_a_trainer_lists_its_callbacks_in_order() -> None:
    text = repr(quiet(callbacks=[EarlyStopping()]))
    head, rest = text.split("\n", 1)
    assert head.startswith("Trainer(model=LeNet5, config=TrainConfig(epochs=")
    assert rest.startswith("callbacks (order, callback):\n")
    assert "EarlyStopping" in rest


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
