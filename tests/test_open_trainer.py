"""The open Trainer (#14): research code shapes the step, not just watches it."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from helpers import StopAtBatch, quiet, same, weights
from lenet5 import Callback, Checkpoint, ConfigError, LeNet5, TrainConfig, Trainer
from lenet5.data import DataError, ImageSet, NormalizationWarning
from lenet5.training.state import TrainState


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, 10).float()


class FlatView(nn.Module):
    """A textbook model that flattens with .view (fails on channels-last activations)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 5)
        self.fc = nn.Linear(4 * 24 * 24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).view(x.size(0), -1))


# ------------------------------------------------------------------- the hooks


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


# ------------------------------------------------------------ training options


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


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_on_the_cpu_is_deterministic(
    precision: str, train_1k: ImageSet, tiny_test: ImageSet
) -> None:
    dtypes: list[torch.dtype] = []

    class Dtype(Callback):
        def on_before_backward(self, state: TrainState) -> None:
            dtypes.append(state.logits.dtype)

    runs = [quiet(epochs=1, precision=precision, seed=3) for _ in range(2)]
    runs[0].callbacks.append(Dtype())
    runs[0]._bind_hooks(0)
    states = [t.fit(train_1k, tiny_test) for t in runs]
    expected = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    assert set(dtypes) == {expected}
    assert (states[0].scaler is not None) == (precision == "16-mixed")
    assert same(weights(runs[0].model), weights(runs[1].model))
    assert next(runs[0].model.parameters()).dtype == torch.float32
    assert states[0].history[-1]["val_accuracy"] > 40.0


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


def test_validation_set_names_must_make_metric_names(tiny_train: ImageSet) -> None:
    with pytest.raises(DataError, match="metric names"):
        quiet(epochs=1).fit(tiny_train, {"has space": tiny_train})


# ---------------------------------------------------------------- data forms


class Stream(IterableDataset[tuple[torch.Tensor, int]]):
    """An iterable dataset without a length."""

    def __init__(self, images: ImageSet) -> None:
        self.images = images

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        for i in range(len(self.images)):
            yield self.images.images[i].unsqueeze(0), int(self.images.labels[i])


def test_data_in_every_form(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    loader = DataLoader(tiny_train.as_dataset(), batch_size=16, shuffle=True)
    as_list = [(tiny_train.images[i], int(tiny_train.labels[i])) for i in range(64)]
    forms: dict[str, Any] = {
        "dataloader": loader,
        "iterable": Stream(tiny_train),
        "list": as_list,
        "dataset": tiny_train.as_dataset(),
    }
    for name, data in forms.items():
        trainer = quiet(epochs=2)
        with warnings.catch_warnings():  # a stream or a list of uint8 images: of unknown origin
            warnings.simplefilter("ignore", NormalizationWarning)
            state = trainer.fit(data, Stream(tiny_test))
        assert state.global_step == (8 if name == "dataloader" else 4), name
        assert len(state.history) == 2, name
        result = trainer.evaluate(DataLoader(tiny_test.as_dataset(), batch_size=10))
        assert result.total == 64, name
        assert state.history[-1]["val_accuracy"] == pytest.approx(result.accuracy), name
    assert state.train_data is not loader  # the last form was a dataset: batched by us
    given = quiet(epochs=1)
    assert given.fit(loader).train_data is loader  # a DataLoader is used as given


def test_unusable_data_is_named() -> None:
    with pytest.raises(DataError, match=r"cannot use a Tensor.*TensorDataset"):
        quiet(epochs=1).fit(torch.zeros(4, 28, 28))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="cannot use a str"):
        quiet(epochs=1).fit("mnist")  # type: ignore[arg-type]


def test_a_schedule_needs_a_length(tiny_train: ImageSet) -> None:
    with pytest.raises(ConfigError, match="has no length"):
        quiet(epochs=1, scheduler="onecycle").fit(Stream(tiny_train))


