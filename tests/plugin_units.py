"""A metric and a dataset from outside mgbench, registered with the public decorators and loaded
with --plugin: they go through exactly the path of mgbench's own units."""

from __future__ import annotations

import torch

from mgbench.data import Dataset, ImageSet, LoadRequest, register_dataset
from mgbench.metrics.registry import LOWER, Column, register_metric


@register_metric("brightness_gap", columns=[Column("brightness_gap", LOWER)], section="Plugin scores", order=500)
def brightness_gap(ctx) -> dict[str, float]:
    """|mean pixel of the samples − mean pixel of the reference| in [0, 255] units."""
    return {"brightness_gap": abs(ctx.samples.float().mean().item() - ctx.reference.images.float().mean().item())}


def load_bars(request: LoadRequest) -> ImageSet:
    """Bright bars on black, horizontal or vertical (the factor ``orientation``), at a random offset."""
    n = request.train_size if request.split == "train" else request.reference_size
    gen = torch.Generator().manual_seed(request.seed * 2 + (request.split == "reference"))
    r = request.resolution
    orientation = torch.randint(0, 2, (n,), generator=gen)
    offset = torch.randint(0, r - 4, (n,), generator=gen)
    images = torch.zeros(n, 1, r, r, dtype=torch.uint8)
    for i in range(n):
        o = int(offset[i])
        if orientation[i]:
            images[i, 0, :, o:o + 4] = 255
        else:
            images[i, 0, o:o + 4, :] = 255
    return ImageSet(images, orientation, 2, {"orientation": orientation}, {"orientation": 2}, ("orientation",))


BARS = register_dataset(Dataset("bars", load_bars, "bars (test plugin)", factors=("orientation",)))
