"""Fréchet Wavelet Distance: agreement with the authors' package ``pytorchfwd`` 1.0.1 (run in a
subprocess on PNG folders, as its CLI reads them), the Haar packet transform against its
mathematics (orthonormal, exact on constant and checkerboard images), the packets' frequency
order, the streaming statistics against :func:`feature_statistics`, and the band columns."""

from __future__ import annotations

import functools
import importlib.machinery
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from mgbench.data import load_dataset
from mgbench.errors import UsageError
from mgbench.metrics.frechet import feature_statistics
from mgbench.metrics.fwd import (
    frechet_wavelet_distance,
    max_level,
    packet_bands,
    packet_dimension,
    packet_frequency_index,
    packet_statistics,
    wavelet_packets,
)

# Where the reference packages live: a folder of their own (they pin scipy==1.11.1 and ptwt==0.1.8,
# so they are installed with --no-deps and never into the project's environment).
REFERENCE_DEPS = os.environ.get("MGBENCH_REFERENCE_DEPS", "")
INSTALL = ("python -m pip install --no-deps --target DIR pytorchfwd==1.0.1 ptwt==0.1.8 PyWavelets==1.9.0, "
           "then set MGBENCH_REFERENCE_DEPS=DIR")


def _reference_path() -> list[str]:
    return [p for p in [*sys.path, REFERENCE_DEPS] if p]


def _has_pytorchfwd() -> bool:
    # find_spec on the path finder does not import the package (its import changes torch's default dtype)
    return importlib.machinery.PathFinder.find_spec("pytorchfwd", _reference_path()) is not None


@functools.cache
def shapes(split: str, n: int, res: int) -> torch.Tensor:
    if split == "train":
        return load_dataset("shapes", "train", resolution=res, train_size=n, seed=0).images
    return load_dataset("shapes", "reference", resolution=res, reference_size=n, seed=0).images


def _write_pngs(images: torch.Tensor, folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / f"{i:05d}.png")


