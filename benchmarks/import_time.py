"""Start-up floor: seconds to import what a training run imports, each in a fresh process.

Each line is `python -c "import ..."` timed from process start to the end of its imports
(the interpreter's exit is not counted), the lines in turn (every other repeat in reverse
order), medians over repeats. torch alone is what a plain PyTorch script pays; Lightning
adds torchmetrics, which imports its optional dependencies (torchvision's models, so
torch._dynamo, and scipy.signal) when they are installed; the project's entry point adds
Hydra and its own modules, and a run with W&B imports wandb.

    python benchmarks/import_time.py --repeats 5
"""

import argparse
import statistics
import subprocess
import sys
import time

IMPORTS = {
    "torch": "import torch",
    "torch + torchvision": "import torch, torchvision",
    "torch + torchmetrics": "import torch, torchmetrics",
    "lightning": "import lightning",
    "vae_lightning.train": "import vae_lightning.train",
    "vae_lightning.train + wandb": "import vae_lightning.train, wandb",
}


def seconds(statement: str) -> float:
    """From process start to the end of the imports (the exit, which tears down, not counted)."""
    start = time.time()
    code = f"{statement}; import time; print(time.time())"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1]) - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for repeat in range(args.repeats):
        for name in list(IMPORTS) if repeat % 2 == 0 else list(IMPORTS)[::-1]:
            times[name].append(seconds(IMPORTS[name]))
    base = statistics.median(times["torch"])
    print(f"{'imports':30} {'median s':>9} {'over torch':>11}  (min-max of {args.repeats})")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:30} {median:9.2f} {median - base:+11.2f}  ({min(values):.2f}-{max(values):.2f})"
        )


if __name__ == "__main__":
    main()
