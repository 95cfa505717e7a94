"""Named starting points for a run. Each is a TOML-shaped dict over the defaults of
:class:`mgbench.config.RunConfig`; ``--config`` files and CLI flags are merged on top.
"""

from __future__ import annotations

from typing import Any

from mgbench.errors import unknown_name

DEFAULT = "quick"  # the preset of a bare `mgbench run`

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

# The multi-scale models, slowest first. CPU widths: the papers' (512 maps for ProGAN/MSG-GAN,
# 64 for pix2pixHD and NVAE) cost minutes per step on a CPU; these keep every mechanism (every
# scale, fade, discriminator and latent group) at a quarter to an eighth of the width.
ZOO_MODELS = ["hiergan", "msggan", "progan", "hvae"]
# ProGAN at Adam lr 2e-3 (paper: 1e-3): on 800 steps its WGAN-GP critic drifts at 1e-3 (D loss
# -14.9 at the end; -5.6 at 2e-3). Measured, this preset, seed 0, float32, with the paper's
# running average of G: FID 65.4 at 1e-3, 40.7 at 2e-3 (seed 1: 54.5), 55.5 at 4e-3, 103.8 at 5e-4.
_CPU_ZOO: dict[str, dict[str, Any]] = {
    "progan": {"nz": 128, "ngf": 64, "ndf": 64, "lr": 2e-3},
    "msggan": {"nz": 128, "ngf": 64, "ndf": 64},
    "hiergan": {"ngf": 32, "width": 16, "ndf": 16},
    "hvae": {"width": 16},
}
_SMOKE_ZOO: dict[str, dict[str, Any]] = {  # tiny, for the tests that run every model
    "progan": {"nz": 16, "ngf": 16, "ndf": 16},
    "msggan": {"nz": 16, "ngf": 16, "ndf": 16},
    "hiergan": {"nz": 16, "ngf": 16, "width": 8, "ndf": 8},
    "hvae": {"latent_dim": 8, "z_channels": 4, "width": 8},
}

PRESETS: dict[str, dict[str, Any]] = {
    # All four models end to end in about a minute: for tests and a first look.
    "smoke": {
        "name": "smoke",
        "models": ALL_MODELS,
        "seeds": [0],
        "threads": 1,
        "data": {"name": "shapes", "resolution": 16, "train_size": 2_000, "reference_size": 500},
        "train": {"steps": 40, "batch_size": 32, "checkpoint_every": 20, "log_every": 10},
        "eval": {"num_samples": 500, "lpips_pairs": 100},
        "model_overrides": {
            "dcgan": {"ngf": 16, "ndf": 16},
            "cgan": {"ngf": 16, "ndf": 16},
            "vae": {"ngf": 16, "ndf": 16},
            "lapgan": {"width": 16, "coarse_g_hidden": 128, "coarse_d_hidden": 64},
            **_SMOKE_ZOO,
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
        "threads": 1,  # the jobs run side by side, one per core (execution.workers = auto)
        "data": {"name": "shapes", "resolution": 32, "train_size": 20_000, "reference_size": 2_000},
        "train": {"steps": 1_500, "batch_size": 32, "checkpoint_every": 500, "log_every": 50},
        "eval": {"num_samples": 2_000, "swd_images": 500},
        "model_overrides": _CPU_RECIPE,
    },
    # The question of the suite: single-scale references (DCGAN, VAE) beside every multi-scale
    # model (LAPGAN and the zoo), 3 seeds on shapes at 32 px on a CPU, in float32.
    "multiscale": {
        "name": "multiscale",
        "models": ["hiergan", "msggan", "lapgan", "progan", "hvae", "dcgan", "vae"],
        "seeds": [0, 1, 2],
        "threads": 1,
        "data": {"name": "shapes", "resolution": 32, "train_size": 20_000, "reference_size": 1_000},
        "train": {"steps": 800, "batch_size": 32, "checkpoint_every": 400, "log_every": 50},
        # Curves at 4 points, not 10: the 21 jobs took 16 min 45 s on a 2-core AVX512 EPYC in fp32.
        "eval": {"num_samples": 1_000, "swd_images": 500, "every": 200},
        "model_overrides": {**_CPU_RECIPE, **_CPU_ZOO},
    },
    # For a GPU and real data: the papers' widths, batch 128 (DCGAN) and 50k samples for FID.
    "standard": {
        "name": "standard",
        "models": ALL_MODELS + ZOO_MODELS,
        "seeds": [0, 1, 2],
        "threads": 1,  # on a GPU the CPU threads only feed it; one job per GPU (execution.workers = auto)
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
