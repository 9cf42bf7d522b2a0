"""Evaluation of trained models: log-likelihood estimators, checkpoints, figures."""

from vae_lightning.evaluation.importance_sampling import (
    iwae_bound,
    log_importance_weights,
    log_marginal_likelihood,
)

__all__ = ["iwae_bound", "log_importance_weights", "log_marginal_likelihood"]
