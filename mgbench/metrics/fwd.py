"""Fréchet Wavelet Distance (Veeramacheneni, Wolter, Kuehne & Gall, ICLR 2025, "Fréchet Wavelet
Distance: A Domain-Agnostic Metric for Image Generation", §3; their package ``pytorchfwd``).

FWD = (1/P) Σ_p FD(p): a 2-D wavelet packet transform of every image to level L gives
P = 4^L packets; per packet p, the packet's coefficients of all channels are flattened into one
vector per image, a Gaussian is fitted to those vectors for each set, and FD(p) is the Fréchet
distance (Dowson & Landau 1982) of the two Gaussians (:func:`mgbench.metrics.frechet.frechet_distance`).

The authors' defaults, kept here (``pytorchfwd`` 1.0.1, ``utils._parse_args``): Haar wavelet,
level 4, no log scale; images read with ``PIL.Image.convert("RGB")`` and ``ToTensor()``, so RGB
in [0, 1] (grey images tiled to three equal channels, which makes every FD(p) 3× that of the
single channel) and float64 (their import sets torch's default dtype).

The level does not adapt to the image size: it is fixed (protocol is data). Each halving
shrinks the packets, so level 4 leaves 2×2 coefficients per packet at 32 px (12-d vectors in
RGB), 1×1 at 16 px (3-d) and 4×4 at 64 px (48-d). An odd size is first extended by one row or
column, mirrored without repeating the edge (their ``ptwt`` 0.1.8 pads ``"reflect"``); e.g.
28 px runs as 28 → 14 → 7 (padded to 8) → 4 → 2. Below 16 px level 4 would split a 1×1 packet,
which their code fails on (a padding error in ``ptwt``), so we raise :class:`UsageError` naming
the largest level that runs (3 at 8 px). A packet's vector has C·(H/2^L)² entries: its covariance needs more
images than that (at 256 px, level 4: 768-d).

Per-band columns group the packets by frequency. Along each axis, the packet's filter path
(low/high per level, first level first) is the Gray code of its frequency index i ∈ [0, 2^L)
(high-pass filtering and subsampling mirror the spectrum; ``pytorchfwd.freq_math.get_freq_order``
orders the packets this way for its plots). Index i covers, nominally, i/2^(L+1) … (i+1)/2^(L+1)
cycles per pixel. A packet belongs to the band of its larger axis index, with the edges of
:mod:`mgbench.metrics.spectrum` (octaves, in cycles per pixel, the same at every resolution):
low < 1/8 ≤ mid < 1/4 ≤ high. At level 4 that is 16 low, 48 mid and 192 high packets, and FWD is
their count-weighted mean, so it is mostly the high band. Levels below 2 have no packet that
lies within the low band, so they give no band columns. Haar filters separate frequencies
poorly (their responses overlap): the bands are nominal.

Why no library for the packets: the Haar packet transform is two sums and two differences of
neighbouring pixels per level, batched over images and packets in a few lines of torch, exact
and fast. ``ptwt`` (the authors' choice) is pinned to 0.1.8 by ``pytorchfwd`` and changed its
API since, and PyWavelets transforms one array at a time; either would be a dependency for what
a 2×2 butterfly does. Other wavelets would need boundary handling and a library: they are
refused. The agreement with ``pytorchfwd`` itself is a test (tests/test_fwd.py).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mgbench.errors import UsageError
from mgbench.metrics.frechet import frechet_distance
from mgbench.metrics.spectrum import BANDS

WAVELET = "haar"
LEVEL = 4
_BATCH = 256  # images per transform: bounds memory, results do not depend on it
_PATHS = "ahvd"  # ptwt's natural order per level: approximation, high along y, high along x, both


def max_level(resolution: int) -> int:
    """The largest packet level that the authors' code runs at this image size."""
    level, size = 0, resolution
    while size >= 2:  # one more level splits packets of this size (an odd one after padding)
        level += 1
        size = (size + 1) // 2
    return level


