"""mgbench's own metrics, each one registered unit (entry points in pyproject.toml, group
``mgbench.metrics``, exactly as an outside package registers its metric).

Each unit is a short function that fixes a protocol (k, subset sizes, pairs, patches) and calls
the mathematics in its module; that module is imported inside the function so that this
catalogue — names, columns, directions, sections — loads without torch (the report reads it).

Which library computes what, and why:

* IS and KID: torch-fidelity's own functions, on our features (``isc_features_to_metric``,
  ``kid_features_to_metric``), so the numbers are torch-fidelity's.
* FID: :mod:`mgbench.metrics.frechet` (eigenvalues in float64; tested against torch-fidelity
  and ``scipy.linalg.sqrtm``), which also gives FID∞ from subsets of the same features.
* precision/recall and density/coverage: :func:`mgbench.metrics.knn.prdc`, one chunked k-NN
  pass for all four (torch-fidelity's precision/recall materialises N×N blocks and lacks
  density/coverage; it is the independent check in the tests).
* MS-SWD and per-scale mode coverage: mgbench's own (no library has them).

Every unit draws its randomness from ``ctx.generator(<its name>)``: selecting fewer metrics
never changes another metric's numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mgbench.metrics.registry import (
    FEATURES,
    HIGHER,
    LABELS,
    LOWER,
    LPIPS,
    MODEL,
    PER_SCALE,
    QUALITY,
    TASK,
    TRAIN,
    Column,
    metric,
)

if TYPE_CHECKING:
    from mgbench.evaluate import EvalContext

RECONSTRUCTION_IMAGES = 500  # reference images a model with reconstruct() is asked to reconstruct
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
K_PR, K_DC = 3, 5  # Kynkäänniemi et al. 2019 (k = 3); Naeem et al. 2020 (k = 5)


@metric("fid", columns=[Column("fid", LOWER, console=True, plotted=True), Column("fid_inf", LOWER)],
        section=QUALITY, needs=[FEATURES], order=10)
def fid(ctx: EvalContext) -> dict[str, Any]:
    """Fréchet distance at N (Heusel et al. 2017) and FID∞ extrapolated in 1/N (Chong & Forsyth 2020)."""
    from mgbench.metrics.frechet import feature_statistics, fid_infinity, frechet_distance

    reference = ctx.once("reference_statistics", lambda: feature_statistics(ctx.reference_features["pool"]))
    fake = ctx.features["pool"]
    return {"fid": frechet_distance(*feature_statistics(fake), *reference),
            "fid_inf": float(fid_infinity(fake, reference, generator=ctx.generator("fid"))["fid_inf"])}


@metric("kid", columns=[Column("kid_mean", LOWER, console=True, plotted=True), Column("kid_std", shown=False)],
        section=QUALITY, needs=[FEATURES], order=20)
def kid(ctx: EvalContext) -> dict[str, Any]:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD², cubic kernel, torch-fidelity's code."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    fake, real = ctx.features["pool"], ctx.reference_features["pool"]
    out = kid_features_to_metric(fake, real, kid_subsets=KID_SUBSETS,
                                 kid_subset_size=min(KID_SUBSET_SIZE, len(fake), len(real)),
                                 rng_seed=ctx.numpy_seed("kid"), verbose=False)
    return {"kid_mean": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"]}


@metric("is", columns=[Column("is_mean", HIGHER, plotted=True), Column("is_std", shown=False)],
        section=QUALITY, needs=[FEATURES], order=30)
def inception_score(ctx: EvalContext) -> dict[str, Any]:
    """Inception Score (Salimans et al. 2016), torch-fidelity's code, 10 splits of shuffled samples."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    if "logits" not in ctx.features:
        return {}  # an extractor without class logits (DINOv2, CLIP)
    out = isc_features_to_metric(ctx.features["logits"], splits=IS_SPLITS, shuffle=True,
                                 rng_seed=ctx.numpy_seed("is"))
    return {"is_mean": out["inception_score_mean"], "is_std": out["inception_score_std"]}


@metric("prdc", columns=[Column("precision", HIGHER, console=True, plotted=True),
                         Column("recall", HIGHER, console=True, plotted=True),
                         Column("density", HIGHER, plotted=True), Column("coverage", HIGHER, plotted=True)],
        section=QUALITY, needs=[FEATURES], order=40)
def prdc(ctx: EvalContext) -> dict[str, Any]:
    """Precision/recall (Kynkäänniemi et al. 2019, k = 3) and density/coverage (Naeem et al. 2020, k = 5)."""
    from mgbench.metrics.knn import prdc as knn_prdc

    return knn_prdc(real=ctx.reference_features["pool"], fake=ctx.features["pool"], k_pr=K_PR, k_dc=K_DC)