def test_uint8_of_unknown_origin_warns_and_mean_std_set_it(tiny_train: ImageSet) -> None:
    data = TensorDataset(tiny_train.images, tiny_train.labels)
    with pytest.warns(NormalizationWarning, match=r"mean=\.\.\., std=\.\.\."):
        quiet(epochs=1).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalizationWarning)
        state = quiet(epochs=1, mean=0.5, std=0.25).fit(data)
        assert state.norm == (0.5, 0.25)
        quiet(epochs=1).fit(tiny_train)  # an ImageSet carries its own
        quiet(epochs=1).fit(DataLoader(tiny_train.as_dataset(), batch_size=32))  # so its loader


def test_mean_and_std_change_what_the_model_sees(tiny_train: ImageSet) -> None:
    data = TensorDataset(tiny_train.images, tiny_train.labels)
    seen: list[torch.Tensor] = []

    class Inputs(Callback):
        def on_batch_start(self, state: TrainState) -> None:
            seen.append(state.inputs)

    quiet(epochs=1, mean=0.0, std=1.0, batch_size=64, callbacks=[Inputs()]).fit(data)
    assert float(seen[0].min()) == 0.0
    assert float(seen[0].max()) == 1.0


def test_float_data_is_used_as_given(tiny_train: ImageSet) -> None:
    images = tiny_train.images.float().div(255).unsqueeze(1) * 3.0 - 7.0
    seen: list[torch.Tensor] = []

    class Inputs(Callback):
        def on_batch_start(self, state: TrainState) -> None:
            seen.append(state.inputs)

    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalizationWarning)
        trainer = quiet(epochs=1, batch_size=64, callbacks=[Inputs()])
        trainer.fit(TensorDataset(images, tiny_train.labels))
    assert set(seen[0].flatten().tolist()) <= set(images.flatten().tolist())


# ------------------------------------------------------------ nothing silent


def test_a_view_flattening_model_trains_on_the_default_engine(tiny_train: ImageSet) -> None:
    trainer = quiet(FlatView(), epochs=1)
    assert trainer.config.engine == "fast"
    state = trainer.fit(tiny_train, tiny_train)
    assert state.global_step == 2


def test_lr_and_weight_decay_reach_a_callable_optimizer(tiny_train: ImageSet) -> None:
    state = quiet(epochs=1, optimizer=torch.optim.SGD, lr=0.05, weight_decay=0.01).fit(tiny_train)
    group = state.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.05, 0.01)
    with pytest.raises(ConfigError, match=r"uses lr=0\.3.*set to lr=0\.02"):
        quiet(epochs=1, lr=0.02, optimizer=lambda p: torch.optim.SGD(p, lr=0.3)).fit(tiny_train)
    # A callable's own rate, with lr left at its default, becomes the recorded one.
    own = quiet(epochs=1, optimizer=lambda p: torch.optim.SGD(p, lr=0.3))
    assert own.fit(tiny_train).optimizer.param_groups[0]["lr"] == 0.3
    assert own.config.lr == 0.3


def test_model_and_optimizer_cannot_be_replaced_during_a_fit(tiny_train: ImageSet) -> None:
    class Swap(Callback):
        def __init__(self, what: str) -> None:
            self.what = what

        def on_epoch_start(self, state: TrainState) -> None:
            if self.what == "model":
                state.model = LeNet5()
            else:
                state.optimizer = torch.optim.SGD(state.model.parameters(), lr=1.0)

    for what in ("model", "optimizer"):
        with pytest.raises(AttributeError, match=f"state.{what} cannot be replaced during a fit"):
            quiet(epochs=1, callbacks=[Swap(what)]).fit(tiny_train)


def test_the_optimizer_is_not_there_before_it_is_built(tiny_train: ImageSet) -> None:
    class Early(Callback):
        def on_fit_start(self, state: TrainState) -> None:
            state.optimizer.zero_grad()

    with pytest.raises(RuntimeError, match="built after on_fit_start"):
        quiet(epochs=1, callbacks=[Early()]).fit(tiny_train)


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


