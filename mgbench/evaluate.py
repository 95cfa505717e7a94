"""Scoring: the selected metrics of a set of samples against the held-out reference, from ONE
feature pass.

The metrics themselves are registered units (:mod:`mgbench.metrics.registry`; mgbench's own in
:mod:`mgbench.metrics.catalog`). :class:`Evaluator` holds what stays the same across a run's
jobs and builds only what the selected metrics need: the feature extractor, the reference
split and its cached features, the LPIPS network. The runner builds one in its own process
before any job trains (so a missing weights file stops the run first, and the domain
classifier is trained and cached once); each job's process builds its own from those caches.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mgbench import seeding
from mgbench.cache import cache_root, cached
from mgbench.config import EvalConfig, RunConfig
from mgbench.contract import GenerativeModel
from mgbench.data import ImageSet, to_float
from mgbench.errors import UsageError
from mgbench.features.clip import CLIPExtractor, find_clip_weights
from mgbench.features.dinov2 import DINOv2Extractor, find_dinov2_weights
from mgbench.features.domain import domain_extractor
from mgbench.features.extract import Extractor, extract_features, images_sha256, reference_features
from mgbench.features.inception import InceptionExtractor, find_inception_weights
from mgbench.features.lpips_net import lpips_model
from mgbench.features.weights import safe_load_state_dict
from mgbench.metrics import registry
from mgbench.metrics.registry import FEATURES, LPIPS, Metric

NO_FEATURES = "none"  # the feature_extractor column of rows scored without a feature pass


def resolve_extractor(config: RunConfig) -> str:
    """``inception``, ``domain``, ``dinov2`` or ``clip``. ``auto`` takes inception only when its
    weights are present; an explicit choice without its weights is an error here, before anything
    trains."""
    choice, _, variant = config.eval.feature_extractor.partition(":")
    if choice == "domain":
        return "domain"
    if choice in ("dinov2", "clip"):
        find = find_dinov2_weights if choice == "dinov2" else find_clip_weights
        find(config.eval.weights, *([variant] if variant else []))
        return choice
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


def build_extractor(config: RunConfig, device: torch.device, train: ImageSet | None,
                    heldout: ImageSet) -> Extractor:
    """The run's feature extractor (:func:`resolve_extractor`), its weights read safely."""
    kind = resolve_extractor(config)
    variant = config.eval.feature_extractor.partition(":")[2]
    if kind == "inception":
        return InceptionExtractor(config.eval.weights, device)
    if kind == "dinov2":
        return DINOv2Extractor(config.eval.weights, *([variant] if variant else []), device=device)
    if kind == "clip":
        return CLIPExtractor(config.eval.weights, *([variant] if variant else []), device=device)
    if train is None:
        raise ValueError("the domain extractor needs the training split")
    return domain_extractor(train, heldout, dataset=dataset_key(config), device=device)


def dataset_key(config: RunConfig) -> dict[str, Any]:
    """The dataset spec that cache keys hold (the images' own hash is added by the caches)."""
    d = config.data
    return {"name": d.name, "resolution": d.resolution, "train_size": d.train_size,
            "reference_size": d.reference_size, "seed": d.seed}


@dataclass
class EvalContext:
    """What a metric's ``compute(ctx)`` may read. Only what some selected metric needs is built:
    ``features`` and ``reference_features`` are empty unless one needs :data:`FEATURES`, ``lpips``
    is None unless one needs :data:`LPIPS`."""

    samples: torch.Tensor  # uint8 N×C×H×W on the CPU
    reference: ImageSet  # the real images the samples are scored against (the held-out split)
    train: ImageSet | None  # the training split, when the evaluator was given it
    factor_classes: dict[str, int]  # the dataset's factors (classifier heads) and their class counts
    label_heads: tuple[str, ...]  # the factors whose combination is the class label
    features: dict[str, torch.Tensor]  # the one feature pass over the samples (float64, CPU)
    reference_features: dict[str, torch.Tensor]
    eval: EvalConfig
    extractor_name: str  # the feature extractor's name (NO_FEATURES without a feature pass)
    seed: int  # the job's seed: every metric's randomness derives from it and the metric's name
    device: torch.device
    lpips: Any = None
    model: GenerativeModel | None = None
    requested: torch.Tensor | None = None  # the labels a conditional model was asked for
    drawn_from_train: bool = False  # the samples are training images (the real-data row): no memorisation score
    # Image grids a metric leaves for the report (name → uint8 N×C×H×W, shown 8 per row): the job
    # saves them beside its sample grid as samples/<job>-<name>.png.
    artifacts: dict[str, torch.Tensor] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # per-evaluator memo (reference statistics)
    train_features: Callable[[], torch.Tensor] = field(default=lambda: torch.empty(0))  # the training split's
    # (the one feature pass over it, cached on disk like the reference's)
    cached: Callable[[str, Callable[[], dict[str, torch.Tensor]]], dict[str, torch.Tensor]] = field(
        default=lambda key, compute: compute())  # tensors that depend on the data and extractor only, on disk

    def generator(self, name: str) -> torch.Generator:
        """A private torch RNG for the metric ``name``, seeded from the job's seed."""
        return seeding.generator(seeding.derive_seed("score", name, self.seed))

    def numpy_seed(self, name: str) -> int:
        """A 32-bit seed for libraries that take one (torch-fidelity's ``rng_seed``)."""
        return seeding.derive_seed("score-np", name, self.seed) % 2**32

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per evaluator: for what depends on the reference alone."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]

    def head_logits(self) -> dict[str, torch.Tensor]:
        """The domain classifier's logits per factor of the dataset (empty for other extractors)."""
        return {h: self.features[f"logits_{h}"] for h in self.factor_classes if f"logits_{h}" in self.features}