@metric("lpips_diversity", columns=[Column("lpips_diversity", plotted=True)], section=QUALITY, needs=[LPIPS],
        order=50)
def lpips_diversity(ctx: EvalContext) -> dict[str, Any]:
    """Mean LPIPS between random pairs of samples; no direction: its target is the real-data row."""
    from mgbench.features.lpips_net import lpips_diversity as diversity

    return {"lpips_diversity": diversity(ctx.lpips, ctx.samples, ctx.eval.lpips_pairs, ctx.generator("lpips"))}


def _swd_key(column: str) -> tuple:
    """Levels fine to coarse, then their mean."""
    level = column.removeprefix("swd_").removesuffix("px")
    return (0, -int(level)) if level.isdigit() else (1, 0)


@metric("swd", columns=[Column("swd_{level}px", LOWER), Column("swd_mean", LOWER, console=True, plotted=True)],
        section=PER_SCALE, order=60, column_key=_swd_key)
def swd(ctx: EvalContext) -> dict[str, Any]:
    """Multi-scale sliced Wasserstein distance per Laplacian level (Karras et al. 2018), ×10³.

    The reference's patch descriptors are drawn once per evaluator from a stream of their own (the
    same patches for every job: computed once, half the cost); the samples' patches and the
    projection directions come from the job's stream."""
    from mgbench.metrics.swd import swd_descriptors, swd_from_descriptors
    from mgbench.seeding import derive_seed, generator

    n = ctx.eval.swd_images  # the first images of each set: both are in random order
    reference = ctx.once("swd_reference", lambda: swd_descriptors(
        ctx.reference.images[:n], generator(derive_seed("swd-reference-patches"))))
    return swd_from_descriptors(swd_descriptors(ctx.samples[:n], ctx.generator("swd")), reference,
                                ctx.generator("swd-directions"))


def _modes_key(column: str) -> tuple:
    """Per head, ``modes_`` before ``kl_``; the joint label after the factors."""
    kind, _, head = column.partition("_")
    return (head == "joint", head, kind != "modes")


# The count of the label's modes leads: ``joint`` (the label of a multi-factor dataset, c·F + f on
# shapes) or ``class`` (the one factor of the labelled real datasets).
@metric("modes", columns=[Column("modes_joint", HIGHER, console=True, plotted=True),
                          Column("modes_class", HIGHER, console=True, plotted=True),
                          Column("modes_{head}", HIGHER), Column("kl_{head}", LOWER)],
        section=PER_SCALE, needs=[FEATURES], order=70, column_key=_modes_key)
def modes(ctx: EvalContext) -> dict[str, Any]:
    """Per-scale mode coverage: classes covered per factor of the dataset, KL to uniform (VEEGAN / PacGAN counts)."""
    from mgbench.metrics.modes import mode_coverage

    heads = ctx.head_logits()
    if not heads:
        return {}  # the extractor has no classifier heads for this dataset (e.g. Inception)
    return mode_coverage(heads, ctx.factor_classes, joint=ctx.label_heads)


@metric("cond_acc", columns=[Column("cond_acc", HIGHER, plotted=True)], section=TASK, needs=[FEATURES, LABELS],
        order=80)
def conditional_accuracy(ctx: EvalContext) -> dict[str, Any]:
    """How often the class a conditional model was asked for comes out (the domain classifier's verdict)."""
    from mgbench.metrics.modes import conditional_accuracy as accuracy
    from mgbench.metrics.modes import predicted_labels

    heads = ctx.head_logits()
    if ctx.requested is None or not heads:
        return {}
    return {"cond_acc": accuracy(predicted_labels(heads, ctx.factor_classes, ctx.label_heads), ctx.requested)}


@metric("reconstruction", columns=[Column("lpips_recon", LOWER, plotted=True), Column("mse_recon", LOWER)],
        section=TASK, needs=[MODEL, LPIPS], order=90)
def reconstruction(ctx: EvalContext) -> dict[str, Any]:
    """LPIPS and MSE (on [-1, 1] pixels) of a model's reconstructions of reference images."""
    import torch

    from mgbench.contract import can_reconstruct
    from mgbench.data import to_float, to_uint8
    from mgbench.features.lpips_net import lpips_distance

    model = ctx.model
    if model is None or not can_reconstruct(model):
        return {}
    real = ctx.reference.images[:RECONSTRUCTION_IMAGES]
    with torch.inference_mode():
        x = to_float(real.to(model.device))
        recon = model.reconstruct(x)  # type: ignore[attr-defined]
    return {"lpips_recon": lpips_distance(ctx.lpips, real, to_uint8(recon).cpu()).mean().item(),
            "mse_recon": torch.mean((recon.float() - x) ** 2).item()}


