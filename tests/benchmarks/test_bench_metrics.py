"""Metrics, the feature pass and the data generator; each beside a competing implementation.

Features for FID, KID and prdc are 2048-d (Inception's pool3 width) at N = 10k, drawn at random:
the cost of these metrics depends on N and d, not on the values. Images are the shapes data at
32 px. The feature extractor is the domain classifier with untrained weights (same cost as the
trained one, no training in the benchmark).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bench_setup import RES, ImageDataset, SuiteSetup, heavy_only, untrained_domain_extractor

from mgbench.data import load_dataset, shapes
from mgbench.features.domain import register_with_torch_fidelity
from mgbench.features.extract import extract_features
from mgbench.features.lpips_net import lpips_distance, lpips_model
from mgbench.metrics.frechet import feature_statistics, frechet_distance
from mgbench.metrics.knn import prdc
from mgbench.metrics.swd import multiscale_swd, swd_descriptors, swd_from_descriptors

N_FEATURES, DIM = 10_000, 2048
N_IMAGES = 2_000  # feature pass, MS-SWD, generator
KID_SUBSETS = 10  # of 1000 each (the evaluation uses 100: ten times this cost)
LPIPS_PAIRS = 100
SUITE_N = {"domain": 1_000, "inception": 200}  # samples scored: a suite call about a minute here (loaded CPU)


@pytest.fixture(scope="module")
def features() -> tuple[torch.Tensor, torch.Tensor]:
    """(real, fake): N×2048 float32, the fake set shifted and wider."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(N_FEATURES, DIM, generator=g)
    fake = torch.randn(N_FEATURES, DIM, generator=g).mul_(1.1).add_(0.1)
    return real, fake


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """(samples, reference): uint8 N×3×32×32 from two disjoint shapes splits."""
    samples = load_dataset("shapes", "train", resolution=RES, train_size=N_IMAGES, seed=0).images
    reference = load_dataset("shapes", "reference", resolution=RES, reference_size=N_IMAGES, seed=0).images
    return samples, reference


@pytest.fixture(scope="module")
def domain():
    return untrained_domain_extractor(load_dataset("shapes", "train", resolution=RES, train_size=64, seed=0))


# --- feature pass ----------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["mgbench", "torch-fidelity"])
def test_feature_pass(benchmark, slow, images, domain, impl):
    benchmark.group = f"feature pass domain {RES}px N {N_IMAGES}"
    samples = images[0]
    if impl == "mgbench":
        slow(extract_features, domain, samples)
        return
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    extractor = create_feature_extractor(register_with_torch_fidelity(domain), ["pool"], cuda=False, verbose=False)
    slow(lambda: get_featuresdict_from_dataset(ImageDataset(samples), extractor, 64, False, True, False))


# --- FID, KID, precision/recall/density/coverage on 2048-d features -------------------------


@pytest.mark.parametrize("impl", ["mgbench", pytest.param("torch-fidelity", marks=heavy_only)])
def test_fid(benchmark, slow, features, impl):
    """Statistics of both sets and the distance. torch-fidelity: np.cov and eigvals of Σ₁Σ₂."""
    benchmark.group = f"fid {DIM}-d N {N_FEATURES}"
    real, fake = features
    if impl == "mgbench":
        slow(lambda: frechet_distance(*feature_statistics(fake), *feature_statistics(real)))
        return
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    slow(lambda: fid_statistics_to_metric(fid_features_to_statistics(fake), fid_features_to_statistics(real), False))


def test_kid(benchmark, slow, features):
    """torch-fidelity's KID, which the kid metric unit calls."""
    benchmark.group = f"kid {DIM}-d N {N_FEATURES} {KID_SUBSETS}x1000"
    real, fake = features
    from torch_fidelity.metric_kid import kid_features_to_metric

    slow(lambda: kid_features_to_metric(fake, real, kid_subsets=KID_SUBSETS, kid_subset_size=1000, rng_seed=0,
                                        verbose=False))


