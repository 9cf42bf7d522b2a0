"""Training speed: the project's real entry point against a minimal plain-PyTorch loop.

Both train the same model on real MNIST (from $VAE_DATA_DIR) for N epochs, each in a fresh
process, alternating between the two, and report per run: training samples/s (median over
epochs, validation excluded), seconds from process start to the end of the first optimiser
step, peak RSS, and the test ELBO after N epochs (nats per data point). Then the medians
and the ratio project / plain loop.

    VAE_DATA_DIR=../shared/data python benchmarks/train_throughput.py --epochs 3 --repeats 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SETTINGS = {
    # pytorch/examples vae/main.py: 784-400-20 ReLU, Bernoulli on grey levels, Adam 1e-3, batch 128
    "pytorch-examples": {
        "hidden_dims": [400],
        "activation": "relu",
        "binarize": "none",
        "batch_size": 128,
    },
    # Kingma & Welling: 784-500-20, tanh, batch 100 (dynamic binarisation, Adam 1e-3).
    "paper": {"hidden_dims": [500], "activation": "tanh", "binarize": "dynamic", "batch_size": 100},
}


def project_run(setting: dict, epochs: int, workdir: Path) -> dict:
    """`python -m vae_lightning.train` with the default callbacks, loggers and progress bar."""
    overrides = [
        f"trainer.max_epochs={epochs}",
        f"model.hidden_dims=[{','.join(map(str, setting['hidden_dims']))}]",
        f"model.activation={setting['activation']}",
        f"data.binarize={setting['binarize']}",
        f"data.batch_size={setting['batch_size']}",
        "model.latent_dim=20",
        "trainer.accelerator=cpu",
    ]
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vae_lightning.train", *overrides],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"training failed: {proc.stderr.read()[-2000:]}")
    [summary_file] = sorted(workdir.glob("outputs/train/runs/*/summary.json"))[-1:]
    summary = json.loads(summary_file.read_text())
    summary_file.rename(summary_file.with_suffix(".read"))
    return {
        "samples_per_sec": summary["train_samples_per_sec_median"],
        "start_to_first_step_s": summary["first_step_unix_time"] - start,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "test_elbo": summary["metrics"]["test/elbo"],
    }


def plain_loop(setting: dict, epochs: int, start: float) -> dict:
    """The leanest loop: one in-memory tensor, batches by indexing, the same model and ELBO."""
    from vae_lightning.cuda_availability import NVML_CHECK
    from vae_lightning.data import MNISTDataModule
    from vae_lightning.models import VariationalAutoencoder

    # Importing the project imports Lightning, which turns on its NVML-based CUDA check (a
    # cost in every optimizer step); a plain PyTorch script runs with PyTorch's default.
    os.environ.pop(NVML_CHECK, None)
    torch.manual_seed(1234)
    data = MNISTDataModule(os.environ.get("VAE_DATA_DIR", "data"), binarize=setting["binarize"])
    data.setup()
    train, test = data.splits["train"], data.splits["test"]
    model = VariationalAutoencoder(
        (1, 28, 28), 20, setting["hidden_dims"], setting["activation"], "bernoulli"
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch_size, rates, first_step = setting["batch_size"], [], None
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        tic = time.perf_counter()
        for i in range(0, len(train), batch_size):
            x = train[order[i : i + batch_size]]
            if setting["binarize"] == "dynamic":
                x = torch.bernoulli(x)
            optimizer.zero_grad(set_to_none=True)
            loss = model.elbo(x).loss
            loss.backward()
            optimizer.step()
            if first_step is None:
                first_step = time.time()
        rates.append(len(train) / (time.perf_counter() - tic))
    with torch.no_grad():
        test_elbo = torch.cat([model.elbo(x).elbo for x in test.split(1000)]).mean().item()
    return {
        "samples_per_sec": statistics.median(rates),
        "start_to_first_step_s": first_step - start,
        "test_elbo": test_elbo,
    }


def plain_run(setting_name: str, epochs: int) -> dict:
    """The plain loop in a fresh process, so start-up and memory are measured alike."""
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--plain", setting_name, "--epochs", str(epochs)],
        stdout=subprocess.PIPE,
        text=True,
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError("plain loop failed")
    result = json.loads(output.strip().splitlines()[-1])
    result["start_to_first_step_s"] += result.pop("process_start") - start
    return {**result, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:  # child process of plain_run
        start = time.time()
        result = plain_loop(SETTINGS[args.plain], args.epochs, start)
        print(json.dumps({**result, "process_start": start}))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs")
    for name in args.settings:
        runs: dict[str, list[dict]] = {"project": [], "plain": []}
        with tempfile.TemporaryDirectory() as workdir:
            for _ in range(args.repeats):
                runs["project"].append(project_run(SETTINGS[name], args.epochs, Path(workdir)))
                runs["plain"].append(plain_run(name, args.epochs))
        print(f"\n== {name}: {SETTINGS[name]}")
        print(
            f"{'':10} {'samples/s':>10} {'start->step s':>14} {'peak RSS MB':>12} {'test ELBO':>10}"
        )
        medians = {}
        for kind, results in runs.items():
            medians[kind] = {k: statistics.median(r[k] for r in results) for k in results[0]}
            m = medians[kind]
            print(
                f"{kind:10} {m['samples_per_sec']:10.0f} {m['start_to_first_step_s']:14.2f} "
                f"{m['peak_rss_mb']:12.0f} {m['test_elbo']:10.2f}"
            )
        # Each project run is paired with the plain run right after it, so slow drifts of
        # the machine's speed cancel in the ratio.
        ratios = [
            a["samples_per_sec"] / b["samples_per_sec"] for a, b in zip(*runs.values(), strict=True)
        ]
        print(
            f"throughput ratio project / plain loop: median {statistics.median(ratios):.3f} "
            f"of {args.repeats} pairs ({', '.join(f'{r:.3f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