PYRAMID_IMAGES = 500  # samples drawn through the pyramid per job (a second, smaller draw)
PYRAMID_MIN_RESOLUTION = 8  # MS-SWD needs 7×7 patches: 4 px outputs are not scored


@metric("pyramid", columns=[Column("pyramid_swd_{level}px", LOWER)], section=PER_SCALE, needs=[MODEL], order=65,
        column_key=lambda c: (-int(c.removeprefix("pyramid_swd_").removesuffix("px")),))
def pyramid(ctx: EvalContext) -> dict[str, Any]:
    """Each intermediate output of a multi-scale model (LAPGAN's levels, a progressive or multi-scale
    generator's blocks) against the real images' Gaussian pyramid at its resolution, by MS-SWD.

    Does the coarse generator get the coarse structure right? The model's own r-px image (before
    the finer levels add detail) is compared with the real images low-passed to r px (the 5×5
    binomial pyramid of :mod:`mgbench.pyramid`), by the mean over levels of the multi-scale SWD
    (Karras et al. 2018) at that resolution. The final output is the ``swd`` metric's business."""
    import torch

    from mgbench.contract import produces_pyramid
    from mgbench.data import to_float, to_uint8
    from mgbench.metrics.swd import multiscale_swd
    from mgbench.pyramid import downsample

    model = ctx.model
    if model is None or not produces_pyramid(model):
        return {}
    n = min(PYRAMID_IMAGES, ctx.eval.swd_images, len(ctx.reference))
    gen = ctx.generator("pyramid")
    labels = torch.arange(n) % model.data.num_classes if model.conditional else None
    levels: dict[int, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for start in range(0, n, 250):
            batch_labels = None if labels is None else labels[start:start + 250].to(model.device)
            device_gen = torch.Generator(model.device).manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
            outputs = model.sample_pyramid(min(250, n - start), batch_labels, device_gen)  # type: ignore[attr-defined]
            for image in outputs[:-1]:  # the last is the model's sample: scored by `swd`
                levels.setdefault(image.shape[-1], []).append(to_uint8(image.float()).cpu())
    real = to_float(ctx.reference.images[:n])
    out = {}
    for res in sorted(levels, reverse=True):
        if res < PYRAMID_MIN_RESOLUTION:
            continue
        low = real
        while low.shape[-1] > res:
            low = downsample(low)
        scores = multiscale_swd(torch.cat(levels[res]), to_uint8(low), ctx.generator(f"pyramid-{res}"),
                                min_resolution=min(PYRAMID_MIN_RESOLUTION, res))
        out[f"pyramid_swd_{res}px"] = scores["swd_mean"]
    return out


@metric("cmmd", columns=[Column("cmmd", LOWER, plotted=True)], section=QUALITY, needs=[FEATURES], order=35)
def cmmd(ctx: EvalContext) -> dict[str, Any]:
    """CMMD (Jayasumana et al. 2024): 1000 · MMD² with a Gaussian RBF kernel (σ = 10) on CLIP
    embeddings; computed with the ``clip`` extractor only (the paper defines it on CLIP features)."""
    from mgbench.metrics.cmmd import cmmd as distance

    if not ctx.extractor_name.startswith("clip-"):
        return {}
    return {"cmmd": distance(ctx.features["pool"], ctx.reference_features["pool"])}


def _rings_key(column: str) -> tuple:
    """The distances, then the profile's rings in order of frequency."""
    tail = column.removeprefix("spectrum_")
    order = ("dist", "low", "mid", "high")
    return (0, order.index(tail)) if tail in order else (1, int(tail.removeprefix("ring")))


@metric("spectrum", columns=[Column("spectrum_dist", LOWER), Column("spectrum_low", LOWER),
                             Column("spectrum_mid", LOWER), Column("spectrum_high", LOWER, plotted=True),
                             Column("spectrum_ring{ring}", shown=False)],
        section=PER_SCALE, order=66, column_key=_rings_key)
def spectrum(ctx: EvalContext) -> dict[str, Any]:
    """Azimuthally averaged power spectra (Durall et al. 2020): the mean |Δ dB| to the reference's,
    overall and per band (low < 1/8, mid < 1/4, high ≥ 1/4 cycles/px). The profile itself goes
    into hidden ``spectrum_ring<k>`` columns (dB at k/R cycles/px) for the report's figure."""
    from mgbench.metrics.spectrum import MIN_RESOLUTION, radial_profile, spectrum_scores

    if ctx.samples.shape[-1] < MIN_RESOLUTION:
        return {}
    reference = ctx.once("spectrum_reference", lambda: radial_profile(ctx.reference.images))
    scores, profile = spectrum_scores(ctx.samples, reference)
    return {**scores, **{f"spectrum_ring{k + 1}": float(v) for k, v in enumerate(profile.power_db)}}


@metric("fwd", columns=[Column("fwd", LOWER, plotted=True), Column("fwd_low", LOWER), Column("fwd_mid", LOWER),
                        Column("fwd_high", LOWER)], section=PER_SCALE, order=67)
def fwd(ctx: EvalContext) -> dict[str, Any]:
    """Fréchet Wavelet Distance (Veeramacheneni et al., ICLR 2025): per Haar packet (level 4) a
    Fréchet distance, averaged, and per frequency band; no pretrained network, so comparable across
    papers at the same resolution (agrees with the authors' pytorchfwd to 1e-7)."""
    from mgbench.metrics.fwd import LEVEL, frechet_wavelet_distance, max_level, packet_statistics

    if max_level(ctx.samples.shape[-1]) < LEVEL:
        return {}  # below 16 px the authors' level 4 does not run
    reference = ctx.once("fwd_reference", lambda: packet_statistics(ctx.reference.images))
    return frechet_wavelet_distance(ctx.samples, reference)


@metric("vendi", columns=[Column("vendi")], section=QUALITY, needs=[FEATURES], order=55)
def vendi(ctx: EvalContext) -> dict[str, Any]:
    """Vendi score (Friedman & Dieng 2023) of the samples' features, cosine kernel: the effective
    number of distinct samples; no direction (noise is very diverse): its target is the real-data row."""
    from mgbench.metrics.vendi import vendi_score

    return {"vendi": vendi_score(ctx.features["pool"])}


MEMORIZATION = "Memorization and novelty"


@metric("memorization", columns=[Column("copy_rate_pixel", LOWER), Column("copy_rate_feature", LOWER),
                                 Column("nn_pixel_ratio"), Column("nn_feature_ratio"), Column("ct"),
                                 Column("authpct", HIGHER)],
        section=MEMORIZATION, needs=[FEATURES, TRAIN], order=95)
def memorization(ctx: EvalContext) -> dict[str, Any]:
    """Does a model copy its training images? Nearest-training distances of the samples against
    those of held-out real images, in pixel and feature space; the copy rate (samples closer than
    all but 1 % of held-out images); C_T (Meehan et al. 2020) and authenticity (Alaa et al. 2022)
    as dgm-eval computes them. Not for samples drawn from the training split itself (the
    ``real-data`` row): it copies by construction."""
    import torch

    from mgbench.metrics.knn import knn_radii
    from mgbench.metrics.memorization import (
        fit_ct_cells,
        memorization_scores,
        nearest_train_features,
        nearest_train_pixels,
    )

    if ctx.train is None or ctx.drawn_from_train:
        return {}
    train_features = ctx.train_features()
    radii = ctx.cached("memorization-train-radii", lambda: {"radii": knn_radii(train_features, 1)})["radii"]

    def heldout() -> dict[str, Any]:
        pixel = nearest_train_pixels(ctx.reference.images, ctx.train.images)
        feature = nearest_train_features(ctx.reference_features["pool"], train_features)
        return {"pixel_distance": pixel.distance, "pixel_index": pixel.index,
                "feature_distance": feature.distance, "feature_index": feature.index}

    from mgbench.metrics.memorization import Nearest

    held = ctx.cached("memorization-heldout", heldout)
    cells = ctx.once("memorization-ct-cells", lambda: fit_ct_cells(train_features,
                                                                   generator=ctx.generator("ct-cells")))
    result = memorization_scores(
        samples=ctx.samples, train=ctx.train.images, reference=ctx.reference.images,
        sample_features=ctx.features["pool"], train_features=train_features,
        reference_features=ctx.reference_features["pool"], generator=ctx.generator("memorization"),
        train_radii=radii, heldout_pixel_nn=Nearest(held["pixel_distance"], held["pixel_index"]),
        heldout_feature_nn=Nearest(held["feature_distance"], held["feature_index"]), ct_cells=cells)
    pairs = result.pairs["pixel"]  # the closest sample beside its nearest training image, closest first
    ctx.artifacts["closest"] = torch.stack([x for s, t in zip(pairs["sample_index"], pairs["train_index"], strict=True)
                                            for x in (ctx.samples[s], ctx.train.images[t])])
    return result.scores
