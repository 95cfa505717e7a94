"""Set-up shared by the pytest benchmarks and ``whole_run.py``: data, models, loops, metric suites.

Everything here is built before timing starts; only the callables it returns are timed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch

from mgbench.config import RunConfig
from mgbench.contract import DataSpec, GenerativeModel
from mgbench.data import ImageSet, load_dataset, to_float
from mgbench.data.batches import BatchSampler
from mgbench.registry import create_model
from mgbench.train import Checkpointer, train

BATCH = 64
RES = 32

# Contenders that take tens of seconds per call and that CI need not watch.
heavy_only = pytest.mark.skipif(
    os.environ.get("MGBENCH_BENCH_HEAVY", "") in ("", "0"), reason="heavy: set MGBENCH_BENCH_HEAVY=1 to run it"
)


def model_batch(resolution: int = RES, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of shapes images in [-1, 1] and their class labels (16 classes)."""
    data = load_dataset("shapes", "train", resolution=resolution, train_size=batch, seed=0)
    assert data.labels is not None
    return to_float(data.images), data.labels


def trainer(step: Callable[..., Any], images: torch.Tensor, labels: torch.Tensor | None) -> Callable[[], Any]:
    return lambda: step(images, labels)


def sampler_of(model: GenerativeModel, n: int = BATCH) -> Callable[[], torch.Tensor]:
    """One ``sample(n)`` call in inference mode, balanced labels for a conditional model."""
    labels = torch.arange(n) % model.data.num_classes if model.conditional else None
    gen = torch.Generator().manual_seed(0)

    def sample() -> torch.Tensor:
        with torch.inference_mode():
            return model.sample(n, labels, generator=gen)

    return sample


# --- the harness loop against a bare loop ----------------------------------------------------

HARNESS_MODEL = ("dcgan", {"ngf": 32, "ndf": 32})  # the quick preset's DCGAN


def harness_model(train_size: int = 2000) -> tuple[GenerativeModel, ImageSet, BatchSampler]:
    data = load_dataset("shapes", "train", resolution=RES, train_size=train_size, seed=0)
    torch.manual_seed(0)
    model = create_model(HARNESS_MODEL[0], data.spec(), HARNESS_MODEL[1], "cpu")
    return model, data, BatchSampler(len(data), BATCH, seed=0)


class NullModel(GenerativeModel):
    """A model whose step does nothing: a loop around it times the loop's own bookkeeping."""

    def __init__(self, data: DataSpec) -> None:
        super().__init__(None, data, torch.device("cpu"))
        self.zero = torch.zeros(())

    def train_step(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return {"d_loss": self.zero, "g_loss": self.zero}

    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, self.data.channels, self.data.resolution, self.data.resolution)


def bare_loop(model: GenerativeModel, data: ImageSet, sampler: BatchSampler, steps: int) -> None:
    """The least a training loop does: fetch each step's batch and call ``train_step``."""
    model.train()
    for step in range(steps):
        model.train_step(to_float(data.images[sampler.indices(step)]), None)


def harness_loop(model: GenerativeModel, data: ImageSet, sampler: BatchSampler, steps: int, folder: Path) -> None:
    """``mgbench.train.train`` as a job runs it (log every 25 steps), without checkpoint saves."""
    train(model, data, sampler, steps, log_every=25, checkpoint_every=10**9,
          checkpointer=Checkpointer(folder, "bench", "bench"))


# --- the metric suite against torch-fidelity's FID -------------------------------------------


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images as torch-fidelity wants its inputs: a Dataset of C×H×W tensors."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def random_inception_weights(folder: Path) -> Path:
    """An Inception-v3 weight file with torch-fidelity's layout and random values, for timing:
    the cost of a forward pass does not depend on the values, and the real file cannot be
    downloaded here. Scores computed with it mean nothing."""
    from fake_weights import write_inception_weights  # tests/fake_weights.py, as the unit tests use it

    from mgbench.features.inception import WEIGHTS_FILE

    return write_inception_weights(folder / WEIGHTS_FILE)


def untrained_domain_extractor(train: ImageSet, reference: ImageSet | None = None, **_: Any) -> Any:
    """The domain extractor with its initial weights: the same cost as a trained one, no training."""
    from mgbench.features.domain import DomainExtractor, DomainNet, DomainSettings, heads_of

    settings = DomainSettings()
    heads = heads_of(train)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DomainNet(heads, train.images.shape[-1], settings.width, settings.embed_dim)
    return DomainExtractor(net.state_dict(), heads, train.images.shape[-1], settings, "domain-untrained")


