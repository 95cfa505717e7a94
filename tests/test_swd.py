"""Multi-scale SWD: a NumPy port of Karras et al.'s code, known effects of blur and colour casts
on the pyramid levels, invariances, seeding and level naming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from mgbench.errors import UsageError
from mgbench.metrics import swd
from mgbench.metrics.swd import (
    multiscale_swd,
    sliced_wasserstein,
    swd_descriptors,
    swd_from_descriptors,
    swd_resolutions,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shapes_like(n: int, res: int, seed: int) -> torch.Tensor:
    """uint8 images in [60, 195]: a smooth random colour field plus stripes of period 2-4 px."""
    g = gen(seed)
    base = torch.rand(n, 3, 4, 4, generator=g) * 95 + 80
    img = F.interpolate(base, size=(res, res), mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    theta = torch.rand(n, 1, 1, generator=g) * math.pi
    period = 2 + 2 * torch.rand(n, 1, 1, generator=g)
    stripes = torch.cos(2 * math.pi * (xx * theta.cos() + yy * theta.sin()) / period)
    return (img + 20 * stripes[:, None]).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return shapes_like(64, 32, 0)


# ---------------------------------------------------------------- levels


@pytest.mark.parametrize(
    "res,min_res,levels",
    [(16, 8, [16, 8]), (32, 8, [32, 16, 8]), (64, 8, [64, 32, 16, 8]), (64, 16, [64, 32, 16]), (28, 8, [28, 14])],
)
def test_levels_are_named_by_their_resolution(res: int, min_res: int, levels: list[int]) -> None:
    assert swd_resolutions(res, min_res) == levels
    x = shapes_like(4, res, 1)
    out = multiscale_swd(x, x, gen(0), min_resolution=min_res, patches_per_image=16)
    assert list(out) == [f"swd_{r}px" for r in levels] + ["swd_mean"]
    assert out["swd_mean"] == pytest.approx(np.mean([out[f"swd_{r}px"] for r in levels]))


def test_descriptors_are_normalised_per_channel(images: torch.Tensor) -> None:
    desc = swd_descriptors(images, gen(0))
    assert list(desc) == [32, 16, 8]
    for d in desc.values():
        assert d.shape == (64 * 128, 147)
        per_channel = d.view(-1, 3, 49).transpose(0, 1).reshape(3, -1)
        torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(per_channel.std(1, correction=0), torch.ones(3), atol=1e-4, rtol=0)


def test_bad_inputs_are_usage_errors(images: torch.Tensor) -> None:
    with pytest.raises(UsageError):
        multiscale_swd(images.float(), images.float(), gen(0))
    with pytest.raises(UsageError):
        multiscale_swd(images[:, :, :4, :4], images[:, :, :4, :4], gen(0))
    with pytest.raises(UsageError):
        swd_from_descriptors(swd_descriptors(images, gen(0)), swd_descriptors(images[:, :, :16, :16], gen(0)), gen(0))


# ---------------------------------------------------------------- against the original code


def karras_swd(a: np.ndarray, b: np.ndarray, positions: list, directions: list) -> list[float]:
    """NumPy port of progressive_growing_of_gans/metrics/sliced_wasserstein.py, with its random
    draws (patch centres, directions) given instead of taken from np.random. The original lays
    patches out transposed (x before y); here (y, x), which only permutes the 147 components.
    """
    kernel = np.float32([1, 4, 6, 4, 1])
    kernel = np.outer(kernel, kernel)[None, None] / 256.0

    def pyr_down(x: np.ndarray) -> np.ndarray:
        return scipy.ndimage.convolve(x, kernel, mode="mirror")[:, :, ::2, ::2]

    def pyr_up(x: np.ndarray) -> np.ndarray:
        s = x.shape
        res = np.zeros((s[0], s[1], s[2] * 2, s[3] * 2), x.dtype)
        res[:, :, ::2, ::2] = x
        return scipy.ndimage.convolve(res, kernel * 4.0, mode="mirror")

    def pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
        out = [np.float32(x)]
        for _ in range(1, levels):
            out.append(pyr_down(out[-1]))
            out[-2] -= pyr_up(out[-1])
        return out

    def descriptors(level: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        n, c, h, w = level.shape
        p = ys.shape[1]
        nhood, chan, dy, dx = np.ogrid[0 : n * p, 0:c, -3:4, -3:4]
        img = nhood // p
        y = dy + ys.reshape(-1, 1, 1, 1)
        x = dx + xs.reshape(-1, 1, 1, 1)
        return level.flat[((img * c + chan) * h + y) * w + x]

    def finalize(desc: np.ndarray) -> np.ndarray:
        desc = desc - np.mean(desc, axis=(0, 2, 3), keepdims=True)
        desc /= np.std(desc, axis=(0, 2, 3), keepdims=True)
        return desc.reshape(desc.shape[0], -1)

    levels = len(positions[0])
    pyr_a, pyr_b = pyramid(a, levels), pyramid(b, levels)
    results = []
    for lod in range(levels):
        da = finalize(descriptors(pyr_a[lod], *positions[0][lod]))
        db = finalize(descriptors(pyr_b[lod], *positions[1][lod]))
        dists = []
        for dirs in directions[lod]:
            dirs = dirs / np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
            pa, pb = np.sort(da @ dirs, axis=0), np.sort(db @ dirs, axis=0)
            dists.append(np.mean(np.abs(pa - pb)))
        results.append(np.mean(dists) * 1e3)
    return results


def test_matches_a_port_of_the_original_code(images: torch.Tensor) -> None:
    a, b = images[:32], gaussian_blur(images[32:].float(), 3, 0.8).round().to(torch.uint8)
    ours = multiscale_swd(a, b, gen(7))
    # Replay the same draws in the order multiscale_swd makes them: patch centres (y, x) per
    # level for a, then for b, then 4 × (147 × 128) directions per level.
    g = gen(7)
    positions = [
        [tuple(torch.randint(3, r - 3, (32, 128), generator=g).numpy() for _ in "yx") for r in (32, 16, 8)]
        for _ in "ab"
    ]
    directions = [[torch.randn(147, 128, generator=g).double().numpy() for _ in range(4)] for _ in range(3)]
    theirs = karras_swd(a.numpy(), b.numpy(), positions, directions)
    assert [ours["swd_32px"], ours["swd_16px"], ours["swd_8px"]] == pytest.approx(theirs, rel=1e-4)


# ---------------------------------------------------------------- known effects


def test_identical_images_score_below_the_noise_floor(images: torch.Tensor) -> None:
    desc = swd_descriptors(images, gen(1))
    assert all(v == 0.0 for v in swd_from_descriptors(desc, desc, gen(2)).values())
    same = multiscale_swd(images, images, gen(3))  # same images, other patches
    floor = multiscale_swd(images, shapes_like(64, 32, 99), gen(3))  # a second sample
    for key in same:
        assert 0 < same[key] < floor[key]


def test_blur_raises_the_finest_level_far_more_than_the_coarsest(images: torch.Tensor) -> None:
    blurred = gaussian_blur(images.float(), 5, 1.0).round().to(torch.uint8)
    same = multiscale_swd(images, images, gen(4))
    blur = multiscale_swd(images, blurred, gen(4))
    assert blur["swd_32px"] - same["swd_32px"] > 10 * abs(blur["swd_8px"] - same["swd_8px"])
    assert blur["swd_32px"] > 4 * same["swd_32px"]


def test_per_image_colour_cast_moves_only_the_low_pass_level(images: torch.Tensor) -> None:
    # A constant added to an image vanishes from every Laplacian band but the low-pass one.
    # With the same seed both sets get the same patches, so the band levels match exactly.
    offsets = (torch.rand(len(images), 3, 1, 1, generator=gen(5)) * 100 - 50).round()
    cast = (images.float() + offsets).to(torch.uint8)  # images are in [60, 195]: no clipping
    same = multiscale_swd(images, images, gen(6))
    out = multiscale_swd(images, cast, gen(6))
    assert out["swd_32px"] == pytest.approx(same["swd_32px"], rel=1e-4)
    assert out["swd_16px"] == pytest.approx(same["swd_16px"], rel=1e-4)
    assert out["swd_8px"] > 10 * same["swd_8px"]


def test_blind_to_one_colour_map_applied_to_the_whole_set(images: torch.Tensor) -> None:
    # Per-set, per-channel normalisation (the original's finalize_descriptors) removes a·x + b
    # per channel: documented behaviour, not a wish.
    base = images.clone()
    base[:, 1] = images[:, 1] // 2 * 2  # even values, so that halving below is exact
    mapped = base.clone()
    mapped[:, 0] = base[:, 0] + 40  # images are in [60, 195]: no overflow
    mapped[:, 1] = base[:, 1] // 2 + 5
    desc_a, desc_b = swd_descriptors(base, gen(8)), swd_descriptors(mapped, gen(8))
    for key, value in swd_from_descriptors(desc_a, desc_b, gen(9)).items():
        assert value < 1e-2, key


# ---------------------------------------------------------------- mechanics


def test_seeded_and_reproducible(images: torch.Tensor) -> None:
    a, b = images[:32], shapes_like(32, 32, 2)

    def run(seed: int) -> dict[str, float]:
        return multiscale_swd(a, b, gen(seed), patches_per_image=16)

    assert run(10) == run(10)
    assert run(10) != run(11)


def test_descriptors_do_not_depend_on_the_batch_size(images: torch.Tensor, monkeypatch) -> None:
    full = swd_descriptors(images[:40], gen(12))
    monkeypatch.setattr(swd, "_BATCH", 7)
    for res, desc in swd_descriptors(images[:40], gen(12)).items():
        torch.testing.assert_close(desc, full[res], rtol=0, atol=0)


def test_grey_images_are_tiled_to_rgb(images: torch.Tensor) -> None:
    grey = images[:32, :1]
    a = multiscale_swd(grey, images[:32], gen(13), patches_per_image=16)
    b = multiscale_swd(grey.expand(-1, 3, -1, -1).contiguous(), images[:32], gen(13), patches_per_image=16)
    assert a == b


def test_sets_of_different_sizes_are_subsampled(images: torch.Tensor) -> None:
    desc_a = swd_descriptors(images, gen(14))[8]
    desc_b = swd_descriptors(images[:40], gen(15))[8]
    value = sliced_wasserstein(desc_a, desc_b, gen(16))
    assert 0 < value < 1  # same distribution: a small raw distance (×10³ gives the usual units)
