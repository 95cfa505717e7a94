"""mgbench: a benchmark and evaluation suite for multi-scale generative image models.

The public API for plugging in a model::

    from mgbench import GenerativeModel, DataSpec, register_model

    @register_model("my-gan")
    class MyGAN(GenerativeModel):
        ...
"""

from mgbench.contract import DataSpec, GenerativeModel, Reconstructs
from mgbench.errors import UsageError
from mgbench.registry import create_model, list_models, register_model

__all__ = [
    "DataSpec",
    "GenerativeModel",
    "Reconstructs",
    "UsageError",
    "create_model",
    "list_models",
    "register_model",
]
__version__ = "0.1.0"