def _check(images: torch.Tensor, level: int, wavelet: str) -> None:
    if wavelet.lower() != WAVELET:
        raise UsageError(f"FWD here computes Haar wavelet packets only, got wavelet {wavelet!r}",
                         "use wavelet='haar' (the authors' default) or the pytorchfwd package for other wavelets")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 \
            or images.shape[1] not in (1, 3):
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"FWD needs uint8 N×C×H×W images with C in (1, 3), got {got}")
    n, _, h, w = images.shape
    if n < 2:
        raise UsageError(f"FWD needs at least 2 images per set, got {n}")
    if level < 1 or level > max_level(min(h, w)):
        raise UsageError(f"wavelet packet level {level} does not fit {h}×{w} px images",
                         f"use a level from 1 to {max_level(min(h, w))}")


def _haar_split(x: torch.Tensor) -> torch.Tensor:
    """One level of the orthonormal 2-D Haar transform of every (…, H, W) map → (…, 4, ⌈H/2⌉, ⌈W/2⌉),
    in the order a, h, v, d (ptwt's: h is the high-pass along y, v along x).

    An odd side is extended by one mirrored row/column first (``reflect``, as ptwt 0.1.8).
    """
    *lead, h, w = x.shape
    if h % 2 or w % 2:
        x = F.pad(x.reshape(-1, 1, h, w), (0, w % 2, 0, h % 2), mode="reflect").reshape(*lead, h + h % 2, w + w % 2)
    lo_y = x[..., 0::2, :] + x[..., 1::2, :]  # sums and differences of row pairs
    hi_y = x[..., 0::2, :] - x[..., 1::2, :]
    a = lo_y[..., 0::2] + lo_y[..., 1::2]
    v = lo_y[..., 0::2] - lo_y[..., 1::2]
    hh = hi_y[..., 0::2] + hi_y[..., 1::2]
    d = hi_y[..., 0::2] - hi_y[..., 1::2]
    return torch.stack([a, hh, v, d], dim=-3) / 2  # (1/√2)² per level: orthonormal


def wavelet_packets(images: torch.Tensor, level: int = LEVEL) -> torch.Tensor:
    """Haar packets of uint8 images at ``level``: float64 (N, 4^level, 3, h, w), packets in natural
    order (``itertools.product("ahvd", repeat=level)``, first level first), images as RGB in [0, 1]."""
    x = images.to(torch.float64).div_(255.0).expand(-1, 3, -1, -1)  # (N, 3, H, W); grey tiled, as convert("RGB")
    x = x.unsqueeze(1)  # (N, 1, 3, H, W): one packet, the image
    for _ in range(level):
        x = _haar_split(x)  # (N, P, 3, 4, h, w)
        x = x.transpose(2, 3).flatten(1, 2)  # (N, 4P, 3, h, w): child c of packet p at 4p + c
    return x


def packet_frequency_index(level: int) -> np.ndarray:
    """(4^level, 2) int: each natural-order packet's frequency index along y and x, in [0, 2^level).

    Along an axis the path bits (1 = high-pass; h and d are high along y, v and d along x) are
    the Gray code of the index, first level the most significant bit.
    """
    out = np.empty((4**level, 2), dtype=np.int64)
    for p, path in enumerate(itertools.product(_PATHS, repeat=level)):
        for axis, highs in enumerate(("hd", "vd")):
            gray = 0
            for step in path:
                gray = 2 * gray + (step in highs)
            index, shift = gray, gray >> 1
            while shift:  # inverse Gray code: XOR of all right shifts
                index ^= shift
                shift >>= 1
            out[p, axis] = index
    return out


def packet_bands(level: int) -> np.ndarray | None:
    """Band name (``low``, ``mid``, ``high``) of each natural-order packet; None below level 2."""
    if level < 2:
        return None
    width = 0.5 / 2**level  # cycles per pixel covered by one frequency index
    top = packet_frequency_index(level).max(axis=1)
    names = np.empty(len(top), dtype=object)
    for name, (lo, hi) in BANDS.items():
        # the packet's nominal band [top, top + 1)·width lies within [lo, hi)
        names[(top * width >= lo - 1e-12) & ((top + 1) * width <= hi + 1e-12)] = name
    return names


