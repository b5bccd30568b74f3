"""Training and inference speed: lenet5 against the plain PyTorch recipe, in one process.

    python benchmarks/speed.py --data-dir ../shared/data/mnist
    python benchmarks/speed.py --data-dir ../shared/data/mnist --epochs 3 --json out.json

Three tables, each on every device present (the CPU, and CUDA when there is one):

1. Training throughput at the reference recipe (LeNet-5, Adam 1e-3, cross entropy, batch 32,
   seed 0): the plain recipe (torchvision ``MNIST`` + ``ToTensor`` + ``DataLoader``, the loop
   every tutorial writes) against ``lenet5.Trainer`` with its defaults, on the same data,
   one after the other. Images per second, seconds per epoch, the ratio, and the test accuracy
   after the timed epochs.
2. Time to accuracy with the ``fast`` recipe: training seconds (evaluation excluded) until the
   test accuracy first reaches 98.85% and 99.0%, checked after every epoch.
3. Inference: batch-1 latency and the time to classify the 10,000 test images, eager PyTorch
   against ONNX Runtime (when ``lenet5[onnx]`` is installed).

Nothing here is a test: the numbers depend on the machine, which the output names.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lenet5
from lenet5 import Callback, LeNet5, Trainer, TrainState, evaluate
from lenet5.data import DATASETS, ImageSet, find_data_dir, load_mnist
from lenet5.training.config import RECIPES

THRESHOLDS = (98.85, 99.0)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lenet5": lenet5.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ training


def torchvision_root(data_dir: Path) -> Path:
    """A temporary torchvision ``MNIST`` root holding the decompressed files of ``data_dir``."""
    root = Path(tempfile.mkdtemp(prefix="lenet5-bench-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in set(DATASETS["mnist"].files.values()):
        src = data_dir / name
        if src.is_file():
            shutil.copyfile(src, raw / name)
        else:
            with gzip.open(data_dir / f"{name}.gz") as fin, open(raw / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    return root


def plain_recipe(root: Path, device: torch.device, epochs: int) -> dict[str, Any]:
    """The reference loop as tutorials write it: DataLoader of PIL images, ToTensor, Adam."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(0)
    transform = transforms.ToTensor()
    train = datasets.MNIST(str(root), train=True, transform=transform)
    test = datasets.MNIST(str(root), train=False, transform=transform)
    loader = DataLoader(train, batch_size=32, shuffle=True)
    model = LeNet5().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
        sync(device)
        seconds.append(time.perf_counter() - start)
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(test, batch_size=1000):
            correct += int((model(images.to(device)).argmax(1) == labels.to(device)).sum())
    return {"seconds": seconds, "accuracy": 100.0 * correct / len(test), "images": len(train)}


class EpochClock(Callback):
    """Training seconds per epoch (validation excluded) and, optionally, test accuracy."""

    order = 200  # after every default callback

    def __init__(self, test: ImageSet | None = None) -> None:
        self.test = test
        self.seconds: list[float] = []
        self.accuracy: list[float] = []
        self._start = 0.0

    def on_epoch_start(self, state: TrainState) -> None:
        sync(state.device)
        self._start = time.perf_counter()

    def on_epoch_end(self, state: TrainState) -> None:
        sync(state.device)
        self.seconds.append(time.perf_counter() - self._start)
        if self.test is not None:
            model = state.ema.module if state.ema is not None else state.model
            self.accuracy.append(evaluate(model, self.test).accuracy)


def lenet5_recipe(
    train: ImageSet, test: ImageSet, device: torch.device, epochs: int, batch_size: int = 32
) -> dict[str, Any]:
    clock = EpochClock()
    trainer = Trainer(
        callbacks=[clock],
        epochs=epochs,
        batch_size=batch_size,
        device=str(device),
        seed=0,
        val_every=0,
        verbose=False,
    )
    trainer.fit(train)
    return {
        "seconds": clock.seconds,
        "accuracy": trainer.evaluate(test).accuracy,
        "images": len(train),
    }


