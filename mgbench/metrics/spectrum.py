"""Azimuthally averaged power spectra of image sets and their distance per frequency band.

Durall, Keuper & Keuper, CVPR 2020, "Watch your Up-Convolution: CNN Based Generative Deep
Neural Networks are Failing to Reproduce Spectral Distributions", §3.1: up-sampling by
transposed convolution leaves a model's images with too much or too little power at high
frequencies, and the azimuthal integral of the power spectrum, eq. (4),
AI(ω) = ∫₀^{2π} |F(ω cos φ, ω sin φ)|² dφ, shows it as a 1-D profile. Per image:

1. uint8 → [0, 1], grey = 0.299 R + 0.587 G + 0.114 B (grey images as they are), as their code
   (cc-hpc-itwm/UpConv, ``RGB2gray``): ONE profile per set, not one per channel, so colour
   artefacts count through their luma only;
2. P(f) = |FFT₂(grey)(f)|² / (H·W) (Parseval: the mean of P over all f is the mean of grey²);
3. each frequency goes to the ring k = round(|f|·H), k = 1 … round(H/√2) (to the corners, as
   theirs): ring k is centred on k/H cycles per pixel; the DC term (k = 0, the mean grey level)
   is left out, since it is brightness, not structure;
4. the ring's mean power, in dB: 10·log₁₀(mean + 10⁻¹⁰);

and the set's profile is the mean over images of that log power (a geometric mean of power).

Differences from their code, on purpose: it averages the LOG magnitude over a ring
(``azimuthalAverage(20·log|F|)``), which dilutes a peak at a few frequencies (a period-2 px
checkerboard puts its power on 2 of the ~100 frequencies of its ring: on shapes images at 12 grey
levels of amplitude, +0.7 dB in the log mean, +12 dB in the mean power); we average power as
eq. (4) does. Radii
are exact (theirs measure from (H−1)/2, half a pixel off the DC term of an even-sized
``fftshift``); no per-image min-max normalisation (it would remove the overall level of
high-frequency power, which is what a blur changes); the power is normalised by the pixel count
so that profiles of different resolutions share one scale.

Distances (all in dB, lower is better): the mean absolute difference of two profiles over the
rings of each band, and over all rings (``spectrum_dist``, a mean over frequency up to √2/2).
Band edges are in cycles per pixel, so they mean the same at every resolution, and follow the
octaves of a Laplacian pyramid (:mod:`mgbench.metrics.swd`'s levels):

* ``spectrum_low``:  0 < f < 1/8 (what survives two halvings: global structure);
* ``spectrum_mid``:  1/8 ≤ f < 1/4 (the second octave);
* ``spectrum_high``: f ≥ 1/4, up to the corners at √2/2 (the finest octave: edges, the shapes
  data's stripes of period 2-4 px, and the period-2 artefacts of transposed convolutions at 0.5).

Ring k belongs to the band of its centre k/H; images of at least 16 px give every band a ring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mgbench.errors import UsageError

BANDS: dict[str, tuple[float, float]] = {"low": (0.0, 1 / 8), "mid": (1 / 8, 1 / 4), "high": (1 / 4, math.inf)}
MIN_RESOLUTION = 16  # the smallest size whose rings reach into every band (low: k/H < 1/8 needs H > 8)
_LUMA = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)  # Rec. 601, as Durall et al.'s RGB2gray
_EPS = 1e-10  # added to the power before the log; uint8 quantisation noise alone is ~1e-6
_BATCH = 256  # images per FFT pass: bounds memory, results do not depend on it


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value
class SpectrumProfile:
    """The azimuthally averaged power spectrum of an image set.

    ``frequency[i]`` (cycles per pixel) is the centre of ring i + 1; ``power_db[i]`` the mean
    over images of the ring's mean log power (dB); ``std_db[i]`` the standard deviation of the
    per-image ring means over the images (ddof 1: the spread, not the error of the mean).
    """

    frequency: np.ndarray  # (K,) float64
    power_db: np.ndarray  # (K,) float64
    std_db: np.ndarray  # (K,) float64
    num_images: int

    @property
    def resolution(self) -> int:
        return round(1 / self.frequency[0])

    def to_dict(self) -> dict[str, list[float] | int]:
        """A JSON-able form (for a per-job file the report's figure reads back)."""
        return {"frequency": self.frequency.tolist(), "power_db": self.power_db.tolist(),
                "std_db": self.std_db.tolist(), "num_images": self.num_images}

    @classmethod
    def from_dict(cls, d: dict) -> SpectrumProfile:
        return cls(np.asarray(d["frequency"], dtype=np.float64), np.asarray(d["power_db"], dtype=np.float64),
                   np.asarray(d["std_db"], dtype=np.float64), int(d["num_images"]))


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 \
            or images.shape[1] not in (1, 3):
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"spectra need uint8 N×C×H×W images with C in (1, 3), got {got}",
                         "pass the images as the evaluation holds them (uint8 tensors)")
    n, _, h, w = images.shape
    if n < 2 or h != w or h < MIN_RESOLUTION:
        raise UsageError(f"spectra need at least 2 square images of at least {MIN_RESOLUTION} px, "
                         f"got {tuple(images.shape)}", "use more or larger images")


