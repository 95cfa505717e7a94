"""mgbench: a benchmark and evaluation suite for multi-scale generative image models.

The public API for plugging in a model::

    from mgbench import GenerativeModel, DataSpec, register_model

    @register_model("my-gan")
    class MyGAN(GenerativeModel):
        ...

Scoring from Python: ``mgbench.score(fake, reference)``, ``mgbench.save_stats(images, path)``,
``mgbench.run(preset="quick")`` (:mod:`mgbench.api`).

Names are imported on first use (PEP 562), so ``import mgbench`` and the torch-free parts
(configuration, the metric catalogue, the report) do not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    "DataSpec": "mgbench.contract",
    "GenerativeModel": "mgbench.contract",
    "ProducesPyramid": "mgbench.contract",
    "Reconstructs": "mgbench.contract",
    "UsageError": "mgbench.errors",
    "create_model": "mgbench.registry",
    "list_models": "mgbench.registry",
    "register_model": "mgbench.registry",
    "register_metric": "mgbench.metrics.registry",
    "list_metrics": "mgbench.metrics.registry",
    "register_dataset": "mgbench.data.registry",
    "list_datasets": "mgbench.data.registry",
    "score": "mgbench.api",
    "save_stats": "mgbench.api",
    "run": "mgbench.api",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mgbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
