"""The Lightning module: trains a VariationalAutoencoder by maximising the ELBO or L_k."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from vae_lightning.models.latent_diagnostics import LatentDiagnostics
from vae_lightning.models.mean_elbo import MeanElbo
from vae_lightning.models.objectives import BOUND_NAMES, OBJECTIVES, Objective, kl_weight_at
from vae_lightning.models.vae import VariationalAutoencoder

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")
TERMS = ("elbo", "recon", "kl")
# Base seeds of the noise of validation and test batches.
EVAL_SEEDS = {"val": 1_000_000, "test": 2_000_000}
# What the Lightning module passes on to its VariationalAutoencoder.
AUTOENCODER_INTERFACE = frozenset(
    {
        "encoder",
        "decoder",
        "image_shape",
        "latent_dim",
        "elbo",
        "encode",
        "decode",
        "decode_distribution",
        "reconstruct",
        "sample",
        "log_likelihood",
        "latent_diagnostics",
    }
)
# Devices on which torch fuses Adam, AdamW and Adagrad alike (optimizer.fused=true).
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def plain(value: Any) -> Any:
    """A Hydra config as plain dicts and lists, so checkpoints load with weights_only=True."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


class VAE(L.LightningModule):
    """Auto-Encoding Variational Bayes: encoder, decoder and the training objective.

    ``objective``: 'elbo' (the ELBO with L = ``num_samples`` draws), 'iwae' (the
    importance-weighted bound L_k, k = ``num_samples``) or 'wake_sleep' (the wake-sleep
    algorithm, with ``num_samples`` draws and dreams per data point; no KL weight); see
    models/objectives.py. The KL
    term of the training loss is weighted by ``kl_weight``, reached linearly from 0 over
    the first ``kl_warmup_steps`` optimiser steps (0: no warm-up).
    Logs ``{train,val,test}/{elbo,recon,kl}`` in nats per data point, always the true ELBO
    (weight 1), where ``recon`` is -E_q[log p(x|z)] and ``elbo = -(recon + kl)``; for
    'iwae' also ``{split}/iwae_bound``; ``train/lr`` (the rate the epoch started with) and
    ``train/kl_weight`` at each epoch's end. ``optimizer`` and ``scheduler`` are Hydra configs
    with ``_partial_: true``; ``encoder`` and ``decoder`` configs of the networks (None: the
    MLPs of Kingma & Welling; see models/networks.py).
    The latent diagnostics of each validation and test epoch (models/latent_diagnostics.py):
    ``{val,test}/active_units`` (units whose posterior mean varies by more than
    ``active_unit_threshold`` over the split), ``mutual_info`` (the mixture of the split's first
    ``mutual_info_points`` points, null: all, scored at the draws of the first 100),
    ``marginal_kl`` and ``kl_dim_<j>`` per latent dimension; a validation epoch in which
    every dimension's KL is below ``collapse_threshold`` nats logs one warning line.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int = 20,
        hidden_dims: Sequence[int] = (500,),
        activation: str = "tanh",
        likelihood: str = "bernoulli",
        variance: float | None = None,
        min_variance: float = 1e-4,
        num_samples: int = 1,
        objective: str = "elbo",
        kl_weight: float = 1.0,
        kl_warmup_steps: int = 0,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        compile: bool = False,
        active_unit_threshold: float = 0.01,
        mutual_info_points: int | None = 500,
        collapse_threshold: float = 0.01,
        encoder: Mapping[str, Any] | None = None,
        decoder: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "image_shape": list(image_shape),
                "latent_dim": latent_dim,
                "hidden_dims": list(hidden_dims),
                "activation": activation,
                "likelihood": likelihood,
                "variance": variance,
                "min_variance": min_variance,
                "num_samples": num_samples,
                "objective": objective,
                "kl_weight": kl_weight,
                "kl_warmup_steps": kl_warmup_steps,
                "optimizer": plain(optimizer),
                "scheduler": plain(scheduler),
                "compile": compile,
                "active_unit_threshold": active_unit_threshold,
                "mutual_info_points": mutual_info_points,
                "collapse_threshold": collapse_threshold,
                "encoder": plain(encoder),
                "decoder": plain(decoder),
            }
        )
        self.vae = VariationalAutoencoder(
            image_shape,
            latent_dim,
            hidden_dims,
            activation,
            likelihood,
            variance,
            min_variance,
            self.hparams.encoder,
            self.hparams.decoder,
        )
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}")
        self._objective = torch.compile(OBJECTIVES[objective]) if compile else OBJECTIVES[objective]
        self.bound_name = BOUND_NAMES[objective]
        # Means over each epoch's data points, summed over processes under DDP.
        self.mean_elbo = nn.ModuleDict(
            {f"{split}_elbo": MeanElbo(self.bound_name) for split in SPLITS}
        )
        self.latent = nn.ModuleDict(
            {
                split: LatentDiagnostics(active_unit_threshold, mutual_info_points)
                for split in EVAL_SPLITS
            }
        )
        self._collapsed = False

    def __getattr__(self, name: str) -> Any:
        """The bare model's networks and methods (models/vae.py), so that whatever takes a
        VariationalAutoencoder (the evaluation functions, the figures) takes this module too."""
        if name in AUTOENCODER_INTERFACE:
            return getattr(self.vae, name)
        return super().__getattr__(name)

    def kl_weight(self) -> float:
        """The KL weight beta of the next training step (after `global_step` steps)."""
        hparams = self.hparams
        return kl_weight_at(self.global_step, hparams.kl_weight, hparams.kl_warmup_steps)

    def forward(self, x: Tensor, kl_weight: float = 1.0) -> Objective:
        return self._objective(self.vae, x, self.hparams.num_samples, kl_weight)

    def _step(self, x: Tensor, split: str) -> Tensor:
        result = self(x, self.kl_weight() if split == "train" else 1.0)
        self.mean_elbo[f"{split}_elbo"].update(result.terms, result.bound)
        if split in EVAL_SPLITS:
            self.latent[split].update(*result.posterior)
        # Lightning writes step values every `log_every_n_steps` steps and drops the others;
        # `self.log` costs about as much as a small model's step, so call it only then.
        if split == "train" and (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            for name in TERMS:
                value = getattr(result.terms, name).detach().mean()
                self.log(f"train/{name}_step", value, prog_bar=name == "elbo")
            if result.bound is not None:
                self.log(f"train/{self.bound_name}_step", result.bound.detach().mean())
        return result.loss

    def _log_epoch(self, split: str) -> None:
        """Log `{split}/{elbo,recon,kl}` (and the bound): means over the epoch's data points."""
        for name, value in self.mean_elbo[f"{split}_elbo"].compute().items():
            # The same value on every process: sync_dist averages equal values (no warning).
            shown = split == "val" and name == "elbo"  # in the progress bar
            self.log(f"{split}/{name}", value, prog_bar=shown, sync_dist=True)
        self.mean_elbo[f"{split}_elbo"].reset()

    def _log_latent_diagnostics(self, split: str) -> dict[str, Any]:
        """Log `{split}/active_units`, `mutual_info`, `marginal_kl` and `kl_dim_<j>`.

        Only the first two go through `self.log` (the epoch table and summary.json read them
        from the callback metrics); the others go to the loggers directly, at the step and
        epoch of the epoch's other metrics: each `self.log` call costs a pass over all the
        epoch's logged values (quadratic in hundreds of keys; about 1 ms each here).
        """
        diagnostics = self.latent[split].summary()
        self.latent[split].reset()
        for name in ("active_units", "mutual_info"):
            self.log(f"{split}/{name}", float(diagnostics[name]), sync_dist=True)
        width = len(str(len(diagnostics["kl_per_dim"]) - 1))
        direct = {f"{split}/marginal_kl": diagnostics["marginal_kl"]}
        direct.update(
            (f"{split}/kl_dim_{j:0{width}d}", kl) for j, kl in enumerate(diagnostics["kl_per_dim"])
        )
        if not self.trainer.sanity_checking:
            self.trainer._logger_connector.log_metrics(direct)
        return diagnostics

    def on_train_epoch_start(self) -> None:
        # The rate the epoch starts with: epoch-wise schedulers step before its end hooks.
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])

    on_train_start = on_train_epoch_start  # a run resumed mid-epoch starts no epoch

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        self.log("train/lr", self._epoch_lr, sync_dist=True)
        self.log("train/kl_weight", self.kl_weight(), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        diagnostics = self._log_latent_diagnostics("val")
        collapsed = max(diagnostics["kl_per_dim"]) < self.hparams.collapse_threshold
        if collapsed and not self._collapsed and not self.trainer.sanity_checking:
            log.warning(
                "Posterior collapse at epoch %d: every latent dimension's validation KL is "
                "below %g nats (largest %.4f).",
                self.current_epoch,
                self.hparams.collapse_threshold,
                max(diagnostics["kl_per_dim"]),
            )
        self._collapsed = collapsed

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
        self._log_latent_diagnostics("test")

    def training_step(self, x: Tensor, batch_idx: int) -> Tensor:
        return self._step(x, "train")

    def _eval_step(self, x: Tensor, batch_idx: int, split: str) -> None:
        """Evaluation with noise seeded by the batch's index among all processes' batches.

        The data loaders give process r of N the single-process batches r, r + N, ..., so
        batch `batch_idx` here is batch `batch_idx * N + r` of a single process: the same
        data and the same noise, hence the same ELBO on any number of processes. The
        training noise (the global generators) is left untouched.
        """
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size) if self._trainer else (0, 1)
        )
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EVAL_SEEDS[split] + batch_idx * world + rank)
            self._step(x, split)

    def validation_step(self, x: Tensor, batch_idx: int) -> None:
        self._eval_step(x, batch_idx, "val")

    def test_step(self, x: Tensor, batch_idx: int) -> None:
        self._eval_step(x, batch_idx, "test")

    def _optimizer_settings(self) -> dict[str, Any]:
        settings = dict(self.hparams.optimizer)
        if settings.get("fused") and self.device.type not in FUSED_OPTIMIZER_DEVICES:
            settings["fused"] = None  # torch's default implementation for this device
        return settings

    def _mean_elbo_keys(self) -> list[str]:
        """The checkpoint keys of the epoch sums: every state of every MeanElbo."""
        return [
            f"mean_elbo.{name}.{state}"
            for name, metric in self.mean_elbo.items()
            for state in metric.metric_state
        ]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the epoch's running sums added over all processes (rank 0 writes the file)."""
        state = checkpoint["state_dict"]
        for key in self._mean_elbo_keys():
            state[key] = self.trainer.strategy.reduce(state[key].clone(), reduce_op="sum")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resume the epoch's sums on one process: the saved sums are those of all processes,
        so rank 0 takes them and the others start from zero, whatever the number of processes.

        A resumed run steps as this run's config says (fused or not), not as the run that
        saved the checkpoint did: torch would restore the saved choice with the state."""
        if self._trainer is not None and self.trainer.global_rank != 0:
            state = checkpoint["state_dict"]
            for key in self._mean_elbo_keys():
                if key in state:
                    state[key] = torch.zeros_like(state[key])
        if "fused" in (self.hparams.optimizer or {}):
            fused = self._optimizer_settings()["fused"]
            for state in checkpoint.get("optimizer_states", []):
                for group in state["param_groups"]:
                    group["fused"] = fused

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self._optimizer_settings())(params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler_cfg = dict(self.hparams.scheduler)
        interval = scheduler_cfg.pop("interval", "epoch")
        scheduler = instantiate(scheduler_cfg)(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "monitor": "val/elbo"},
        }