def ring_index(resolution: int) -> torch.Tensor:
    """The ring k = round(|f|·H) of every FFT frequency, as an H×W int64 map (DC at [0, 0])."""
    f = torch.fft.fftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)  # integers −H/2 … H/2−1
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    return torch.round(radius).long()  # never exactly k + ½: √(integer) is not a half-integer


def radial_profile(images: torch.Tensor) -> SpectrumProfile:
    """The azimuthally averaged log power spectrum of uint8 ``images`` (see the module docstring).

    Cost: one H×W FFT per image, O(N·H²·log H); a few CPU-seconds per 10k images of 32 px.
    """
    _check_images(images)
    n, c, res, _ = images.shape
    rings = ring_index(res).flatten()
    num_rings = int(rings.max())
    # Ring-averaging matrix (H·W, K): column k−1 holds 1/|ring k| on ring k's frequencies, DC dropped.
    average = torch.zeros(res * res, num_rings, dtype=torch.float64)
    keep = rings > 0
    average[keep.nonzero().squeeze(1), rings[keep] - 1] = 1.0
    average /= average.sum(0, keepdim=True)

    per_image = torch.empty(n, num_rings, dtype=torch.float64)
    for start in range(0, n, _BATCH):
        x = images[start : start + _BATCH].to(torch.float64) / 255.0
        grey = x[:, 0] if c == 1 else torch.einsum("nchw,c->nhw", x, _LUMA)
        power = torch.fft.fft2(grey).abs().square_() / (res * res)
        per_image[start : start + len(x)] = 10.0 * torch.log10(power.flatten(1) @ average + _EPS)
    std, mean = torch.std_mean(per_image, dim=0, correction=1)
    frequency = torch.arange(1, num_rings + 1, dtype=torch.float64) / res
    return SpectrumProfile(frequency.numpy(), mean.numpy(), std.numpy(), n)


def band_of(frequency: np.ndarray) -> np.ndarray:
    """The band name (``low``, ``mid``, ``high``) of each ring centre in cycles per pixel."""
    names = np.empty(len(frequency), dtype=object)
    for name, (lo, hi) in BANDS.items():
        names[(frequency >= lo) & (frequency < hi)] = name
    return names


def spectrum_distances(fake: SpectrumProfile, real: SpectrumProfile) -> dict[str, float]:
    """Mean |Δ power| (dB) between two profiles: over all rings and per band.

    Keys: ``spectrum_dist``, ``spectrum_low``, ``spectrum_mid``, ``spectrum_high``; lower is
    better. Symmetric in its arguments; a second real sample gives the noise floor.
    """
    if fake.frequency.shape != real.frequency.shape or not np.array_equal(fake.frequency, real.frequency):
        raise UsageError(f"spectra of {fake.resolution} px and {real.resolution} px images cannot be compared",
                         "compare images of the same resolution")
    diff = np.abs(fake.power_db - real.power_db)
    bands = band_of(real.frequency)
    out = {"spectrum_dist": float(diff.mean())}
    for name in BANDS:
        out[f"spectrum_{name}"] = float(diff[bands == name].mean())
    return out


def spectrum_scores(
    fake: torch.Tensor, real: torch.Tensor | SpectrumProfile
) -> tuple[dict[str, float], SpectrumProfile]:
    """Distances of uint8 ``fake`` images to ``real`` (images, or their cached profile), and the
    fake set's profile for the figure (:func:`mgbench.report.spectra_figure.spectra`)."""
    real_profile = real if isinstance(real, SpectrumProfile) else radial_profile(real)
    fake_profile = radial_profile(fake)
    return spectrum_distances(fake_profile, real_profile), fake_profile
