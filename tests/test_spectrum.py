"""Frequency spectra: the profile against mathematics (Parseval, a sinusoid's ring, grey vs RGB),
known effects on shapes images (a blur raises the high band's distance far more than the low
band's; a period-2 checkerboard shows as a peak at 0.5 cycles/px; a second real sample is a small
floor far below noise), bad input, and the figure's deterministic bytes."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from mgbench.data import load_dataset
from mgbench.errors import UsageError
from mgbench.metrics.spectrum import (
    SpectrumProfile,
    band_of,
    radial_profile,
    ring_index,
    spectrum_distances,
    spectrum_scores,
)
from mgbench.report.spectra_figure import spectra

N = 1000


@functools.cache
def shapes(split: str, n: int = N, res: int = 32) -> torch.Tensor:
    if split == "train":
        return load_dataset("shapes", "train", resolution=res, train_size=n, seed=0).images
    return load_dataset("shapes", "reference", resolution=res, reference_size=n, seed=0).images


@functools.cache
def real_profile() -> SpectrumProfile:
    return radial_profile(shapes("reference"))


def test_rings_and_bands_are_in_cycles_per_pixel() -> None:
    for res in (16, 32, 64):
        p = radial_profile(shapes("train", 8, res))
        assert len(p.frequency) == round(res / math.sqrt(2))  # to the corners
        np.testing.assert_allclose(p.frequency, np.arange(1, len(p.frequency) + 1) / res)
        bands = band_of(p.frequency)
        assert {"low", "mid", "high"} == set(bands)
        assert (p.frequency[bands == "low"] < 1 / 8).all() and (p.frequency[bands == "high"] >= 1 / 4).all()
    rings = ring_index(32)
    assert rings[0, 0] == 0 and rings[0, 16] == 16 and rings[16, 16] == 23  # DC, Nyquist on an axis, the corner


def test_parseval_and_a_sinusoid_lands_on_its_ring() -> None:
    """The mean power over all frequencies is the mean squared grey level; a cosine of frequency
    (3/32, 4/32) cycles/px puts its power on ring 5 (|f|·32 = 5) and nowhere else."""
    res = 32
    yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    wave = 0.5 + 0.4 * torch.cos(2 * math.pi * (3 * xx + 4 * yy) / res)
    img = torch.stack([(wave * 255).round()] * 2).to(torch.uint8)[:, None]  # two equal grey images
    grey = img[0, 0].double() / 255
    power = torch.fft.fft2(grey).abs().square() / res**2
    assert float(power.mean()) == pytest.approx(float(grey.square().mean()), rel=1e-12)
    p = radial_profile(img)
    assert int(np.argmax(p.power_db)) + 1 == 5
    others = np.delete(p.power_db, 4)
    assert p.power_db[4] > others.max() + 30  # quantisation noise only elsewhere
    np.testing.assert_allclose(p.std_db, 0, atol=1e-12)  # two equal images


def test_grey_is_rec601_luma_and_batches_do_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    grey = shapes("train", 64)[:, :1]
    rgb = grey.expand(-1, 3, -1, -1).contiguous()
    np.testing.assert_allclose(radial_profile(rgb).power_db, radial_profile(grey).power_db, rtol=0, atol=1e-9)
    x = shapes("train", 64)
    whole = radial_profile(x)
    monkeypatch.setattr("mgbench.metrics.spectrum._BATCH", 7)
    np.testing.assert_allclose(radial_profile(x).power_db, whole.power_db, rtol=0, atol=1e-10)


def test_blur_raises_the_high_band_far_more_than_the_low_band() -> None:
    floor = spectrum_distances(radial_profile(shapes("train")), real_profile())
    blurred = spectrum_distances(radial_profile(gaussian_blur(shapes("train"), 3, 0.8)), real_profile())
    assert blurred["spectrum_high"] > 20 * blurred["spectrum_low"]
    assert blurred["spectrum_high"] > 50 * floor["spectrum_high"]
    assert blurred["spectrum_low"] < blurred["spectrum_mid"] < blurred["spectrum_high"]


def test_checkerboard_artefact_is_a_peak_at_half_a_cycle_per_pixel() -> None:
    """A 2×2-periodic pattern [[+a, 0], [0, −a]] = a((−1)^x + (−1)^y)/2, as stride-2 transposed
    convolutions leave (Odena et al. 2016), of a = 12 grey levels: a peak at 0.5 cycles/px."""
    x = shapes("train")
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    pattern = ((-1.0) ** xx + (-1.0) ** yy) / 2
    artefact = (x.float() + 12 * pattern).round().clamp(0, 255).to(torch.uint8)
    p, clean = radial_profile(artefact), radial_profile(x)
    k = int(np.flatnonzero(np.isclose(p.frequency, 0.5))[0])
    diff = p.power_db - clean.power_db
    assert int(np.argmax(diff)) == k and diff[k] > 5.0  # dB
    assert np.abs(np.delete(diff, k)).max() < 0.5
    assert p.power_db[k] > p.power_db[k - 1] and p.power_db[k] > p.power_db[k + 1]  # a peak in the profile itself
    scores = spectrum_distances(p, real_profile())
    floor = spectrum_distances(clean, real_profile())
    assert scores["spectrum_high"] > 5 * floor["spectrum_high"]
    assert scores["spectrum_low"] == pytest.approx(floor["spectrum_low"], abs=0.02)


def test_two_real_samples_give_a_small_floor_far_below_noise() -> None:
    floor = spectrum_distances(radial_profile(shapes("train")), real_profile())
    noise = torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ceiling = spectrum_distances(radial_profile(noise), real_profile())
    for key in ("spectrum_dist", "spectrum_low", "spectrum_mid", "spectrum_high"):
        assert floor[key] < 0.3  # dB
        assert floor[key] < 0.05 * ceiling[key], key
    same = spectrum_distances(real_profile(), real_profile())
    assert all(v == 0 for v in same.values())
    scores, profile = spectrum_scores(shapes("train"), real_profile())
    assert scores == floor and profile.num_images == N
    back = SpectrumProfile.from_dict(profile.to_dict())  # the JSON form a per-job file would hold
    for field in ("frequency", "power_db", "std_db"):
        assert np.array_equal(getattr(back, field), getattr(profile, field))
    assert back.num_images == N


def test_bad_input_is_a_usage_error() -> None:
    x = shapes("train", 8)
    for bad in (x.float(), x[:, :2], x[:1], x[:, :, :, :16], x[:, :, :8, :8], x.numpy()):
        with pytest.raises(UsageError):
            radial_profile(bad)
    with pytest.raises(UsageError, match="same resolution"):
        spectrum_distances(radial_profile(shapes("train", 8, 16)), radial_profile(x))


def test_figure_is_deterministic(tmp_path: Path) -> None:
    real = real_profile()
    profiles = {
        "dcgan": [radial_profile(gaussian_blur(shapes("train", 200), 3, 0.8)), radial_profile(shapes("train", 200))],
        "real-data": [real],
        "noise": [radial_profile(torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8,
                                               generator=torch.Generator().manual_seed(0)))],
    }
    colors = {"dcgan": "C0"}
    assert spectra(profiles, colors, tmp_path / "a.png")
    assert spectra(profiles, colors, tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in data
    assert not spectra({"dcgan": profiles["dcgan"]}, colors, tmp_path / "c.png")  # no real-data row
    assert not (tmp_path / "c.png").exists()
