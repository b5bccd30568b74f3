"""Parameter groups (#25 item 2): ``no_decay``, a ``param_groups`` callable, and what must
keep working with groups (schedules, EMA, checkpoints, bitwise resume, the logs, the resume
rules, a callable optimizer). Real MNIST images, real checkpoint folders and files."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cli_helpers import run_main
from helpers import StopAtBatch, quiet, same, weights
from lenet5 import Checkpoint, ConfigError, LeNet5, TrainConfig
from lenet5.data import ImageSet
from lenet5.training.callbacks import CSVLogger
from lenet5.training.checkpoint import Override, ResumeError, resume_overrides

#: The LeNet-5 parameters of one or more dimensions (weight matrices, kernels).
MATRICES = [
    "features.0.weight",
    "features.3.weight",
    "classifier.1.weight",
    "classifier.3.weight",
    "classifier.5.weight",
]
BIASES = [name.replace("weight", "bias") for name in MATRICES]


def conv_and_fc(model: nn.Module) -> Iterable[Mapping[str, Any]]:
    """A smaller rate for the convolutions: the groups ``conv`` and ``fc``."""
    assert isinstance(model, LeNet5)
    return [
        {"params": model.features.parameters(), "lr": 1e-4, "name": "conv"},
        {"params": model.classifier.parameters(), "name": "fc"},
    ]


def names_of(model: nn.Module, params: Iterable[torch.Tensor]) -> list[str]:
    ids = {id(p) for p in params}
    return [n for n, p in model.named_parameters() if id(p) in ids]


@pytest.fixture(scope="module")
def data(train_1k: ImageSet) -> ImageSet:
    """128 real images: 8 steps of 16 per epoch."""
    return train_1k.subset(slice(0, 128))


# ------------------------------------------------------------------------- no_decay


def test_no_decay_decays_matrices_and_kernels_only(data: ImageSet) -> None:
    trainer = quiet(epochs=1, batch_size=16, optimizer="adamw", weight_decay=0.1, no_decay=True)
    state = trainer.fit(data)
    decay, plain = state.optimizer.param_groups
    assert (decay["name"], decay["weight_decay"]) == ("decay", 0.1)
    assert (plain["name"], plain["weight_decay"]) == ("no_decay", 0.0)
    assert names_of(trainer.model, decay["params"]) == MATRICES
    assert names_of(trainer.model, plain["params"]) == BIASES
    # The fast engine's fused kernels, in every group.
    assert decay["fused"]
    assert plain["fused"]
    assert set(state.history[-1]) >= {"lr", "lr_decay", "lr_no_decay"}


def test_no_decay_leaves_the_biases_undecayed(data: ImageSet) -> None:
    """SGD with lr 1 and weight decay 0.5, no momentum, on a frozen loss (zero gradients
    come only from decay): with no_decay the biases stay, the kernels halve each step."""
    torch.manual_seed(0)
    model = LeNet5()
    before = weights(model)
    trainer = quiet(
        model,
        epochs=1,
        batch_size=128,
        optimizer="sgd",
        lr=1.0,
        momentum=0.0,
        weight_decay=0.5,
        no_decay=True,
        loss_fn=lambda logits, _: logits.sum() * 0.0,
    )
    trainer.fit(data)
    after = weights(trainer.model)
    for name in BIASES:
        assert torch.equal(after[name], before[name]), name
    for name in MATRICES:
        assert torch.allclose(after[name], before[name] * 0.5), name


def test_no_decay_is_a_flag_of_lenet5_train_and_recorded(
    tmp_path: Path, small_mnist_dir: Path
) -> None:
    out = tmp_path / "run"
    code = run_main(
        "train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", "1",
        "--batch-size", "500", "--optimizer", "adamw", "--weight-decay", "0.05",
        "--decay-matrices-only", "--quiet", "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["no_decay"] is True
    assert recorded["param_groups"] is None
    with (out / "metrics.csv").open() as f:
        row = next(csv.DictReader(f))
    assert row["lr"] == row["lr_decay"] == row["lr_no_decay"] == "0.001"


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"no_decay": 1}, "no_decay", "no_decay must be True or False"),
        ({"param_groups": [1]}, "param_groups", "param_groups must be a callable"),
        (
            {"param_groups": conv_and_fc, "no_decay": True},
            "no_decay",
            "use one of them",
        ),
    ],
)
def test_bad_settings_are_refused_at_construction(
    kwargs: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        TrainConfig(**kwargs)
    assert info.value.field == field


# --------------------------------------------------------------- param_groups callables


def test_each_group_has_its_rate_and_its_lr_in_the_logs(tmp_path: Path, data: ImageSet) -> None:
    csv_file = tmp_path / "metrics.csv"
    trainer = quiet(
        epochs=2, batch_size=16, param_groups=conv_and_fc, callbacks=[CSVLogger(csv_file)]
    )
    state = trainer.fit(data)
    conv, fc = state.optimizer.param_groups
    assert (conv["lr"], fc["lr"]) == (1e-4, 1e-3)  # fc takes the config's lr
    assert names_of(trainer.model, conv["params"]) == [
        n for n, _ in trainer.model.features.named_parameters(prefix="features")
    ]
    assert state.history[-1]["lr"] == 1e-4  # the first group's, as without groups
    assert (state.history[-1]["lr_conv"], state.history[-1]["lr_fc"]) == (1e-4, 1e-3)
    with csv_file.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["lr_conv"] for r in rows] == ["0.0001", "0.0001"]
    assert [r["lr_fc"] for r in rows] == ["0.001", "0.001"]


def test_unnamed_groups_are_named_by_their_index(data: ImageSet) -> None:
    def by_index(model: nn.Module) -> list[dict[str, Any]]:
        return [
            {"params": model.features.parameters(), "lr": 2e-3},
            {"params": model.classifier.parameters()},
        ]

    state = quiet(epochs=1, batch_size=64, param_groups=by_index).fit(data)
    assert (state.history[-1]["lr_0"], state.history[-1]["lr_1"]) == (2e-3, 1e-3)


def test_cosine_works_per_group(data: ImageSet) -> None:
    state = quiet(epochs=2, batch_size=16, param_groups=conv_and_fc, scheduler="cosine").fit(data)
    halfway = state.history[0]  # after 8 of 16 steps: half the base rate of each group
    assert halfway["lr_conv"] == pytest.approx(0.5e-4)
    assert halfway["lr_fc"] == pytest.approx(0.5e-3)


def test_onecycle_peaks_at_each_groups_own_rate(data: ImageSet) -> None:
    trainer = quiet(epochs=1, batch_size=16, param_groups=conv_and_fc, scheduler="onecycle")
    state = trainer.fit(data)
    assert [g["max_lr"] for g in state.optimizer.param_groups] == [1e-4, 1e-3]
    assert [g["initial_lr"] for g in state.optimizer.param_groups] == [1e-4 / 25, 1e-3 / 25]


def test_a_callable_optimizer_gets_the_groups_and_the_model(data: ImageSet) -> None:
    seen: dict[str, Any] = {}

    def build(params: list[dict[str, Any]], lr: float, model: nn.Module) -> torch.optim.Optimizer:
        seen["params"], seen["model"] = params, model
        return torch.optim.SGD(params, lr=lr)

    trainer = quiet(epochs=1, batch_size=64, param_groups=conv_and_fc, optimizer=build)
    state = trainer.fit(data)
    assert seen["model"] is trainer.model
    assert [g["name"] for g in seen["params"]] == ["conv", "fc"]
    assert [g["lr"] for g in state.optimizer.param_groups] == [1e-4, 1e-3]


def test_a_callable_optimizer_with_no_decay_keeps_the_groups_own_decay(data: ImageSet) -> None:
    """The no_decay group's weight_decay=0 is on purpose: the consistency check of a
    callable optimizer compares only the options a group leaves to the config."""
    trainer = quiet(
        epochs=1, batch_size=64, no_decay=True, weight_decay=0.1, optimizer=torch.optim.AdamW
    )
    state = trainer.fit(data)
    assert [g["weight_decay"] for g in state.optimizer.param_groups] == [0.1, 0.0]

    def own_decay(params: list[dict[str, Any]]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, weight_decay=0.3)  # contradicts the config's 0.1

    with pytest.raises(ConfigError, match=r"uses weight_decay=0\.3 but the run is set to"):
        quiet(epochs=1, no_decay=True, weight_decay=0.1, optimizer=own_decay).fit(data)
    # Left at its default, the config adopts the callable's decay (the run records it).
    adopted = quiet(epochs=1, batch_size=64, no_decay=True, optimizer=own_decay)
    adopted.fit(data)
    assert adopted.config.weight_decay == 0.3


def _missing_and_twice(model: nn.Module) -> list[dict[str, Any]]:
    assert isinstance(model, LeNet5)
    fc = list(model.classifier.parameters())
    return [{"params": model.features.parameters()}, {"params": [*fc[:-1], fc[0]]}]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (
            _missing_and_twice,
            r"exactly once; missing from every group: classifier\.5\.bias; in more than "
            r"one group \(or twice in one\): classifier\.1\.weight",
        ),
        (
            lambda m: [
                {"params": m.parameters()},
                {"params": [torch.zeros(3, requires_grad=True)]},
            ],
            r"group 1 holds a \(3,\) tensor that is not a parameter of the model",
        ),
        (lambda m: [m.parameters()], "group 0 must be a dict with 'params'"),
        (
            lambda m: [{"params": m.parameters()}, {"params": [], "name": "x"}],
            "group 1 .'x'. is empty",
        ),
        (lambda m: [], "returned no groups"),
        (lambda m: 3, "must return an iterable of dicts"),
        (lambda m: [{"params": m.parameters(), "name": "a b"}], "name 'a b' must be"),
        (
            lambda m: [
                {"params": m.features.parameters(), "name": "1"},
                {"params": m.classifier.parameters()},
            ],
            "several groups are named 1",
        ),
        (lambda m: [{"params": m.parameters(), "lr": -1.0}], r"group 0's lr must be positive"),
        (
            lambda m: [{"params": m.parameters(), "weight_decay": math.nan}],
            "group 0's weight_decay must be a finite number",
        ),
    ],
)
def test_groups_that_do_not_fit_are_a_config_error(
    data: ImageSet, groups: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        quiet(epochs=1, param_groups=groups).fit(data)
    assert info.value.field == "param_groups"


def test_frozen_parameters_may_stay_out(data: ImageSet) -> None:
    model = LeNet5()
    model.features.requires_grad_(False)
    frozen = weights(model)

    def fc_only(m: nn.Module) -> list[dict[str, Any]]:
        return [{"params": m.classifier.parameters(), "name": "fc"}]

    trainer = quiet(model, epochs=1, batch_size=64, param_groups=fc_only)
    trainer.fit(data)
    after = weights(trainer.model)
    assert all(torch.equal(after[k], frozen[k]) for k in frozen if k.startswith("features"))


# ---------------------------------------------------------- checkpoints and exact resume


def _grouped() -> dict[str, Any]:
    return {
        "epochs": 2,
        "batch_size": 16,
        "param_groups": conv_and_fc,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "scheduler": "cosine",
        "ema_decay": 0.9,
    }


def test_groups_resume_bitwise_mid_epoch(tmp_path: Path, data: ImageSet) -> None:
    whole = quiet(**_grouped())
    whole_state = whole.fit(data)
    stopped = quiet(**_grouped(), callbacks=[Checkpoint(tmp_path), StopAtBatch(1, 3)])
    state = stopped.fit(data)
    assert (state.epoch, state.batch_in_epoch) == (1, 3)
    resumed = quiet(**_grouped(), callbacks=[Checkpoint(tmp_path)])
    resumed_state = resumed.fit(data, resume=tmp_path)
    assert same(weights(resumed.model), weights(whole.model))
    assert untimed(resumed_state.history) == untimed(whole_state.history)


def untimed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]


def test_no_decay_resumes_bitwise_mid_epoch(tmp_path: Path, data: ImageSet) -> None:
    options = {"epochs": 2, "batch_size": 16, "no_decay": True, "weight_decay": 0.1}
    whole = quiet(**options, optimizer="sgd", scheduler="onecycle")
    whole.fit(data)
    quiet(
        **options, optimizer="sgd", scheduler="onecycle",
        callbacks=[Checkpoint(tmp_path), StopAtBatch(2, 5)],
    ).fit(data)  # fmt: skip
    resumed = quiet(**options, optimizer="sgd", scheduler="onecycle")
    resumed.fit(data, resume=tmp_path)
    assert same(weights(resumed.model), weights(whole.model))


@pytest.fixture(scope="module")
def stopped_with_groups(tmp_path_factory: pytest.TempPathFactory, data: ImageSet) -> Path:
    folder = tmp_path_factory.mktemp("grouped")
    quiet(
        epochs=2, batch_size=16, no_decay=True, weight_decay=0.1,
        callbacks=[Checkpoint(folder), StopAtBatch(1, 4)],
    ).fit(data)  # fmt: skip
    return folder


def test_a_new_weight_decay_on_resume_spares_the_no_decay_group(
    stopped_with_groups: Path, data: ImageSet
) -> None:
    trainer = quiet(epochs=2, batch_size=16, no_decay=True, weight_decay=0.2)
    state = trainer.fit(data, resume=stopped_with_groups)
    assert [o.setting for o in state.overrides] == ["weight_decay"]
    assert [g["weight_decay"] for g in state.optimizer.param_groups] == [0.2, 0.0]


def test_a_new_lr_on_resume_spares_a_group_with_its_own(tmp_path: Path, data: ImageSet) -> None:
    quiet(
        epochs=2, batch_size=16, param_groups=conv_and_fc,
        callbacks=[Checkpoint(tmp_path), StopAtBatch(1, 4)],
    ).fit(data)  # fmt: skip
    state = quiet(epochs=2, batch_size=16, param_groups=conv_and_fc, lr=5e-3).fit(
        data, resume=tmp_path
    )
    assert [g["lr"] for g in state.optimizer.param_groups] == [1e-4, 5e-3]


def test_changing_the_groups_on_resume_is_refused(
    stopped_with_groups: Path, data: ImageSet
) -> None:
    with pytest.raises(ResumeError, match="no_decay splits") as info:
        quiet(epochs=2, batch_size=16, weight_decay=0.1).fit(data, resume=stopped_with_groups)
    assert info.value.settings == ("no_decay",)
    saved = TrainConfig().to_dict()
    with pytest.raises(ResumeError, match="laid out in the parameter groups") as info:
        resume_overrides(saved, TrainConfig(param_groups=conv_and_fc), epochs_done=1, global_step=1)
    assert info.value.settings == ("param_groups",)
    # The same callable is no change.
    grouped = TrainConfig(param_groups=conv_and_fc)
    assert resume_overrides(grouped.to_dict(), grouped, epochs_done=1, global_step=1) == []
    assert resume_overrides(
        TrainConfig(no_decay=True).to_dict(),
        TrainConfig(no_decay=True, weight_decay=0.5),
        epochs_done=1,
        global_step=1,
    ) == [Override("weight_decay", 0.0, 0.5, 1)]


def test_tensorboard_writes_each_groups_lr(tmp_path: Path, data: ImageSet) -> None:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from lenet5.training.callbacks import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path, every_n_steps=4)
    quiet(epochs=1, batch_size=16, param_groups=conv_and_fc, callbacks=[logger]).fit(data)
    events = accumulator.EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/lr", "step/lr_conv", "step/lr_fc", "epoch/lr_conv", "epoch/lr_fc"} <= tags
    assert [e.value for e in events.Scalars("step/lr_fc")] == [pytest.approx(1e-3)] * 2
    assert math.isclose(events.Scalars("epoch/lr_conv")[0].value, 1e-4, rel_tol=1e-6)