class SuiteSetup:
    """mgbench's whole metric suite (``Evaluator.score``) and torch-fidelity's FID alone, on the
    same N samples against the same N reference images, each with its reference side cached
    (ours: reference features; torch-fidelity: ``input2_cache_name``, written from ours), so both
    time the sample side only. ``kind``: ``domain`` (untrained weights) or ``inception`` (random weights)."""

    def __init__(self, kind: str, n: int, folder: Path) -> None:
        from mgbench.evaluate import Evaluator

        self.kind, self.n, self.folder = kind, n, folder
        weights = random_inception_weights(folder) if kind == "inception" else None
        self.config = RunConfig.from_dict({
            "data": {"name": "shapes", "resolution": RES, "train_size": n, "reference_size": n},
            "eval": {"num_samples": max(n, 10), "feature_extractor": kind,
                     "weights": None if weights is None else str(weights)},
        })
        self.train_set = load_dataset("shapes", "train", resolution=RES, train_size=n, seed=0)
        self.reference = load_dataset("shapes", "reference", resolution=RES, reference_size=n, seed=0)
        self.samples = self.train_set.images  # stand-ins for a model's samples: uint8 N×3×32×32
        untrained = mock.patch("mgbench.evaluate.domain_extractor", untrained_domain_extractor)
        own_cache = mock.patch.dict(os.environ, {"MGBENCH_CACHE": str(folder / "mgbench-cache")})
        with untrained, own_cache:
            self.evaluator = Evaluator(self.config, torch.device("cpu"), self.reference, self.train_set)
        if kind == "inception":
            from mgbench.features.inception import register_with_torch_fidelity

            self.fidelity_name = register_with_torch_fidelity()
            self.fidelity_kwargs: dict[str, Any] = {"feature_extractor_weights_path": str(weights)}
        else:
            from mgbench.features.domain import register_with_torch_fidelity

            self.fidelity_name = register_with_torch_fidelity(self.evaluator.extractor)
            self.fidelity_kwargs = {}
        self._seed_fidelity_cache()

    def _seed_fidelity_cache(self) -> None:
        """Write torch-fidelity's cached reference statistics from the evaluator's reference
        features (the same extractor and weights), so neither side passes the reference twice."""
        from torch_fidelity.metric_fid import fid_features_to_statistics
        from torch_fidelity.utils import resolve_feature_layer_for_metric

        layer = resolve_feature_layer_for_metric("fid", feature_extractor=self.fidelity_name)
        path = self.folder / "fidelity_cache" / f"{self._fidelity_reference}-{self.fidelity_name}-stat-fid-{layer}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        reference = self.evaluator.reference_features["pool"].float()  # torch-fidelity keeps float32
        torch.save(fid_features_to_statistics(reference), path)

    @property
    def _fidelity_reference(self) -> str:
        return f"bench-{self.kind}-{self.n}"

    def suite(self) -> dict[str, Any]:
        return self.evaluator.score(self.samples, seed=0)

    def fidelity_fid(self) -> dict[str, float]:
        import torch_fidelity

        return torch_fidelity.calculate_metrics(
            input1=ImageDataset(self.samples), input2=ImageDataset(self.reference.images), fid=True,
            feature_extractor=self.fidelity_name, cuda=False, verbose=False, save_cpu_ram=True,
            cache=True, cache_root=str(self.folder / "fidelity_cache"),
            input2_cache_name=self._fidelity_reference, **self.fidelity_kwargs,
        )

    def breakdown(self) -> dict[str, float]:
        """Seconds of each part of ``Evaluator.score``, once each, with the same arguments."""
        from torch_fidelity.metric_isc import isc_features_to_metric
        from torch_fidelity.metric_kid import kid_features_to_metric

        from mgbench.features.extract import extract_features
        from mgbench.features.lpips_net import lpips_diversity
        from mgbench.metrics.frechet import feature_statistics, fid_infinity, frechet_distance
        from mgbench.metrics.knn import prdc
        from mgbench.metrics.swd import multiscale_swd

        ev, gen = self.evaluator, torch.Generator().manual_seed(0)
        out: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], Any]) -> Any:
            start = time.perf_counter()
            result = fn()
            out[name] = time.perf_counter() - start
            return result

        feats = timed("feature pass", lambda: extract_features(ev.extractor, self.samples))
        fake, real = feats["pool"], ev.reference_features["pool"]
        n = len(fake)
        timed("fid", lambda: frechet_distance(*feature_statistics(fake), *ev.reference_stats))
        timed("fid_inf (5 sizes)", lambda: fid_infinity(fake, ev.reference_stats, generator=gen))
        timed("inception score", lambda: isc_features_to_metric(feats["logits"], splits=10, shuffle=True, rng_seed=0))
        timed("kid (torch-fidelity)", lambda: kid_features_to_metric(
            fake, real, kid_subsets=100, kid_subset_size=min(1000, n, len(real)), rng_seed=0, verbose=False))
        timed("prdc", lambda: prdc(real=real, fake=fake, k_pr=3, k_dc=5))
        timed("lpips diversity", lambda: lpips_diversity(ev.lpips, self.samples, self.config.eval.lpips_pairs, gen))
        swd_n = getattr(self.config.eval, "swd_images", len(self.samples))  # as Evaluator.score
        timed("ms-swd", lambda: multiscale_swd(self.samples[:swd_n], self.reference.images[:swd_n], gen))
        return out


def plain_model(name: str, resolution: int, overrides: dict[str, Any] | None = None) -> Any:
    """The plain-loop yardstick of ``name`` (see yardsticks.py), or None if it has none."""
    from yardsticks import plain_loop

    try:
        return plain_loop(name, resolution, overrides)
    except KeyError:
        return None


def our_model(name: str, resolution: int, overrides: dict[str, Any] | None = None) -> GenerativeModel:
    torch.manual_seed(0)
    return create_model(name, DataSpec(3, resolution, 16), overrides, "cpu")
