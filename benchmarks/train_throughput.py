"""Training speed: the project's real entry point against plain-PyTorch loops and pythae.

Each kind of run trains the same model on real MNIST (from $VAE_DATA_DIR) for N epochs, each
in a fresh process, one after the other in every repeat (every other repeat in reverse):

- ``project``: ``python -m vae_lightning.train`` with the default config (fused optimiser
  steps), callbacks, loggers (CSV and W&B) and progress bar;
- ``lightning``: the same model in a bare Lightning ``Trainer`` (a minimal LightningModule,
  fused Adam, no logger, callback, checkpoint, progress bar or validation): the floor that
  Lightning's own per-step work sets;
- ``plain``: the loop a user would write: the same model and ELBO in plain PyTorch
  (``PlainVAE``), one in-memory tensor, batches by indexing, ``torch.optim.Adam`` with its
  default settings. It imports torch only, not the project (and so not Lightning), and reads
  the data module's splits, which this script saves once: every kind trains on the same images;
- ``plain-fused``: the same loop with fused Adam steps, the best plain loop;
- ``pythae`` (pytorch-examples setting, with the ``bench`` extra installed): pythae 0.1.2's
  ``VAE`` with the same 784-400-20 encoder and decoder, trained by its own
  ``TrainingPipeline`` (Adam 1e-3, batch 128, the same 50,000 training and 10,000 validation
  images, read as the plain loops read them). pythae cannot binarise dynamically, so it does
  not run in the paper setting.

Reported per kind (medians over repeats): training samples/s (median over epochs, validation
excluded) with the steps/s and seconds per training epoch they make, seconds from process
start to the end of the first optimiser step, peak RSS and the test ELBO after N epochs (nats
per data point). Then the throughput ratios of the project and the bare Trainer to each
reference (taken within a repeat so that drifts of the machine's speed cancel), the ratio of
the median throughputs, and the time per step that each adds.

    VAE_DATA_DIR=../shared/data python benchmarks/train_throughput.py --epochs 3 --repeats 5

``--data KEY=VALUE ...`` sets the MNIST data module of every kind (``data.KEY`` for the
project), e.g. ``val_size=5000`` or the ``checksums.*`` of other files in the same format.
"""

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

# The conv settings' training, beside their channels.
CONV = {"activation": "relu", "binarize": "dynamic", "batch_size": 100}
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
    # model/encoder=conv model/decoder=conv: 4 x 4 stride-2 convolutions 1-32-64, a hidden layer
    # of 256, latent 20, and the transposed mirror; ReLU, batch 100, dynamic binarisation.
    "conv": {"channels": [32, 64], **CONV},
    # experiment=conv_mnist's networks: the same with channels 1-16-32.
    "conv-small": {"channels": [16, 32], **CONV},
}
# The project's config of the conv setting's networks (conf/model/encoder/conv.yaml, decoder).
CONV_NETWORKS = {
    "encoder": {"_target_": "vae_lightning.models.encoders.ConvEncoder"},
    "decoder": {"_target_": "vae_lightning.models.decoders.conv_decoder"},
}
KINDS = ("project", "lightning", "plain", "plain-fused", "pythae")
REFERENCES = ("plain", "plain-fused", "pythae")  # what the project is compared against