_REFERENCE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path[:] = json.loads(sys.argv[1])
    import pytorchfwd.fwd as fwd  # sets torch's default dtype to float64, hence the subprocess
    from pytorchfwd.freq_math import calculate_frechet_distance, get_freq_order
    fwd.NUM_PROCESSES = 0  # None unless its CLI's main() ran
    freq_path, natural = get_freq_order(4)
    position = {natural.index(node): [r, c] for r, row in enumerate(freq_path) for c, node in enumerate(row)}
    out = []
    for i, (fake, real) in enumerate(json.loads(sys.argv[2])):
        # the CLI's defaults: Haar, level 4, no log scale, batch 128, no resize
        mu1, s1 = fwd.calculate_path_statistics(fake, "Haar", 4, False, 128, None)
        mu2, s2 = fwd.calculate_path_statistics(real, "Haar", 4, False, 128, None)
        per_packet = [float(calculate_frechet_distance(mu1[p], s1[p], mu2[p], s2[p])) for p in range(len(mu1))]
        mean = sum(per_packet) / len(per_packet)
        # compute_fwd, the entry point, once (it redoes the statistics above); elsewhere the same mean
        value = fwd.compute_fwd([fake, real], "Haar", 4, False, 128, None) if i == 0 else mean
        out.append({"fwd": float(value), "mean": mean, "per_packet": per_packet,
                    "position": [position[p] for p in range(len(natural))]})
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.skipif(not _has_pytorchfwd(), reason=f"pytorchfwd not importable: {INSTALL}")
def test_agrees_with_pytorchfwd(tmp_path: Path) -> None:
    """Same images as PNGs → pytorchfwd 1.0.1's compute_fwd; ours within 1e-4 relative, per band too.

    Cases: RGB 32 px (2×2 per packet), RGB 16 px (1×1), grey 28 px (odd sizes padded; grey tiled to
    RGB as its convert("RGB")), and a model-like set (blur + noise) as well as a second real sample.
    """
    g = torch.Generator().manual_seed(0)
    cases = {}
    for res in (32, 16):
        real = shapes("reference", 200, res)
        fake = gaussian_blur(shapes("train", 200, res), 3, 0.7)
        fake = (fake.float() + 6 * torch.randn(fake.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)
        cases[f"rgb{res}"] = (fake, real)
    cases["real32"] = (shapes("train", 200, 32), shapes("reference", 200, 32))
    grey = (shapes("reference", 200, 32)[:, :, 2:30, 2:30].float().mean(1, keepdim=True)).round().to(torch.uint8)
    grey_fake = (shapes("train", 200, 32)[:, :, 2:30, 2:30].float().mean(1, keepdim=True) * 0.9).round().to(torch.uint8)
    cases["grey28"] = (grey_fake, grey)

    pairs = []
    for name, (fake, real) in cases.items():
        _write_pngs(fake, tmp_path / name / "fake")
        _write_pngs(real, tmp_path / name / "real")
        pairs.append([str(tmp_path / name / "fake"), str(tmp_path / name / "real")])
    proc = subprocess.run([sys.executable, "-c", _REFERENCE_SCRIPT, json.dumps(_reference_path()), json.dumps(pairs)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.split("RESULT", 1)[1])

    worst = 0.0
    for (name, (fake, real)), ref in zip(cases.items(), theirs, strict=True):
        ours = frechet_wavelet_distance(fake, real)
        worst = max(worst, abs(ours["fwd"] / ref["fwd"] - 1))
        assert ours["fwd"] == pytest.approx(ref["fwd"], rel=1e-4), name
        assert ref["fwd"] == pytest.approx(ref["mean"], rel=1e-12)  # compute_fwd is the mean of these packets
        # the bands from THEIR frequency order and per-packet distances
        top = np.asarray(ref["position"]).max(axis=1)  # index in [0, 16) of the packet's higher axis
        per_packet = np.asarray(ref["per_packet"])
        for band, packets in {"low": top < 4, "mid": (top >= 4) & (top < 8), "high": top >= 8}.items():
            assert ours[f"fwd_{band}"] == pytest.approx(per_packet[packets].mean(), rel=1e-4), (name, band)
    # what the cases are for: the degraded set is far from real, the second real sample is not
    assert theirs[2]["fwd"] < 0.5 * theirs[0]["fwd"]
    print(f"FWD vs pytorchfwd: largest relative difference {worst:.2e}; values", [round(t["fwd"], 6) for t in theirs])


def _haar_matrix(size: int) -> torch.Tensor:
    """The orthonormal one-level Haar analysis matrix (size × size): averages then differences."""
    m = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size // 2):
        m[i, 2 * i] = m[i, 2 * i + 1] = 2**-0.5
        m[size // 2 + i, 2 * i], m[size // 2 + i, 2 * i + 1] = 2**-0.5, -(2**-0.5)
    return m


def test_one_level_is_the_separable_haar_matrix() -> None:
    """Level 1 equals W X Wᵀ with the Haar matrix W: a = LL, h = high along y, v = high along x, d = HH."""
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    packets = wavelet_packets(x, level=1)  # (3, 4, 3, 4, 4)
    w = _haar_matrix(8)
    y = w @ (x[:, 0].double() / 255) @ w.T  # quadrants: [[LL, L_y H_x], [H_y L_x, HH]]
    torch.testing.assert_close(packets[:, 0, 0], y[:, :4, :4])  # a
    torch.testing.assert_close(packets[:, 1, 0], y[:, 4:, :4])  # h: high-pass along y (rows)
    torch.testing.assert_close(packets[:, 2, 0], y[:, :4, 4:])  # v: high-pass along x (columns)
    torch.testing.assert_close(packets[:, 3, 0], y[:, 4:, 4:])  # d


def test_packets_are_orthonormal_and_localise_known_images() -> None:
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    p = wavelet_packets(x)
    assert p.shape == (5, 256, 3, 2, 2)
    energy = (x.double() / 255).square().sum(dim=(1, 2, 3))
    torch.testing.assert_close(p.square().sum(dim=(1, 2, 3, 4)), energy)  # Parseval: the transform is orthonormal
    # A constant image lives in the first packet only; the period-2 checkerboard in the HH…H one (frequency 15, 15).
    const = torch.full((1, 1, 32, 32), 200, dtype=torch.uint8)
    assert (wavelet_packets(const)[0, 1:] == 0).all()
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = ((yy + xx) % 2 * 255).to(torch.uint8)[None, None]
    q = wavelet_packets(checker)[0].square().sum(dim=(1, 2, 3))
    idx = packet_frequency_index(4)
    assert set(q.nonzero().squeeze(1).tolist()) == {0, int(np.flatnonzero((idx == 15).all(axis=1))[0])}


def test_frequency_index_is_the_inverse_gray_code() -> None:
    idx = packet_frequency_index(2)  # natural order aa, ah, av, ad, ha, hh, ...
    assert idx[0].tolist() == [0, 0]
    assert idx[4].tolist() == [3, 0]  # "ha": high then low along y, Gray 10 → frequency index 3
    assert idx[5].tolist() == [2, 0]  # "hh": Gray 11 → 2 (the second high-pass mirrors the band)
    assert idx[15].tolist() == [2, 2]  # "dd"
    for level in (1, 2, 3, 4):
        i = packet_frequency_index(level)
        assert sorted(map(tuple, i.tolist())) == [(a, b) for a in range(2**level) for b in range(2**level)]


def test_bands_by_octave() -> None:
    assert packet_bands(1) is None
    for level, counts in {2: (1, 3, 12), 3: (4, 12, 48), 4: (16, 48, 192)}.items():
        bands = packet_bands(level).tolist()
        assert (bands.count("low"), bands.count("mid"), bands.count("high")) == counts


def test_streaming_statistics_match_feature_statistics() -> None:
    x = shapes("train", 700, 32)  # three batches of the accumulator
    stats = packet_statistics(x)
    coeffs = wavelet_packets(x).flatten(2)  # (N, P, D)
    for p in (0, 17, 255):
        mu, sigma = feature_statistics(coeffs[:, p])
        np.testing.assert_allclose(stats.mu[p], mu, rtol=0, atol=1e-12)
        np.testing.assert_allclose(stats.sigma[p], sigma, rtol=0, atol=1e-12)


def test_known_effects_and_floor() -> None:
    """Identity → 0; a second real sample is far below a blurred set; blur shows in the high band."""
    real, other = shapes("reference", 500, 32), shapes("train", 500, 32)
    same = frechet_wavelet_distance(real, real)
    assert abs(same["fwd"]) < 1e-9
    floor = frechet_wavelet_distance(other, real)
    blurred = frechet_wavelet_distance(gaussian_blur(other, 3, 1.0), real)
    assert floor["fwd"] < 0.1 * blurred["fwd"]
    assert blurred["fwd_high"] / floor["fwd_high"] > blurred["fwd_low"] / floor["fwd_low"]
    # cached statistics give the same numbers; the batch size does not matter
    assert frechet_wavelet_distance(other, packet_statistics(real)) == floor


def test_levels_and_bad_input() -> None:
    assert [max_level(r) for r in (8, 12, 16, 28, 32)] == [3, 4, 4, 5, 5]
    assert packet_dimension(32) == 12 and packet_dimension(16) == 3 and packet_dimension(28) == 12
    x = shapes("train", 4, 16)
    with pytest.raises(UsageError, match="level"):
        frechet_wavelet_distance(x[:, :, :8, :8], x[:, :, :8, :8])  # level 4 at 8 px
    assert "fwd" in frechet_wavelet_distance(x[:, :, :8, :8], x[:, :, :8, :8], level=3)
    with pytest.raises(UsageError, match="Haar"):
        frechet_wavelet_distance(x, x, wavelet="db2")
    with pytest.raises(UsageError):
        frechet_wavelet_distance(x.float(), x)
    with pytest.raises(UsageError):
        frechet_wavelet_distance(x[:1], x)
    with pytest.raises(UsageError):
        frechet_wavelet_distance(x, shapes("train", 4, 32))