# -------------------------------------------------------- resume and determinism


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


def test_new_options_are_flags_of_lenet5_train() -> None:
    from lenet5.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--precision",
            "bf16-mixed",
            "--grad-clip-norm",
            "1.5",
            "--accumulate-grad-batches",
            "4",
            "--compile",
            "--val-every-steps",
            "100",
            "--mean",
            "0.5",
            "--std",
            "0.2",
        ]
    )
    from lenet5.cli._config_flags import config_from_args

    config = config_from_args(args)
    assert isinstance(config, TrainConfig)
    assert (config.precision, config.grad_clip_norm, config.accumulate_grad_batches) == (
        "bf16-mixed",
        1.5,
        4,
    )
    assert (config.compile, config.val_every_steps, config.mean, config.std) == (
        True,
        100,
        0.5,
        0.2,
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"precision": "fp8"}, "unknown precision"),
        ({"grad_clip_norm": 0.0}, "grad_clip_norm must be a positive"),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches must be a positive"),
        ({"mean": 0.5}, "give mean and std together"),
        ({"mean": 0.5, "std": 0.0}, "std must be a positive"),
        ({"compile": "yes"}, "compile must be True or False"),
    ],
)
def test_bad_values_of_the_new_options(option: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Trainer(**option)


def test_trainer_is_generic_in_its_model() -> None:
    trainer = Trainer(LeNet5(), verbose=False)
    assert isinstance(trainer.model, LeNet5)
    assert Trainer[LeNet5] is not None  # subscriptable at run time too


def test_lenet5_train_with_the_new_options(
    run_cli: Any, small_mnist_dir: Path, tmp_path: Path
) -> None:
    import json

    out = tmp_path / "run"
    done = run_cli(
        "train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", "1",
        "--batch-size", "50", "--precision", "bf16-mixed", "--accumulate-grad-batches", "4",
        "--grad-clip-norm", "1.0", "--val-every-steps", "5", "--val-every", "1",
        python_flags=["-W", "ignore::UserWarning"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = json.loads((out / "train_config.json").read_text())
    config = settings.get("config", settings)
    assert (config["precision"], config["accumulate_grad_batches"]) == ("bf16-mixed", 4)
    assert config["grad_clip_norm"] == 1.0
    rows = (out / "metrics.csv").read_text().splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    assert row[header.index("global_step")] == "10"  # 2,000 images / 50 = 40 batches, 4 a step


# ---------------------------------------------------------------- distillation


def test_distillation_teaches_through_loss_fn_and_soft_targets(
    train_1k: ImageSet, test_1k: ImageSet
) -> None:
    from lenet5 import Distillation

    teacher = LeNet5.from_pretrained("DEFAULT")
    before = weights(teacher)
    distil = Distillation(teacher, temperature=4.0, alpha=0.9)
    seen: list[torch.Tensor] = []

    class Seen(Callback):
        order = 20  # after Distillation

        def on_batch_start(self, state: TrainState) -> None:
            seen.append(state.targets)

    student = quiet(epochs=2, loss_fn=distil.loss, callbacks=[distil, Seen()])
    student.fit(train_1k)
    assert same(weights(teacher), before)  # never trained
    assert all(t.shape == (32, 10) or t.shape == (8, 10) for t in seen)
    torch.testing.assert_close(seen[0].sum(dim=1), torch.ones(32))
    assert float(seen[0].max()) < 1.0  # softened at T = 4
    plain = quiet(epochs=2)
    plain.fit(train_1k)
    # A strong teacher helps a student trained on 1,000 images for two epochs.
    distilled = student.evaluate(test_1k).accuracy
    assert distilled > plain.evaluate(test_1k).accuracy
    with pytest.raises(ValueError, match="positive temperature"):
        Distillation(teacher, temperature=0.0)
    with pytest.raises(RuntimeError, match="same fit"):
        Distillation(teacher).loss(torch.zeros(2, 10), torch.zeros(2, 10))
