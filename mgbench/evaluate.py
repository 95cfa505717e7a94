"""Scoring: every metric of a set of samples against the held-out reference, from ONE feature pass.

:class:`Evaluator` holds what stays the same across a run's jobs: the feature extractor, the
reference split and its cached features, the LPIPS network. The runner builds one in its own
process before any job trains (so a missing weights file stops the run first, and the domain
classifier is trained and cached once); each job's process builds its own from those caches.

Which library computes what, and why:
* IS and KID: torch-fidelity's own functions, on our features (``isc_features_to_metric``,
  ``kid_features_to_metric``), so the numbers are torch-fidelity's.
* FID: :mod:`mgbench.metrics.frechet` (eigenvalues in float64; tested against torch-fidelity
  and ``scipy.linalg.sqrtm``), which also gives FID∞ from subsets of the same features.
* precision/recall and density/coverage: :func:`mgbench.metrics.knn.prdc`, one chunked k-NN
  pass for all four (torch-fidelity's precision/recall materialises N×N blocks and lacks
  density/coverage; it is the independent check in the tests).
* MS-SWD and per-scale mode coverage: mgbench's own (no library has them).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from mgbench import seeding
from mgbench.config import RunConfig
from mgbench.contract import GenerativeModel, can_reconstruct
from mgbench.data import ImageSet, to_float, to_uint8
from mgbench.errors import UsageError
from mgbench.features.domain import domain_extractor
from mgbench.features.extract import Extractor, extract_features, reference_features
from mgbench.features.inception import InceptionExtractor, find_inception_weights
from mgbench.features.lpips_net import lpips_distance, lpips_diversity, lpips_model
from mgbench.features.weights import safe_load_state_dict
from mgbench.metrics.frechet import feature_statistics, fid_infinity, frechet_distance
from mgbench.metrics.knn import prdc
from mgbench.metrics.modes import conditional_accuracy, mode_coverage
from mgbench.metrics.swd import multiscale_swd

log = logging.getLogger(__name__)

EXTRACTORS = ("auto", "inception", "domain")
RECONSTRUCTION_IMAGES = 500

# Direction of each score column: which way is better. Prefix rules cover the per-level and
# per-head columns (swd_32px, modes_coarse, kl_fine, ...). lpips_diversity has none: uniform
# noise is the most diverse of all; its target is the real-data row's value, not a maximum.
HIGHER_IS_BETTER = ["is_mean", "precision", "recall", "density", "coverage", "cond_acc", "modes_"]
LOWER_IS_BETTER = ["fid", "fid_inf", "kid_mean", "swd_", "kl_", "lpips_recon", "mse_recon"]


def direction(column: str) -> str | None:
    """``"higher"``, ``"lower"`` or None (not a score) for a results column."""
    for names, way in ((HIGHER_IS_BETTER, "higher"), (LOWER_IS_BETTER, "lower")):
        if any(column == n or (n.endswith("_") and column.startswith(n)) for n in names):
            return way
    return None


def resolve_extractor(config: RunConfig) -> str:
    """``inception`` or ``domain``. ``auto`` takes inception only when its weights are present;
    an explicit ``inception`` without weights is an error here, before anything trains."""
    choice = config.eval.feature_extractor
    if choice == "domain":
        return "domain"
    try:
        find_inception_weights(config.eval.weights)
    except UsageError:
        if choice == "inception":
            raise
        return "domain"
    return "inception"


def check_extractor(config: RunConfig) -> str:
    """:func:`resolve_extractor`, and for inception also read the weights file safely now, so a
    corrupt file or one holding pickled code stops the run before anything trains."""
    kind = resolve_extractor(config)
    if kind == "inception":
        safe_load_state_dict(find_inception_weights(config.eval.weights))
    return kind


def dataset_key(config: RunConfig) -> dict[str, Any]:
    """The dataset spec that cache keys hold (the images' own hash is added by the caches)."""
    d = config.data
    return {"name": d.name, "resolution": d.resolution, "train_size": d.train_size,
            "reference_size": d.reference_size, "seed": d.seed}


class Evaluator:
    def __init__(self, config: RunConfig, device: torch.device, reference: ImageSet,
                 train: ImageSet | None = None) -> None:
        """``train`` is needed for the domain extractor (it is trained, or found in the cache, from it)."""
        self.config = config
        self.device = device
        self.reference = reference
        self.kind = resolve_extractor(config)
        self.extractor: Extractor
        if self.kind == "inception":
            self.extractor = InceptionExtractor(config.eval.weights, device)
        else:
            if train is None:
                raise ValueError("the domain extractor needs the training split")
            self.extractor = domain_extractor(train, reference, dataset=dataset_key(config), device=device)
        self.reference_features = reference_features(
            self.extractor, reference.images, dataset=dataset_key(config), split="reference")
        self.reference_stats = feature_statistics(self.reference_features["pool"])
        self.lpips, self.lpips_backbone = lpips_model(device)

    def describe(self) -> dict[str, Any]:
        """For the manifest: which extractor, its weights, and (domain) its held-out accuracy."""
        info: dict[str, Any] = {"name": self.extractor.name, "weights_sha256": self.extractor.weights_sha256,
                                "lpips_backbone": self.lpips_backbone}
        accuracy = getattr(self.extractor, "accuracy", None)
        if accuracy:
            info["heldout_accuracy"] = accuracy
        return info

    def score(self, samples: torch.Tensor, seed: int, requested: torch.Tensor | None = None) -> dict[str, Any]:
        """All metrics of uint8 ``samples`` (N×C×H×W); ``requested``: labels a conditional model was given."""
        gen = seeding.generator(seeding.derive_seed("score", seed))
        rng_seed = seeding.derive_seed("score-np", seed) % 2**32
        feats = extract_features(self.extractor, samples)  # the one feature pass
        fake, real = feats["pool"], self.reference_features["pool"]
        n = len(samples)
        out: dict[str, Any] = {"feature_extractor": self.extractor.name, "num_samples": n,
                               "num_reference": len(real), "lpips_backbone": self.lpips_backbone}
        out["fid"] = frechet_distance(*feature_statistics(fake), *self.reference_stats)
        out["fid_inf"] = float(fid_infinity(fake, self.reference_stats, generator=gen)["fid_inf"])
        isc = isc_features_to_metric(feats["logits"], splits=10, shuffle=True, rng_seed=rng_seed)
        out["is_mean"], out["is_std"] = isc["inception_score_mean"], isc["inception_score_std"]
        kid = kid_features_to_metric(fake, real, kid_subsets=100, kid_subset_size=min(1000, n, len(real)),
                                     rng_seed=rng_seed, verbose=False)
        out["kid_mean"], out["kid_std"] = kid["kernel_inception_distance_mean"], kid["kernel_inception_distance_std"]
        out.update(prdc(real=real, fake=fake, k_pr=3, k_dc=5))
        out["lpips_diversity"] = lpips_diversity(self.lpips, samples, self.config.eval.lpips_pairs, gen)
        swd_n = self.config.eval.swd_images  # the first images of each set: both are in random order
        out.update(multiscale_swd(samples[:swd_n], self.reference.images[:swd_n], gen))
        heads = {h: feats[f"logits_{h}"] for h in self.reference.factor_classes if f"logits_{h}" in feats}
        if heads:
            out.update(mode_coverage(heads, self.reference.factor_classes))
            if requested is not None:
                out["cond_acc"] = conditional_accuracy(self._predicted_class(feats), requested.cpu())
        return out

    def _predicted_class(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """The class label predicted by the domain heads, in the dataset's label space."""
        f = self.reference.factor_classes
        if "coarse" in f and "fine" in f:  # shapes: y = c·F + f
            return feats["logits_coarse"].argmax(1) * f["fine"] + feats["logits_fine"].argmax(1)
        return feats["logits_class"].argmax(1)

    def reconstruction(self, model: GenerativeModel) -> dict[str, float]:
        """LPIPS and MSE (on [-1, 1] pixels) of a model's reconstructions of reference images."""
        if not can_reconstruct(model):
            return {}
        real = self.reference.images[:RECONSTRUCTION_IMAGES]
        with torch.inference_mode():
            x = to_float(real.to(model.device))
            recon = model.reconstruct(x)  # type: ignore[attr-defined]
        return {"lpips_recon": lpips_distance(self.lpips, real, to_uint8(recon).cpu()).mean().item(),
                "mse_recon": torch.mean((recon.float() - x) ** 2).item()}


def cost(model: GenerativeModel, batch: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
    """FLOPs of sampling and of a training step per image (torch.utils.flop_counter).

    The training step runs on a copy of the model under a forked RNG, so counting changes nothing.
    """
    import copy

    n = len(batch)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.sample(n, labels, generator=seeding.generator(0, model.device))
    sample_flops = counter.get_total_flops()
    twin = copy.deepcopy(model)
    twin.train()
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        with FlopCounterMode(display=False) as counter:
            twin.train_step(to_float(batch), labels)
    return {"gflops_per_sample": sample_flops / n / 1e9,
            "train_gflops_per_img": counter.get_total_flops() / n / 1e9}
