"""PyTorch's own CUDA availability check during training, instead of Lightning's NVML one.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so that looking for GPUs does
not initialise CUDA before a fork. With it set, every ``torch.cuda.is_available()`` loads
NVML again, and every ``optimizer.step()`` calls it (``torch.optim``'s graph-capture health
check): about 45 us per step on a CPU-only machine, a cost with no benefit once the devices
are chosen. PyTorch's default check is a cached driver query.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


@contextmanager
def pytorch_cuda_check(trainer: L.Trainer) -> Iterator[None]:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` inside the block, unless the strategy forks.

    Strategies that fork (``ddp_fork``, ``ddp_notebook``) keep the NVML check, which is what
    keeps CUDA uninitialised in the parent. The previous value is restored on exit, so the
    next job of a multirun starts as this one did.
    """
    launcher = trainer.strategy.launcher
    forks = launcher is not None and launcher.is_interactive_compatible
    previous = os.environ.get(NVML_CHECK)
    if not forks:
        os.environ.pop(NVML_CHECK, None)
    try:
        yield
    finally:
        if previous is not None:
            os.environ[NVML_CHECK] = previous