def time_to_accuracy(train: ImageSet, test: ImageSet, device: torch.device) -> dict[str, Any]:
    clock = EpochClock(test)
    start = time.perf_counter()
    trainer = Trainer(
        callbacks=[clock],
        config=None,
        **{**RECIPES["fast"], "device": str(device), "seed": 0, "val_every": 0, "verbose": False},
    )
    trainer.fit(train)
    total = time.perf_counter() - start
    elapsed = 0.0
    reached: dict[str, float | None] = {f"{t:.2f}": None for t in THRESHOLDS}
    for seconds, accuracy in zip(clock.seconds, clock.accuracy, strict=True):
        elapsed += seconds
        for t in THRESHOLDS:
            key = f"{t:.2f}"
            if reached[key] is None and accuracy >= t:
                reached[key] = elapsed
    return {
        "recipe": RECIPES["fast"],
        "epoch_seconds": clock.seconds,
        "epoch_accuracy": clock.accuracy,
        "reached": reached,
        "wall_seconds_with_evaluation": total,
    }


def lenet5_ddp(data_dir: Path, processes: int, epochs: int) -> dict[str, Any]:
    """The Trainer in ``processes`` CPU processes (DDP, gloo) with a global batch of 32."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={processes}",
                __file__,
                "--ddp-worker",
                str(out),
                "--data-dir",
                str(data_dir),
                "--epochs",
                str(epochs),
            ],
            check=True,
            env=env,
        )
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def ddp_worker(out: Path, data_dir: Path, epochs: int) -> None:
    train, test = load_mnist(data_dir, split="train"), load_mnist(data_dir, split="test")
    world = int(os.environ["WORLD_SIZE"])
    result = lenet5_recipe(train, test, torch.device("cpu"), epochs, batch_size=32 // world)
    if int(os.environ["RANK"]) == 0:
        out.write_text(json.dumps(result))


# ----------------------------------------------------------------- inference


def latency(fn: Any, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``fn(x)`` over ``repeats`` calls, after a warm-up."""
    for _ in range(max(10, repeats // 10)):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference(test: ImageSet, weights: str) -> dict[str, Any]:
    from lenet5.runtime import OnnxRuntimeModel, onnxruntime_available

    model = LeNet5.from_pretrained(weights).eval()
    x1 = test.normalized()[:1]
    results: dict[str, Any] = {}
    backends: dict[str, Any] = {"torch": model}
    if onnxruntime_available():
        backends["onnxruntime"] = OnnxRuntimeModel(model)
    with torch.inference_mode():
        for name, fn in backends.items():
            batch1 = latency(fn, x1, 2000)
            evals = []
            for _ in range(5):
                start = time.perf_counter()
                result = evaluate(fn, test)
                evals.append(time.perf_counter() - start)
            results[name] = {
                "batch1_us": batch1 * 1e6,
                "eval_10k_s": statistics.median(evals),
                "eval_images_per_s": len(test) / statistics.median(evals),
                "accuracy": result.accuracy,
            }
    return results


# --------------------------------------------------------------------- report


def print_tables(report: dict[str, Any]) -> None:
    print(f"\nMachine: {json.dumps(report['machine'])}\n")
    print("Training, reference recipe (batch 32, Adam 1e-3), seconds per epoch = median")
    header = (
        f"{'device':<8}{'engine':<34}{'images/s':>10}{'s/epoch':>9}{'ratio':>7}{'test acc':>10}"
    )
    print(header)
    print("-" * len(header))
    labels = {
        "plain": "plain PyTorch (DataLoader)",
        "lenet5": "lenet5 Trainer",
        "lenet5-ddp": "lenet5 Trainer, DDP (global batch 32)",
    }
    for device, rows in report["training"].items():
        base = rows["plain"]["images_per_s"]
        for name, row in rows.items():
            label = labels[name] + (f" x{row['processes']}" if "processes" in row else "")
            print(
                f"{device:<8}{label:<42}{row['images_per_s']:>10,.0f}{row['s_per_epoch']:>9.2f}"
                f"{row['images_per_s'] / base:>6.2f}x{row['accuracy']:>9.2f}%"
            )
    print("\nTime to accuracy, recipe 'fast' (training seconds, evaluation excluded)")
    for device, row in report["time_to_accuracy"].items():
        reached = ", ".join(
            f"{t}%: {'not reached' if s is None else f'{s:.1f} s'}"
            for t, s in row["reached"].items()
        )
        accs = " ".join(f"{a:.2f}" for a in row["epoch_accuracy"])
        print(f"{device:<8}{reached}   (per-epoch test accuracy: {accs})")
    print("\nInference on the CPU (10,000 test images, batch 2048)")
    header = f"{'backend':<14}{'batch-1 latency':>17}{'10k images':>12}{'images/s':>12}{'acc':>9}"
    print(header)
    print("-" * len(header))
    for name, row in report["inference"].items():
        print(
            f"{name:<14}{row['batch1_us']:>14.0f} us{row['eval_10k_s']:>10.3f} s"
            f"{row['eval_images_per_s']:>12,.0f}{row['accuracy']:>8.2f}%"
        )


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    labels, values = [], []
    for device, rows in report["training"].items():
        for name in ("plain", "lenet5"):
            labels.append(f"{name}\n{device}")
            values.append(rows[name]["images_per_s"])
    left.bar(labels, values, color=["#999999", "#1f77b4"] * len(report["training"]))
    left.set_ylabel("training images / s (batch 32)")
    left.set_title("Reference recipe throughput")
    for device, row in report["time_to_accuracy"].items():
        elapsed = [sum(row["epoch_seconds"][: i + 1]) for i in range(len(row["epoch_seconds"]))]
        right.plot(elapsed, row["epoch_accuracy"], marker="o", label=f"recipe 'fast', {device}")
    for t in THRESHOLDS:
        right.axhline(t, color="grey", linestyle=":", linewidth=1)
    right.set_xlabel("training seconds")
    right.set_ylabel("test accuracy (%)")
    right.set_ylim(97.5, 99.6)
    right.set_title("Time to accuracy")
    right.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (or $LENET5_DATA_DIR)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per engine (1)")
    parser.add_argument("--devices", nargs="+", help="devices to run on (cpu, and cuda if present)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("training", "tta", "inference"))
    parser.add_argument("--weights", default="DEFAULT", help="weights for the inference table")
    parser.add_argument(
        "--ddp",
        type=int,
        default=0,
        metavar="N",
        help="also time the Trainer in N CPU processes under torchrun (DDP, gloo)",
    )
    parser.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plot", type=Path, help="also write a PNG plot here (matplotlib)")
    args = parser.parse_args()

    data_dir = find_data_dir(args.data_dir, "mnist")
    if args.ddp_worker is not None:
        return ddp_worker(args.ddp_worker, data_dir, args.epochs)
    train, test = load_mnist(data_dir, split="train"), load_mnist(data_dir, split="test")
    devices = [torch.device(d) for d in args.devices] if args.devices else [torch.device("cpu")]
    if not args.devices and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    report: dict[str, Any] = {
        "machine": machine(),
        "training": {},
        "time_to_accuracy": {},
        "inference": {},
    }
    root = torchvision_root(data_dir)
    try:
        for device in devices:
            if "training" not in args.skip:
                rows = {}
                for name, run in (
                    ("plain", lambda d=device: plain_recipe(root, d, args.epochs)),
                    ("lenet5", lambda d=device: lenet5_recipe(train, test, d, args.epochs)),
                ):
                    out = run()
                    s = statistics.median(out["seconds"])
                    rows[name] = {
                        "seconds": out["seconds"],
                        "s_per_epoch": s,
                        "images_per_s": out["images"] / s,
                        "accuracy": out["accuracy"],
                    }
                    print(f"{device} {name}: {s:.2f} s/epoch, {out['accuracy']:.2f}%", flush=True)
                if args.ddp and device.type == "cpu":
                    out = lenet5_ddp(data_dir, args.ddp, args.epochs)
                    s = statistics.median(out["seconds"])
                    rows["lenet5-ddp"] = {
                        "seconds": out["seconds"],
                        "s_per_epoch": s,
                        "images_per_s": out["images"] / s,
                        "accuracy": out["accuracy"],
                        "processes": args.ddp,
                    }
                report["training"][str(device)] = rows
            if "tta" not in args.skip:
                report["time_to_accuracy"][str(device)] = time_to_accuracy(train, test, device)
        if "inference" not in args.skip:
            report["inference"] = inference(test, args.weights)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_tables(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.plot:
        plot(report, args.plot)


if __name__ == "__main__":
    main()