@dataclass(frozen=True)
class PacketStatistics:
    """Per-packet Gaussian statistics of an image set: mean (P, D) and covariance (P, D, D), float64."""

    mu: np.ndarray
    sigma: np.ndarray
    level: int
    num_images: int


def packet_statistics(images: torch.Tensor, level: int = LEVEL, wavelet: str = WAVELET) -> PacketStatistics:
    """Mean and unbiased covariance of every packet's flattened coefficients (cache the real set's).

    Accumulated over batches of images around a fixed shift (the first batch's mean), so memory is
    one batch of packets plus P·D² numbers, not all images' coefficients (1.2 GB for 50k RGB images
    of 32 px), with no cancellation error to speak of: Σ(x−s)(x−s)ᵀ − n(μ−s)(μ−s)ᵀ with s ≈ μ.
    """
    _check(images, level, wavelet)
    n = len(images)
    total = shift = cross = None
    for start in range(0, n, _BATCH):
        coeffs = wavelet_packets(images[start : start + _BATCH], level).flatten(2).transpose(0, 1)  # (P, B, D)
        if shift is None:
            shift = coeffs.mean(dim=1, keepdim=True)
            total = torch.zeros_like(shift[:, 0])
            cross = torch.zeros(coeffs.shape[0], coeffs.shape[2], coeffs.shape[2], dtype=torch.float64)
        centred = coeffs - shift
        total += centred.sum(dim=1)
        cross += centred.transpose(1, 2) @ centred
    mean_offset = total / n  # μ − s, (P, D)
    sigma = (cross - n * mean_offset[:, :, None] * mean_offset[:, None, :]) / (n - 1)
    mu = shift[:, 0] + mean_offset
    return PacketStatistics(mu.numpy(), sigma.numpy(), level, n)


def fwd_from_statistics(fake: PacketStatistics, real: PacketStatistics) -> dict[str, float]:
    """``fwd`` (mean FD over all packets) and ``fwd_low``/``fwd_mid``/``fwd_high`` (mean FD over
    each band's packets, level ≥ 2). Lower is better; both sets at the same level and size."""
    if fake.level != real.level or fake.mu.shape != real.mu.shape:
        raise UsageError(f"packet statistics differ: level {fake.level} {fake.mu.shape} vs level {real.level} "
                         f"{real.mu.shape}", "compare images of the same size at the same level")
    per_packet = np.array([frechet_distance(fake.mu[p], fake.sigma[p], real.mu[p], real.sigma[p])
                           for p in range(len(fake.mu))])
    out = {"fwd": float(per_packet.mean())}
    bands = packet_bands(fake.level)
    if bands is not None:
        for name in BANDS:
            out[f"fwd_{name}"] = float(per_packet[bands == name].mean())
    return out


def frechet_wavelet_distance(
    fake: torch.Tensor, real: torch.Tensor | PacketStatistics, *, level: int = LEVEL, wavelet: str = WAVELET
) -> dict[str, float]:
    """FWD between uint8 image sets (``real`` may be its cached :class:`PacketStatistics`).

    Cost: the transform is O(N·C·H·W·L); the statistics O(N·P·D²) = O(N·C²·H²·W²/4^L) and the P
    Fréchet distances O(P·D³). At 32 px, level 4: about 6 CPU-s per 10k images (one AVX2 core).
    """
    real_stats = real if isinstance(real, PacketStatistics) else packet_statistics(real, level, wavelet)
    return fwd_from_statistics(packet_statistics(fake, level, wavelet), real_stats)


def packet_dimension(resolution: int, level: int = LEVEL) -> int:
    """Entries per packet vector (RGB): 3·⌈…⌈R/2⌉…/2⌉²."""
    size = resolution
    for _ in range(level):
        size = math.ceil(size / 2)
    return 3 * size * size
