"""The optimiser's share of a training step: one update of the VAE's parameters by torch's
default, foreach and fused implementations of Adam and Adagrad, timed in isolation.

The parameters are those of the benchmark settings of train_throughput.py (pytorch/examples:
784-400-20 ReLU; paper: 784-500-20 tanh), with fixed random gradients. Prints the median
milliseconds per update over `--steps` updates, after 20 warm-up updates, for each
implementation, and the default's time over the fused one's.

    python benchmarks/optimizer_step.py --steps 300
"""

import argparse
import statistics
import time

import torch

from vae_lightning.models import VariationalAutoencoder

SETTINGS = {"pytorch-examples": ([400], "relu"), "paper": ([500], "tanh")}
OPTIMIZERS = {"Adam": (torch.optim.Adam, 1e-3), "Adagrad": (torch.optim.Adagrad, 0.02)}
IMPLEMENTATIONS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def ms_per_update(optimizer_class, lr: float, options: dict, hidden, activation, steps: int):
    torch.manual_seed(0)
    model = VariationalAutoencoder((1, 28, 28), 20, hidden, activation, "bernoulli")
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer = optimizer_class(model.parameters(), lr=lr, **options)
    for _ in range(20):
        optimizer.step()
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - tic)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per update")
    print(f"{'setting':17} {'optimiser':9} {'default':>8} {'foreach':>8} {'fused':>8} {'ratio':>6}")
    for name, (hidden, activation) in SETTINGS.items():
        for optimizer, (optimizer_class, lr) in OPTIMIZERS.items():
            ms = {
                impl: ms_per_update(optimizer_class, lr, options, hidden, activation, args.steps)
                for impl, options in IMPLEMENTATIONS.items()
            }
            print(
                f"{name:17} {optimizer:9} {ms['default']:8.3f} {ms['foreach']:8.3f} "
                f"{ms['fused']:8.3f} {ms['default'] / ms['fused']:6.2f}"
            )


if __name__ == "__main__":
    main()
