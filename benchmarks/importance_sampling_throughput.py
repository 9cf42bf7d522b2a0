"""The importance-sampled log-likelihood against its arithmetic bound, on this machine's CPU.

    python benchmarks/importance_sampling_throughput.py [--data mnist] [--repeats 5]

The estimator (`vae_lightning.evaluation.log_marginal_likelihood`) runs the encoder once per
image and the decoder once per (image, sample) pair: its matrix products need

    F = images x K x decoder FLOPs + images x encoder FLOPs,   FLOPs of a layer = 2 x in x out

and it cannot take less than F / R seconds, R the FLOP/s that this machine's float32 matrix
product reaches (measured here, with the same threads, at the decoder's largest layer with
2,000 and 10,000 rows, the faster of the two).
The script times the estimator for several shapes (data points per batch x samples per chunk,
so that one decoder pass sees batch x chunk rows) and thread counts, repeats interleaved, and
prints the median seconds per pair, the ratio bound / time (1 = as fast as the matrix products
allow), and the implied time of a full MNIST test evaluation (10,000 images at K = 5000).
`before` is the shape the evaluation used to take by default (100 x 100), `after` the one
`conf/eval.yaml` sets now. With --memory each shape also runs once in a fresh process to
measure its peak resident memory. The weights are random: the cost does not depend on them.
"""

import argparse
import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from vae_lightning.evaluation import log_marginal_likelihood
from vae_lightning.models.vae import VariationalAutoencoder

# data set -> (image shape, hidden width, decoder): the paper's models.
MODELS = {
    "mnist": ((1, 28, 28), 500, "bernoulli"),
    "frey_face": ((1, 28, 20), 200, "gaussian"),
}
BEFORE = (100, 100)  # (batch, chunk) of the evaluation's defaults until this benchmark
EVAL_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "eval.yaml"
SHAPES = [(100, 100), (100, 50), (100, 20), (100, 10), (50, 20), (20, 50), (10, 100)]
FULL_TEST = (10_000, 5000)  # the MNIST test split at K = 5000


def linear_flops(module: nn.Module) -> int:
    """2 x in x out summed over the module's linear layers: FLOPs of one input row."""
    return sum(
        2 * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear)
    )


def build(data: str, latent: int) -> tuple[VariationalAutoencoder, torch.Tensor]:
    shape, hidden, likelihood = MODELS[data]
    torch.manual_seed(0)
    vae = VariationalAutoencoder(shape, latent, [hidden], "tanh", likelihood).eval()
    x = torch.rand((100, *shape))
    return vae, torch.bernoulli(x) if likelihood == "bernoulli" else x


def matmul_flops_per_s(vae: VariationalAutoencoder, rows: int, repeats: int = 11) -> float:
    """Median FLOP/s of (rows x hidden) @ (hidden x pixels), the decoder's largest product."""
    layer = max(
        (m for m in vae.decoder.modules() if isinstance(m, nn.Linear)),
        key=lambda m: m.in_features * m.out_features,
    )
    a, w = torch.randn(rows, layer.in_features), layer.weight.detach().t().contiguous()
    a @ w
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ w
        times.append(time.perf_counter() - start)
    return 2 * rows * layer.in_features * layer.out_features / statistics.median(times)


def seconds_per_pair(vae, x: torch.Tensor, batch: int, chunk: int, samples: int) -> float:
    """Seconds per (image, sample) pair of the estimate over all of x at K = samples."""
    with torch.inference_mode():
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            log_marginal_likelihood(vae, x[i : i + batch], samples, chunk)
        return (time.perf_counter() - start) / (len(x) * samples)


def peak_memory_mb(data: str, latent: int, batch: int, chunk: int, threads: int) -> float:
    """Peak resident memory above the loaded model, of one estimate (in a fresh process)."""
    torch.set_num_threads(threads)
    vae, x = build(data, latent)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds_per_pair(vae, x[:batch], batch, chunk, 2 * chunk)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--latent", type=int, default=20)
    parser.add_argument("--samples", type=int, default=500, help="K per timed estimate")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    args = parser.parse_args()
    defaults = OmegaConf.load(EVAL_CONFIG)
    after = (defaults.batch_size, defaults.chunk_size)
    shapes = list(dict.fromkeys([BEFORE, after, *SHAPES]))
    vae, x = build(args.data, args.latent)
    per_pair = linear_flops(vae.decoder)
    per_image = linear_flops(vae.encoder)
    print(
        f"torch {torch.__version__}, {args.data} model, latent {args.latent}, K = {args.samples},"
        f" {len(x)} images; FLOPs: decoder {per_pair:,} per pair, encoder {per_image:,} per image"
    )
    for threads in dict.fromkeys(args.threads):
        torch.set_num_threads(threads)
        times: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}
        rates = []
        for repeat in range(args.repeats):
            rates.append(max(matmul_flops_per_s(vae, rows) for rows in (2000, 10_000)))
            order = shapes if repeat % 2 == 0 else shapes[::-1]
            for batch, chunk in order:
                seconds = seconds_per_pair(vae, x, batch, chunk, args.samples)
                times[(batch, chunk)].append(seconds)
        rate = statistics.median(rates)
        bound = (per_pair + per_image / args.samples) / rate  # seconds per pair
        print(
            f"\n{threads} thread(s): matrix product {rate / 1e9:.0f} GFLOP/s (median), "
            f"bound {bound * 1e6:.2f} us per pair"
        )
        print(
            f"{'batch':>6} {'chunk':>6} {'rows':>6} {'us/pair':>8} {'bound/time':>10} "
            f"{'10k x 5000':>11}  default"
        )
        for (batch, chunk), values in times.items():
            median = statistics.median(values)
            images, k = FULL_TEST
            full = images * k * median
            label = {BEFORE: "before", after: "after"}.get((batch, chunk), "")
            if BEFORE == after == (batch, chunk):
                label = "before = after"
            print(
                f"{batch:>6} {chunk:>6} {batch * chunk:>6} {median * 1e6:>8.2f} "
                f"{bound / median:>10.2f} {full / 60:>9.1f} m  {label}"
            )
    if args.memory:
        context = multiprocessing.get_context("spawn")
        print("\npeak resident memory above the model, one estimate per fresh process:")
        for threads in dict.fromkeys(args.threads):
            for batch, chunk in shapes:
                with context.Pool(1) as pool:
                    mb = pool.apply(peak_memory_mb, (args.data, args.latent, batch, chunk, threads))
                print(f"  {threads} thread(s), {batch} x {chunk}: {mb:.0f} MB")


if __name__ == "__main__":
    main()