@pytest.mark.parametrize("impl", [
    "mgbench-float32",
    pytest.param("mgbench-float64", marks=heavy_only),  # what Evaluator passes (extract_features gives float64)
    pytest.param("torch-fidelity-pr", marks=heavy_only),  # precision and recall only
])
def test_prdc(benchmark, slow, features, impl):
    benchmark.group = f"prdc {DIM}-d N {N_FEATURES}"
    real, fake = features
    if impl.startswith("mgbench"):
        if impl.endswith("64"):
            real, fake = real.double(), fake.double()
        slow(lambda: prdc(real=real, fake=fake))
        return
    from torch_fidelity.metric_prc import prc_features_to_metric

    slow(lambda: prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=10_000, save_cpu_ram=False,
                                        verbose=False))


# --- images: MS-SWD, LPIPS, the shapes generator ---------------------------------------------


@pytest.mark.parametrize("impl", ["both-sets", "reference-descriptors-cached"])
def test_ms_swd(benchmark, slow, images, impl):
    benchmark.group = f"ms-swd {RES}px N {N_IMAGES}"
    samples, reference = images
    if impl == "both-sets":
        slow(lambda: multiscale_swd(samples, reference, torch.Generator().manual_seed(0)))
        return
    cached = swd_descriptors(reference, torch.Generator().manual_seed(1))

    def from_cache() -> dict[str, float]:
        g = torch.Generator().manual_seed(0)
        return swd_from_descriptors(swd_descriptors(samples, g), cached, g)

    slow(from_cache)


@pytest.fixture(scope="module")
def lpips_net():
    return lpips_model("cpu")[0]


@pytest.mark.parametrize("impl", ["mgbench", "lpips-direct"])
def test_lpips(benchmark, images, lpips_net, impl):
    """One batch of pairs: uint8 in, upsampled to 64 px, LPIPS-alex (random backbone: same cost)."""
    benchmark.group = f"lpips {RES}px {LPIPS_PAIRS} pairs"
    a, b = images[0][:LPIPS_PAIRS], images[1][:LPIPS_PAIRS]
    if impl == "mgbench":
        benchmark(lpips_distance, lpips_net, a, b)
        return

    def direct() -> torch.Tensor:
        x, y = (F.interpolate(t.float() / 127.5 - 1, size=64, mode="bilinear") for t in (a, b))
        with torch.no_grad():
            return lpips_net(x, y)

    benchmark(direct)


def test_shapes_generator(benchmark):
    benchmark.group = f"shapes generator {RES}px N {N_IMAGES}"
    benchmark(shapes.generate, torch.arange(N_IMAGES), RES, 0)


# --- the whole suite against torch-fidelity's FID alone ----------------------------------------


@pytest.fixture(scope="module")
def domain_suite(tmp_path_factory):
    return SuiteSetup("domain", SUITE_N["domain"], tmp_path_factory.mktemp("suite-domain"))


@pytest.fixture(scope="module")
def inception_suite(tmp_path_factory):
    return SuiteSetup("inception", SUITE_N["inception"], tmp_path_factory.mktemp("suite-inception"))


@pytest.mark.parametrize("impl", ["mgbench-suite", "torch-fidelity-fid"])
def test_suite_vs_fid_domain(benchmark, slow, domain_suite, impl):
    """All metrics (FID, FID∞, IS, KID, prdc, LPIPS diversity, MS-SWD, modes) from one feature
    pass, against torch-fidelity computing FID alone with the same (registered) extractor."""
    benchmark.group = f"suite vs fid, domain extractor, N {SUITE_N['domain']}"
    slow(domain_suite.suite if impl == "mgbench-suite" else domain_suite.fidelity_fid)


@heavy_only
@pytest.mark.parametrize("impl", ["mgbench-suite", "torch-fidelity-fid"])
def test_suite_vs_fid_inception(benchmark, slow, inception_suite, impl):
    """The same with Inception-v3 (random weights of the real layout: the cost of the real one)."""
    benchmark.group = f"suite vs fid, inception-v3, N {SUITE_N['inception']}"
    slow(inception_suite.suite if impl == "mgbench-suite" else inception_suite.fidelity_fid)
