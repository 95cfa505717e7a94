"""The fast Inception pass against torch-fidelity's own forward, on random weights of the real layout.

The reference is always torch-fidelity 0.4.0's ``FeatureExtractorInceptionV3.forward`` (and its
``interpolate_bilinear_2d_like_tensorflow1x``), run on the same images and the same state dict.
Agreement is measured relative to the scale of each feature (max |a - b| / max |b| over a
batch): per element, logits near zero are sums of large terms of both signs, where float32
rounding alone gives large relative errors.
"""

from __future__ import annotations

import io

import pytest
import torch
from fake_weights import random_inception_state
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from mgbench.features import inception
from mgbench.features.extract import extract_features

FEATURE_RTOL = 1e-5  # the bound; measured: about 1e-6 (float32 rounding)
FID_RTOL = 1e-4


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: steadier on a loaded 2-core machine; results do not depend on it here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_inception_state()


@pytest.fixture(scope="module")
def nets(state):
    """(torch-fidelity's module, the fast one) on the same weights."""
    reference = inception.load_reference_module(state)
    return reference, inception.FastInceptionV3(reference)


class ImageDataset(torch.utils.data.Dataset):
    """uint8 C×H×W tensors, as torch-fidelity takes its inputs."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def scaled_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Random uint8 images; grey ones tiled to RGB as mgbench does (to_rgb_uint8)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return x.expand(-1, 3, -1, -1) if channels == 1 else x


# --- the pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 16), (32, 32), (64, 64), (37, 37), (20, 48), (512, 400), (299, 299)])
def test_resize_matrix_is_torch_fidelitys_tf1_bilinear(shape):
    """Up- and downsampling, odd and non-square sizes; 299 px is the exact identity in both."""
    x = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(0)) * 255
    ours = inception.resize_like_tf1(x)
    theirs = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert ours.shape == theirs.shape == (2, 3, 299, 299)
    if shape == (299, 299):
        assert torch.equal(ours, theirs) and torch.equal(ours, x)
    else:
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)  # float32 ulp at 255 is 3e-5
        assert not torch.allclose(ours, torch.nn.functional.interpolate(x, size=299, mode="bilinear"), atol=1.0)


def test_resize_matrix_rows_are_two_tap_and_sum_to_one():
    m = inception.tf1_resize_matrix(32)
    assert m.shape == (299, 32)
    torch.testing.assert_close(m.sum(1), torch.ones(299))
    assert ((m > 0).sum(1) <= 2).all() and (m >= 0).all()
    assert m[0, 0] == 1 and m[-1, -1] == 1  # TF1: sample i at i·32/299 — the first pixel, the clamped last


def test_folded_batchnorm_equals_conv_then_batchnorm():
    g = torch.Generator().manual_seed(0)
    block = BasicConv2d(5, 7, kernel_size=3, padding=1).eval()
    with torch.no_grad():
        for p in (block.conv.weight, block.bn.weight, block.bn.bias, block.bn.running_mean):
            p.copy_(torch.randn(p.shape, generator=g))
        block.bn.running_var.copy_(torch.rand(7, generator=g) + 0.1)
    x = torch.randn(3, 5, 9, 9, generator=g)
    with torch.no_grad():
        before = block(x.clone())
        inception._fold_batchnorm(block)
        after = block(x.clone())
    assert isinstance(block.bn, torch.nn.Identity) and block.conv.bias is not None
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


# --- the whole pass ------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "channels"), [(16, 1), (32, 3), (64, 3), (299, 3)])
def test_fast_pass_features_equal_torch_fidelitys(nets, size, channels):
    reference, fast = nets
    x = images(2, channels, size, seed=size + channels)
    with torch.inference_mode():
        pool_ref, logits_ref = reference(x)
        pool, logits = fast(x)
    assert pool.dtype == logits.dtype == torch.float32
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    assert scaled_error(pool, pool_ref) < FEATURE_RTOL
    assert scaled_error(logits, logits_ref) < FEATURE_RTOL
    # Not a trivial agreement: the features tell the images apart by far more than the error.
    assert scaled_error(pool_ref[0], pool_ref[1]) > 1e3 * FEATURE_RTOL


def test_fast_pass_is_as_close_to_float64_as_torch_fidelity_float32(state, nets):
    """Against torch-fidelity's forward run in float64 (its module and input cast to double):
    the fast pass is float32 rounding away from the exact answer, no further than the original."""
    reference, fast = nets
    exact = inception.load_reference_module(state).double()
    exact.feature_extractor_internal_dtype = torch.float64  # its forward casts the input to this
    x = images(2, 3, 32, seed=7)
    with torch.inference_mode():
        truth = exact(x)  # returned as float32, rounded once from float64
        for ours, theirs, true in zip(fast(x), reference(x), truth, strict=True):
            assert scaled_error(ours, true) < 3 * max(scaled_error(theirs, true), 1e-7)


def test_fast_pass_without_channels_last(nets):
    reference, _ = nets
    plain = inception.FastInceptionV3(reference, channels_last=False)
    x = images(2, 3, 32, seed=3)
    with torch.inference_mode():
        for ours, theirs in zip(plain(x), reference(x), strict=True):
            assert scaled_error(ours, theirs) < FEATURE_RTOL


def fid_low_rank(x: torch.Tensor, y: torch.Tensor) -> float:
    """FID of two small sets (N < d) exactly, in float64: with A, B the centred sets over √(N-1),
    Σ₁ = AᵀA and Σ₂ = BᵀB, the non-zero eigenvalues of Σ₁Σ₂ are the squared singular values of
    ABᵀ (N×N), so tr √(Σ₁Σ₂) is its nuclear norm: FID = ‖μ₁-μ₂‖² + ‖A‖² + ‖B‖² - 2‖ABᵀ‖_*.
    (A 2048×2048 sqrtm takes a minute on this machine; this takes milliseconds.)"""
    x, y = x.double(), y.double()
    a = (x - x.mean(0)) / (len(x) - 1) ** 0.5
    b = (y - y.mean(0)) / (len(y) - 1) ** 0.5
    mean = (x.mean(0) - y.mean(0)).square().sum()
    return float(mean + a.square().sum() + b.square().sum() - 2 * torch.linalg.svdvals(a @ b.T).sum())


def test_low_rank_fid_is_torch_fidelitys_fid():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 40, generator=g), torch.randn(12, 40, generator=g) * 1.5 + 0.3
    theirs = fid_statistics_to_metric(fid_features_to_statistics(x), fid_features_to_statistics(y), verbose=False)
    assert fid_low_rank(x, y) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)


def test_fid_from_the_fast_pass_equals_fid_from_torch_fidelitys(tmp_path, state, nets):
    """The whole path (mgbench's extractor and extract_features) against torch-fidelity's own
    forward, on the same shapes images and weights: the FID of the two sets agrees."""
    from mgbench.data import load_dataset

    reference, _ = nets
    weights = tmp_path / inception.WEIGHTS_FILE
    torch.save(state, weights)
    fake = load_dataset("shapes", "train", resolution=32, train_size=12, seed=0).images
    real = load_dataset("shapes", "reference", resolution=32, reference_size=12, seed=0).images
    ex = inception.InceptionExtractor(weights)
    ours = fid_low_rank(extract_features(ex, fake)["pool"], extract_features(ex, real)["pool"])
    with torch.inference_mode():
        theirs = fid_low_rank(reference(fake)[0], reference(real)[0])
    assert theirs > 0.01  # two different sets: a distance well away from 0
    assert abs(ours - theirs) / theirs < FID_RTOL


# --- the extractor around it -----------------------------------------------------------------------


def test_extractor_reads_weight_files_only_with_weights_only(tmp_path, state, monkeypatch):
    """The fast pass is built from torch-fidelity's module, which calls torch.load(weights_only=False):
    it must only ever see the in-memory copy, never a file."""
    weights = tmp_path / inception.WEIGHTS_FILE
    torch.save(state, weights)
    calls = []
    real_load = torch.load

    def spy(f, *args, **kwargs):
        calls.append((f, kwargs.get("weights_only")))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    inception.InceptionExtractor(weights)
    assert calls, "no load seen: the spy is not on the path"
    for f, weights_only in calls:
        assert weights_only is True or isinstance(f, io.BytesIO), (f, weights_only)


def test_extract_features_takes_the_extractors_batch_size():
    class Counting:
        name, weights_sha256, feature_names, device = "count", "0", ("pool",), torch.device("cpu")

        def __init__(self, batch_size=None):
            if batch_size is not None:
                self.batch_size = batch_size
            self.sizes = []

        def __call__(self, x):
            self.sizes.append(len(x))
            return (x.flatten(1).float(),)

    x = torch.zeros(7, 3, 2, 2, dtype=torch.uint8)
    ex = Counting(3)
    extract_features(ex, x)
    assert ex.sizes == [3, 3, 1]
    ex = Counting()
    extract_features(ex, torch.zeros(250, 3, 2, 2, dtype=torch.uint8))
    assert ex.sizes == [200, 50]
    ex = Counting(3)
    extract_features(ex, x, batch_size=5)  # an explicit batch size wins
    assert ex.sizes == [5, 2]
    assert inception.CPU_BATCH == 32 and inception.CUDA_BATCH == 200


def test_tf32_switch_is_restored_even_after_an_error():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with inception._tf32(False):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with pytest.raises(RuntimeError), inception._tf32(False):
            raise RuntimeError("boom")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_pass_on_cuda_equals_torch_fidelity_on_cpu(nets):
    reference, fast = nets
    gpu = inception.FastInceptionV3(reference).cuda()
    x = images(4, 3, 32, seed=11)
    with torch.inference_mode(), inception._tf32(False):
        for ours, theirs in zip(gpu(x.cuda()), reference(x), strict=True):
            assert scaled_error(ours.cpu(), theirs) < FEATURE_RTOL


# --- pytorch-fid: the same network, other preprocessing ------------------------------------------


def test_pytorch_fid_has_the_same_tensors_and_differs_only_in_preprocessing(state, nets):
    """pytorch-fid 0.3.0's FID Inception holds the very tensors of torch-fidelity's layout under the
    same names, so one random file serves both (tests/benchmarks/bench_peers.py). Fed the same
    resized and scaled input it gives torch-fidelity's features: the tools' FIDs differ through
    their resize (PyTorch's half-pixel bilinear against TF1's) and scaling (x/255·2-1 against
    (x-128)/128) alone."""
    from unittest import mock

    pfi = pytest.importorskip("pytorch_fid.inception")  # pip install --no-deps pytorch-fid==0.3.0
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state):
        theirs = pfi.InceptionV3([3], resize_input=False, normalize_input=False).eval()
        layout = pfi.fid_inception_v3().state_dict()
    assert layout.keys() == state.keys()
    assert all(layout[k].shape == state[k].shape for k in state)
    reference, _ = nets
    x = images(2, 3, 32, seed=5)
    with torch.inference_mode():
        same_input = theirs((inception.resize_like_tf1(x.float()) - 128) / 128)[0].flatten(1)
        own_input = theirs(torch.nn.functional.interpolate(x.float() / 255, size=299, mode="bilinear") * 2 - 1)
        pool = reference(x)[0]
    assert scaled_error(same_input, pool) < FEATURE_RTOL
    assert scaled_error(own_input[0].flatten(1), pool) > 100 * FEATURE_RTOL
