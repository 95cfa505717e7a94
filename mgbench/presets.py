"""Named starting points for a run. Each is a TOML-shaped dict over the defaults of
:class:`mgbench.config.RunConfig`; ``--config`` files and CLI flags are merged on top.
"""

from __future__ import annotations

from typing import Any

from mgbench.errors import unknown_name

# Slowest first: with several workers the short jobs then fill the end of the run.
ALL_MODELS = ["lapgan", "cgan", "dcgan", "vae"]

# A short-budget recipe for a laptop CPU: narrower networks than the papers', and the GANs at
# Adam lr 5e-4 instead of 2e-4. Measured, shapes 32 px, 1,500 steps × 32, one seed: DCGAN FID 19.5
# and 16 of 16 joint modes at 5e-4 against 39.9 and 10 at 2e-4 (1e-3: 20.7, 15); LAPGAN 33.8 against
# 77.1. The models' own defaults stay the papers'.
_CPU_RECIPE: dict[str, dict[str, Any]] = {
    "dcgan": {"ngf": 32, "ndf": 32, "lr": 5e-4},
    "cgan": {"ngf": 32, "ndf": 32, "lr": 5e-4},
    "vae": {"ngf": 32, "ndf": 32},
    "lapgan": {"width": 32, "coarse_g_hidden": 600, "coarse_d_hidden": 300, "lr": 5e-4},
}

PRESETS: dict[str, dict[str, Any]] = {
    # All four models end to end in about a minute: for tests and a first look.
    "smoke": {
        "name": "smoke",
        "models": ALL_MODELS,
        "seeds": [0],
        "data": {"name": "shapes", "resolution": 16, "train_size": 2_000, "reference_size": 500},
        "train": {"steps": 40, "batch_size": 32, "checkpoint_every": 20, "log_every": 10},
        "eval": {"num_samples": 500, "lpips_pairs": 100},
        "model_overrides": {
            "dcgan": {"ngf": 16, "ndf": 16},
            "cgan": {"ngf": 16, "ndf": 16},
            "vae": {"ngf": 16, "ndf": 16},
            "lapgan": {"width": 16, "coarse_g_hidden": 128, "coarse_d_hidden": 64},
        },
    },
    # The default of `mgbench run`: 4 models × 3 seeds on shapes at 32 px, ≤ 10 min on 2 CPU cores
    # with native bfloat16 (the models' default there; without it, expect about 1.5× longer).
    # Measured there: two jobs at once with one thread each train 1.4-1.6× more images per second
    # than one job with two threads, and batch 32 reached a lower DCGAN FID than batch 64 on
    # the same number of images.
    "quick": {
        "name": "quick",
        "models": ALL_MODELS,
        "seeds": [0, 1, 2],
        "workers": 2,
        "data": {"name": "shapes", "resolution": 32, "train_size": 20_000, "reference_size": 2_000},
        "train": {"steps": 1_500, "batch_size": 32, "checkpoint_every": 500, "log_every": 50},
        "eval": {"num_samples": 2_000, "swd_images": 500},
        "model_overrides": _CPU_RECIPE,
    },
    # For a GPU and real data: the papers' widths, batch 128 (DCGAN) and 50k samples for FID.
    "standard": {
        "name": "standard",
        "models": ALL_MODELS,
        "seeds": [0, 1, 2],
        "data": {"name": "cifar10", "resolution": 32, "train_size": 50_000, "reference_size": 10_000},
        "train": {"steps": 50_000, "batch_size": 128, "checkpoint_every": 5_000, "log_every": 100},
        "eval": {"num_samples": 50_000},
    },
}

# Real data on a CPU: the MNIST test split here (users point --data-root at their MNIST folder).
PRESETS["mnist"] = {
    **PRESETS["quick"],
    "name": "mnist",
    "data": {"name": "mnist", "resolution": 32, "train_size": 60_000, "reference_size": 2_000},
}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise unknown_name("preset", name, list(PRESETS))
    return PRESETS[name]