def project_run(setting: dict, epochs: int, workdir: Path) -> dict:
    """`python -m vae_lightning.train` with the default callbacks, loggers and progress bar."""
    if "channels" in setting:
        channels = f"[{','.join(map(str, setting['channels']))}]"
        networks = ["model/encoder=conv", "model/decoder=conv"]
        networks += [f"model.encoder.channels={channels}", f"model.decoder.channels={channels}"]
    else:
        networks = [
            f"model.hidden_dims=[{','.join(map(str, setting['hidden_dims']))}]",
            f"model.activation={setting['activation']}",
        ]
    overrides = [
        f"trainer.max_epochs={epochs}",
        *networks,
        f"data.binarize={setting['binarize']}",
        f"data.batch_size={setting['batch_size']}",
        "model.latent_dim=20",
        "trainer.accelerator=cpu",
        *(f"data.{option}" for option in setting["data"]),
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


def _data_module(setting: dict):
    from omegaconf import OmegaConf

    from vae_lightning.data import MNISTDataModule

    data = MNISTDataModule(
        os.environ.get("VAE_DATA_DIR", "data"),
        binarize=setting["binarize"],
        batch_size=setting["batch_size"],
        **OmegaConf.to_container(OmegaConf.from_dotlist(setting["data"])),
    )
    data.setup()
    return data


def save_splits(setting: dict, path: Path) -> Path:
    """The data module's train, val and test tensors in one file, for the plain and pythae runs.

    Training images are grey levels (binarised per batch in the paper setting); the test split
    is the data module's, one fixed binarisation in the paper setting.
    """
    torch.save({k: v.contiguous() for k, v in _data_module(setting).splits.items()}, path)
    return path


def project_model(setting: dict):
    """The project's VariationalAutoencoder of the setting."""
    from vae_lightning.models import VariationalAutoencoder

    networks = {}
    if "channels" in setting:
        networks = {
            part: {**config, "channels": setting["channels"]}
            for part, config in CONV_NETWORKS.items()
        }
    hidden = setting.get("hidden_dims", [500])
    return VariationalAutoencoder(
        (1, 28, 28), 20, hidden, setting["activation"], "bernoulli", **networks
    )


def _data_and_model(setting: dict):
    torch.manual_seed(1234)
    data = _data_module(setting)
    return data, project_model(setting)


class PlainVAE(nn.Module):
    """The project's VAE and ELBO written in plain PyTorch, as in a script of one's own.

    The same layers (an encoder body of output width h with mu and log sigma^2 heads, a
    decoder of Bernoulli logits, torch's default initialisation) and the same arithmetic per
    step as VariationalAutoencoder.elbo, without importing the project (and so Lightning).
    """

    def __init__(self, body: nn.Module, width: int, decoder: Callable[[], nn.Module]) -> None:
        super().__init__()
        # Made in the project's order (encoder, its heads, decoder): the same initial weights.
        self.body = body
        self.mu, self.logvar = nn.Linear(width, 20), nn.Linear(width, 20)
        self.decoder = decoder()

    @classmethod
    def of(cls, setting: dict) -> "PlainVAE":
        """The plain model of a setting of SETTINGS."""
        if "channels" in setting:
            return cls.conv(*setting["channels"])
        return cls.mlp(setting["hidden_dims"][0], setting["activation"])

    @classmethod
    def mlp(cls, hidden: int, activation: str) -> "PlainVAE":
        """784-h-20 and 20-h-784."""
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        body = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), act())
        return cls(
            body,
            hidden,
            lambda: nn.Sequential(nn.Linear(20, hidden), act(), nn.Linear(hidden, 784)),
        )

    @classmethod
    def conv(cls, a: int, b: int) -> "PlainVAE":
        """Conv 1-a-b (4 x 4, stride 2) to b x 7 x 7, 256, 20, and back by transposed convs."""
        body = nn.Sequential(
            nn.Conv2d(1, a, 4, 2, 1), nn.ReLU(), nn.Conv2d(a, b, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(b * 7 * 7, 256), nn.ReLU(),
        )  # fmt: skip
        return cls(body, 256, lambda: nn.Sequential(
            nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, b * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (b, 7, 7)), nn.ConvTranspose2d(b, a, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(a, 1, 4, 2, 1), nn.Flatten(start_dim=-3),
        ))  # fmt: skip

    def elbo(self, x):
        """ELBO per data point, nats: sum_d [x_d l_d - softplus(l_d)] - KL(q(z|x) || p(z))."""
        h = self.body(x)
        x = x.flatten(1)
        mu, logvar = self.mu(h), self.logvar(h)
        logits = self.decoder(mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
        softplus = logits.clamp(min=0) + torch.log(1 + torch.exp(-logits.abs()))
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
        return (x * logits - softplus).sum(-1) - kl


@torch.no_grad()
def _test_elbo(elbo, test) -> float:
    """Mean of `elbo(x)` over the test images, one draw of z each (nats per data point)."""
    return torch.cat([elbo(x) for x in test.split(1000)]).mean().item()


def plain_loop(setting: dict, epochs: int, splits: Path, fused: bool = False) -> dict:
    """The leanest loop: one in-memory tensor, batches by indexing, the same model and ELBO;
    Adam with torch's default settings, or fused."""
    torch.manual_seed(1234)
    data = torch.load(splits, weights_only=True)
    model = PlainVAE.of(setting)
    train = data["train"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    batch_size, rates, first_step = setting["batch_size"], [], None
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        tic = time.perf_counter()
        for i in range(0, len(train), batch_size):
            x = train[order[i : i + batch_size]]
            if setting["binarize"] == "dynamic":
                x = torch.bernoulli(x)
            optimizer.zero_grad(set_to_none=True)
            loss = -model.elbo(x).mean()
            loss.backward()
            optimizer.step()
            if first_step is None:
                first_step = time.time()
        rates.append(len(train) / (time.perf_counter() - tic))
    return {
        "samples_per_sec": statistics.median(rates),
        "first_step_unix_time": first_step,
        "test_elbo": _test_elbo(model.elbo, data["test"]),
        "train_images": len(train),
    }


def lightning_loop(setting: dict, epochs: int) -> dict:
    """The same model and data module in a bare Lightning Trainer, timed as the project is."""
    import lightning as L

    from vae_lightning.training.callbacks import EpochTimer
    from vae_lightning.training.cuda_check import pytorch_cuda_check

    data, vae = _data_and_model(setting)

    class Minimal(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.vae = vae

        def training_step(self, x, batch_idx):
            return self.vae.elbo(x).loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)

    timer = EpochTimer()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, callbacks=[timer], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0,
    )  # fmt: skip
    with pytorch_cuda_check(trainer):
        trainer.fit(Minimal(), datamodule=data)
    return {
        "samples_per_sec": statistics.median(timer.samples_per_sec),
        "first_step_unix_time": timer.first_step_unix_time,
        "test_elbo": _test_elbo(lambda x: vae.elbo(x).elbo, data.splits["test"]),
        "train_images": len(data.splits["train"]),
    }


def pythae_loop(setting: dict, epochs: int, splits: Path) -> dict:
    """pythae's VAE with the pytorch/examples encoder and decoder, by its TrainingPipeline."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback
    from torch import nn

    torch.manual_seed(1234)
    data = torch.load(splits, weights_only=True)
    hidden, latent = setting["hidden_dims"][0], 20

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU())
            self.mu, self.log_var = nn.Linear(hidden, latent), nn.Linear(hidden, latent)

        def forward(self, x):
            h = self.body(x)
            return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid()
            )

        def forward(self, z):
            return ModelOutput(reconstruction=self.body(z).reshape(-1, 1, 28, 28))

    class Timer(TrainingCallback):  # training batches only, as EpochTimer times the project
        def __init__(self) -> None:
            self.rates: list[float] = []
            self.first_step: float | None = None

        def on_train_step_begin(self, training_config, **kwargs) -> None:
            self.start, self.batches = time.perf_counter(), 0

        def on_train_step_end(self, training_config, **kwargs) -> None:
            self.end, self.batches = time.perf_counter(), self.batches + 1
            self.first_step = self.first_step or time.time()

        def on_epoch_end(self, training_config, **kwargs) -> None:
            self.rates.append(len(data["train"]) / (self.end - self.start))

    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=latent, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    trainer_config = BaseTrainerConfig(
        output_dir=tempfile.mkdtemp(), num_epochs=epochs, learning_rate=1e-3,
        per_device_train_batch_size=setting["batch_size"], per_device_eval_batch_size=1000,
        optimizer_cls="Adam", no_cuda=True,
    )  # fmt: skip
    timer = Timer()
    TrainingPipeline(model=model, training_config=trainer_config)(
        train_data=data["train"], eval_data=data["val"], callbacks=[timer]
    )

    with torch.no_grad():  # ELBO = log p(x|z) - KL, one z per image, as _test_elbo draws it
        elbos = []
        for x in data["test"].split(1000):
            q = model.encoder(x)
            std = torch.exp(0.5 * q.log_covariance)
            z = q.embedding + std * torch.randn_like(std)
            p = model.decoder(z).reconstruction.reshape(len(x), -1)
            log_px = -torch.nn.functional.binary_cross_entropy(
                p, x.reshape(len(x), -1), reduction="none"
            ).sum(-1)
            kl = 0.5 * (q.embedding.pow(2) + std.pow(2) - 1 - q.log_covariance).sum(-1)
            elbos.append(log_px - kl)
    return {
        "samples_per_sec": statistics.median(timer.rates),
        "first_step_unix_time": timer.first_step,
        "test_elbo": torch.cat(elbos).mean().item(),
        "train_images": len(data["train"]),
    }


def child_run(kind: str, setting_name: str, epochs: int, data: list[str], splits: Path) -> dict:
    """A run other than the project's in a fresh process, so start-up and memory count alike."""
    start = time.time()
    command = [sys.executable, __file__, "--child", kind, "--settings", setting_name]
    proc = subprocess.Popen(
        [*command, "--epochs", str(epochs), "--splits", str(splits), "--data", *data],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"the {kind} run failed")
    result = json.loads(output.strip().splitlines()[-1])
    result["start_to_first_step_s"] = result.pop("first_step_unix_time") - start
    return {**result, "peak_rss_mb": usage.ru_maxrss / 1024}


def median_rate(results: list[dict]) -> float:
    return statistics.median(r["samples_per_sec"] for r in results)


def report(name: str, runs: dict[str, list[dict]], batch_size: int) -> None:
    print(f"\n== {name}: {SETTINGS[name]}")
    # The training images of an epoch, as the children counted them (the same for every kind).
    train_images = next(r["train_images"] for k, rs in runs.items() if k != "project" for r in rs)
    print(
        f"{'':12} {'samples/s':>10} {'steps/s':>8} {'epoch s':>8} {'start->step s':>14} "
        f"{'peak RSS MB':>12} {'test ELBO':>10}"
    )
    for kind, results in runs.items():
        m = {k: statistics.median(r[k] for r in results) for k in results[0]}
        rate = m["samples_per_sec"]
        print(
            f"{kind:12} {rate:10.0f} {rate / batch_size:8.1f} {train_images / rate:8.2f} "
            f"{m['start_to_first_step_s']:14.2f} {m['peak_rss_mb']:12.0f} {m['test_elbo']:10.2f}"
        )
    for kind, reference in [(k, r) for r in REFERENCES for k in ("project", "lightning")]:
        if reference not in runs:
            continue
        pairs = list(zip(runs[kind], runs[reference], strict=True))
        ratios = [a["samples_per_sec"] / b["samples_per_sec"] for a, b in pairs]
        added_us = [
            batch_size * 1e6 * (1 / a["samples_per_sec"] - 1 / b["samples_per_sec"])
            for a, b in pairs
        ]
        of_medians = median_rate(runs[kind]) / median_rate(runs[reference])
        print(
            f"{kind} / {reference} throughput: median {statistics.median(ratios):.3f} of "
            f"{len(pairs)} repeats ({', '.join(f'{r:.3f}' for r in ratios)}); ratio of the "
            f"medians {of_medians:.3f}; time added per step: median "
            f"{statistics.median(added_us):.0f} us"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind, in turn")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument(
        "--data",
        nargs="*",
        default=[],
        help="settings of the MNIST data module for every kind, e.g. val_size=5000 (the "
        "project's data.val_size=5000)",
    )
    parser.add_argument("--child", choices=KINDS[1:], help=argparse.SUPPRESS)
    parser.add_argument("--splits", type=Path, help=argparse.SUPPRESS)  # from save_splits
    args = parser.parse_args()
    if args.child:  # a child process of child_run
        setting = {**SETTINGS[args.settings[0]], "data": args.data}
        if args.child == "lightning":  # the project's data module and model
            result = lightning_loop(setting, args.epochs)
        else:
            loop = {
                "plain": plain_loop,
                "plain-fused": functools.partial(plain_loop, fused=True),
                "pythae": pythae_loop,
            }[args.child]
            result = loop(setting, args.epochs, args.splits)
        print(json.dumps(result))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs")
    has_pythae = importlib.util.find_spec("pythae") is not None
    if not has_pythae:
        print("pythae is not installed (pip install -e '.[bench]'): it is left out")
    for name in args.settings:
        setting = {**SETTINGS[name], "data": args.data}
        kinds = [k for k in KINDS if k != "pythae" or (has_pythae and name == "pytorch-examples")]
        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        with tempfile.TemporaryDirectory() as workdir:
            splits = save_splits(setting, Path(workdir) / "splits.pt")
            for repeat in range(args.repeats):
                # Every other repeat in reverse order, so a drift of the machine's speed
                # favours no kind.
                for kind in kinds if repeat % 2 == 0 else kinds[::-1]:
                    if kind == "project":
                        result = project_run(setting, args.epochs, Path(workdir))
                    else:
                        result = child_run(kind, name, args.epochs, args.data, splits)
                    runs[kind].append(result)
        report(name, runs, SETTINGS[name]["batch_size"])


if __name__ == "__main__":
    main()