class Evaluator:
    def __init__(self, config: RunConfig, device: torch.device, reference: ImageSet,
                 train: ImageSet | None = None, heldout: ImageSet | None = None) -> None:
        """``reference``: what samples are scored against. ``train`` is needed for the domain
        extractor (it is trained, or found in the cache, from it) and ``heldout`` (default:
        ``reference``) gives its held-out accuracy: the dataset's own reference split, when the
        samples are scored against images from elsewhere."""
        self.config = config
        self.device = device
        self.reference = reference
        self.train = train
        labelled = next((s for s in (train, heldout, reference) if s is not None and s.factor_classes), reference)
        self.factor_classes, self.label_heads = dict(labelled.factor_classes), tuple(labelled.label_heads)
        self.metrics: list[Metric] = registry.select(config.eval.metrics)
        needs = set().union(*(m.needs for m in self.metrics))
        self.extractor: Extractor | None = None
        self.reference_features: dict[str, torch.Tensor] = {}
        if FEATURES in needs:
            self.extractor = build_extractor(config, device, train, heldout or reference)
            self.reference_features = reference_features(
                self.extractor, reference.images, dataset=dataset_key(config), split="reference")
        self.lpips, self.lpips_backbone = lpips_model(device) if LPIPS in needs else (None, "")
        self.shared: dict[str, Any] = {}
        self.artifacts: dict[str, torch.Tensor] = {}  # of the last score() call

    def subset(self, metrics: Sequence[str], eval_config: EvalConfig) -> Evaluator:
        """An evaluator of other ``metrics`` under other evaluation settings (a smaller sample, for
        the metrics during training) that shares this one's feature extractor, reference features
        and LPIPS network, so that a job holds one of each. The metrics may need only what this
        evaluator built."""
        other = copy.copy(self)
        other.config = dataclasses.replace(self.config, eval=eval_config)
        other.metrics = registry.select(metrics)
        needs = set().union(*(m.needs for m in other.metrics))
        missing = [n for n, built in ((FEATURES, self.extractor), (LPIPS, self.lpips)) if n in needs and built is None]
        if missing:
            raise UsageError(f"metrics {list(metrics)} need {missing}, which the run's own metrics do not",
                             "choose them among the run's metrics (eval.metrics)")
        other.shared = {}  # a memo of the other settings' own
        return other

    @property
    def extractor_name(self) -> str:
        return self.extractor.name if self.extractor is not None else NO_FEATURES

    def describe(self) -> dict[str, Any]:
        """For the manifest: the metrics, the extractor, its weights, (domain) its held-out accuracy."""
        info: dict[str, Any] = {"name": self.extractor_name, "lpips_backbone": self.lpips_backbone,
                                "metrics": [m.name for m in self.metrics]}
        if self.extractor is not None:
            info["weights_sha256"] = self.extractor.weights_sha256
            accuracy = getattr(self.extractor, "accuracy", None)
            if accuracy:
                info["heldout_accuracy"] = accuracy
        return info

    def train_features(self) -> torch.Tensor:
        """The ``pool`` features of the training split, from the cache (computed once)."""
        if "train_features" not in self.shared:
            if self.train is None or self.extractor is None:
                raise ValueError("train_features needs the training split and a feature extractor")
            self.shared["train_features"] = reference_features(
                self.extractor, self.train.images, dataset=dataset_key(self.config), split="train")["pool"]
        return self.shared["train_features"]

    def cached(self, key: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """``compute()`` once per (key, data, extractor) on disk (:mod:`mgbench.cache`), and per evaluator."""
        if key not in self.shared:
            parts = {"kind": key, "version": 1, "dataset": dataset_key(self.config),
                     "extractor": self.extractor_name,
                     "weights_sha256": getattr(self.extractor, "weights_sha256", ""),
                     "reference_images": images_sha256(self.reference.images),
                     "train_images": images_sha256(self.train.images) if self.train is not None else ""}
            self.shared[key] = cached(parts, compute, cache_root() / "derived", label=key)
        return self.shared[key]

    def score(self, samples: torch.Tensor, seed: int, requested: torch.Tensor | None = None,
              model: GenerativeModel | None = None, drawn_from_train: bool = False) -> dict[str, Any]:
        """Every selected metric of uint8 ``samples`` (N×C×H×W). ``requested``: the labels a
        conditional model was given; ``model``: the trained model, for metrics that need it;
        ``drawn_from_train``: the samples are training images (the real-data calibration row)."""
        feats = extract_features(self.extractor, samples) if self.extractor is not None else {}
        ctx = EvalContext(samples=samples, reference=self.reference, train=self.train,
                          factor_classes=self.factor_classes, label_heads=self.label_heads, features=feats,
                          reference_features=self.reference_features, eval=self.config.eval,
                          extractor_name=self.extractor_name, seed=seed,
                          device=self.device, lpips=self.lpips, model=model,
                          requested=None if requested is None else requested.cpu(), shared=self.shared,
                          drawn_from_train=drawn_from_train, train_features=self.train_features,
                          cached=self.cached)
        out: dict[str, Any] = {"feature_extractor": self.extractor_name, "num_samples": len(samples),
                               "num_reference": len(self.reference), "lpips_backbone": self.lpips_backbone}
        for unit in self.metrics:
            start = time.perf_counter()
            out.update(unit.compute(ctx))
            out[f"time_{unit.name}_s"] = round(time.perf_counter() - start, 3)
        self.artifacts = ctx.artifacts
        return out


def cost(model: GenerativeModel, batch: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
    """FLOPs of sampling and of a training step per image (torch.utils.flop_counter).

    The training step runs on a copy of the model under a forked RNG, so counting changes nothing.
    """
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
