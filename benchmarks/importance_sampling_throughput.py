"""Throughput of the importance-sampled log-likelihood on this machine's CPU.

    python benchmarks/importance_sampling_throughput.py [--points 200] [--samples 1000]

For the MNIST MLP VAE of the paper (784-500-20, Bernoulli decoder) it times
`log_marginal_likelihood` over `--points` binary images with K = `--samples`, for several
(batch of data points, chunk of samples) shapes, each in a fresh process so that its peak
memory (resident set size) is its own. It reports (data point x sample) pairs per second,
the implied time for the 10,000 MNIST test images at K = 5000, and the decoder's arithmetic
rate against a plain matrix product of the same shape: the arithmetic limit. Batch 1 is
the loop over data points of the usual implementations. The weights are random: the cost
does not depend on them.
"""

import argparse
import json
import multiprocessing
import resource
import time

import torch

from vae_lightning.evaluation import log_marginal_likelihood
from vae_lightning.models.vae import VariationalAutoencoder

PIXELS, HIDDEN, LATENT = 784, 500, 20
FULL_TEST = 10_000 * 5000  # pairs: the MNIST test set at K = 5000
SHAPES = [(1, 100), (100, 5), (100, 20), (100, 100), (100, 500)]  # (batch, chunk)


def decoder_flops_per_pair() -> int:
    """Multiply-adds x 2 of the decoder's two linear layers for one z."""
    return 2 * (LATENT * HIDDEN + HIDDEN * PIXELS)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def time_shape(batch: int, chunk: int, points: int, samples: int) -> dict[str, float]:
    """Seconds and peak memory of the estimate over `points` images at K = `samples`."""
    torch.manual_seed(0)
    vae = VariationalAutoencoder((1, 28, 28), LATENT, [HIDDEN], "tanh", "bernoulli").eval()
    x = torch.bernoulli(torch.full((points, 1, 28, 28), 0.13))
    baseline = peak_rss_mb()  # torch, the model and the data
    with torch.no_grad():
        log_marginal_likelihood(vae, x[:batch], min(samples, chunk), chunk)  # warm-up
        start = time.perf_counter()
        for i in range(0, points, batch):
            log_marginal_likelihood(vae, x[i : i + batch], samples, chunk)
        seconds = time.perf_counter() - start
    pairs_per_s = points * samples / seconds
    return {
        "batch": batch,
        "chunk": chunk,
        "rows_per_pass": batch * chunk,
        "pairs_per_s": pairs_per_s,
        "decoder_gflops": pairs_per_s * decoder_flops_per_pair() / 1e9,
        "full_test_set_s": FULL_TEST / pairs_per_s,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_over_model_mb": peak_rss_mb() - baseline,
    }


def matmul_gflops(rows: int = 10_000, repeats: int = 5) -> float:
    """The rate of the decoder's main product, (rows x 500) @ (500 x 784), in float32."""
    a, b = torch.randn(rows, HIDDEN), torch.randn(HIDDEN, PIXELS)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * rows * HIDDEN * PIXELS * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200, help="data points per shape")
    parser.add_argument("--samples", type=int, default=1000, help="K, samples per point")
    parser.add_argument("--output", help="write the results to this JSON file")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    results = []
    for batch, chunk in SHAPES:
        points = min(args.points, 20) if batch == 1 else args.points  # the loop is slow
        with context.Pool(1) as pool:
            results.append(pool.apply(time_shape, (batch, chunk, points, args.samples)))
    limit = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={args.samples}")
    print(f"plain (10000 x 500) @ (500 x 784) product: {limit:.1f} GFLOP/s")
    print(
        f"{'batch':>6} {'chunk':>6} {'pairs/s':>10} {'GFLOP/s':>8} {'% of matmul':>11} "
        f"{'10k x 5000 (s)':>15} {'peak RSS MB':>12} {'(+ over model)':>15}"
    )
    for r in results:
        print(
            f"{r['batch']:>6} {r['chunk']:>6} {r['pairs_per_s']:>10.3g} "
            f"{r['decoder_gflops']:>8.1f} {100 * r['decoder_gflops'] / limit:>10.0f}% "
            f"{r['full_test_set_s']:>15.0f} {r['peak_rss_mb']:>12.0f} "
            f"{r['peak_rss_over_model_mb']:>15.0f}"
        )
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"matmul_gflops": limit, "samples": args.samples, "results": results}, f)


if __name__ == "__main__":
    main()
