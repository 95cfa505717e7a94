"""The embedded dataset: multi-scale shapes with a known coarse and a known fine factor (docs/ARCHITECTURE.md).

Each image is a smooth, low-frequency background with one shape on it:

* coarse factor c, the global structure: ``COARSE = (disk, square, triangle, ring)``, with
  jittered position, size, rotation and colour;
* fine factor f, the local detail: the shape is filled with sinusoidal stripes whose wave vector
  points at ``FINE = (0°, 45°, 90°, 135°)`` from the x axis (columns, y pointing down the rows),
  with a period of 2-4 pixels at full resolution and a random phase.

The joint label y = c·4 + f conditions a class-conditional model; (c, f) is exactly balanced over
every aligned block of 16 indices.

Why the stripes vanish after two halvings: the binomial filter [1,4,6,4,1]/16 of
:func:`mgbench.pyramid.downsample` has the response cos⁴(ω/2) per axis. A sinusoid of period
p ≤ 4 px (ω = 2π/p ≥ π/2) keeps at most cos⁴(π/4) = 1/4 of its amplitude through the first filter
(about as much on a diagonal); subsampling doubles its frequency to ≥ π, and the second filter
removes nearly all of the rest. Measured at 16/32/64 px: about 0.1 % of the stripe energy per
pixel survives two halvings (tests/test_data.py checks < 2 % for every image). The period grows a
little with the resolution (``PERIODS``), for larger shapes, but never leaves [2, 4] px.

Determinism: image i depends only on (seed, i). Its random parameters are row ``i % CHUNK`` of a
``CHUNK × _NUM_UNIFORMS`` matrix of uniforms drawn by a ``torch.Generator`` seeded with
``derive_seed("shapes", seed, i // CHUNK)``; rendering is then a pure function of those numbers
and the resolution. So image i is the same whether 10 or 50,000 images are generated, and the
same scene at every resolution (only the stripe period in pixels follows ``PERIODS``). This rests
on torch's CPU Mersenne-Twister stream, which has been stable across torch releases.
Generation is vectorised over images and pixels and runs in batches, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from mgbench.seeding import derive_seed, generator

COARSE = ("disk", "square", "triangle", "ring")
FINE = ("stripes 0°", "stripes 45°", "stripes 90°", "stripes 135°")
NUM_COARSE = len(COARSE)
NUM_FINE = len(FINE)

CHUNK = 1024  # images per generator; a multiple of 16 so the class blocks never straddle two chunks
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # Rec. 601 luma weights
_NUM_UNIFORMS = 24  # columns of the per-image parameter matrix (fixed: changing it changes the data)

# Stripe period range in pixels at full resolution, by resolution. All within [2, 4] px, see above.
PERIODS = {16: (2.2, 2.8), 32: (2.6, 3.4), 64: (3.2, 4.0)}


def stripe_period_range(resolution: int) -> tuple[float, float]:
    """The (min, max) stripe period in pixels used at ``resolution`` (≥ 64 px uses the 64 px range)."""
    if resolution < 16:
        raise ValueError(f"shapes need a resolution of at least 16 px, got {resolution}")
    return PERIODS[16 if resolution <= 16 else 32 if resolution <= 32 else 64]


@dataclasses.dataclass(frozen=True)
class ShapeParams:
    """Per-image scene parameters, each a tensor with the images along dim 0.

    Positions and sizes are in image units (the image is [0, 1]²), colours in [0, 1].
    ``period_u`` in [0, 1] picks the stripe period inside :func:`stripe_period_range`.
    """

    coarse: torch.Tensor  # int64 (N,)
    fine: torch.Tensor  # int64 (N,)
    centre: torch.Tensor  # (N, 2) x, y
    size: torch.Tensor  # (N,) radius of the disk; the other shapes are scaled to a similar area
    rotation: torch.Tensor  # (N,) radians
    period_u: torch.Tensor  # (N,)
    phase: torch.Tensor  # (N,) radians
    amplitude: torch.Tensor  # (N,) stripe amplitude around the shape colour
    colour: torch.Tensor  # (N, 3) mean colour of the shape
    bg_colour: torch.Tensor  # (N, 3) mean colour of the background
    bg_wave: torch.Tensor  # (N, 3) per-channel amplitude of the background's cosine
    bg_direction: torch.Tensor  # (N,) radians
    bg_frequency: torch.Tensor  # (N,) half-cycles across the image
    bg_phase: torch.Tensor  # (N,) radians

    def __len__(self) -> int:
        return self.coarse.shape[0]


def _chunk_uniforms(seed: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The parameter uniforms (CHUNK × _NUM_UNIFORMS) and joint labels (CHUNK,) of one chunk."""
    g = generator(derive_seed("shapes", seed, chunk))
    u = torch.rand(CHUNK, _NUM_UNIFORMS, generator=g, dtype=torch.float64)
    # Each aligned block of 16 holds every (c, f) once, in a random order.
    labels = torch.rand(CHUNK // 16, 16, generator=g).argsort(dim=1).reshape(-1)
    return u, labels


def sample_params(indices: torch.Tensor, seed: int) -> ShapeParams:
    """The scene parameters of images ``indices`` (int64, any order, may repeat) for ``seed``."""
    indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
    chunks = torch.div(indices, CHUNK, rounding_mode="floor")
    u = torch.empty(len(indices), _NUM_UNIFORMS, dtype=torch.float64)
    y = torch.empty(len(indices), dtype=torch.int64)
    for chunk in torch.unique(chunks).tolist():
        where = chunks == chunk
        cu, cy = _chunk_uniforms(seed, chunk)
        rows = indices[where] - chunk * CHUNK
        u[where], y[where] = cu[rows], cy[rows]
    u = u.float()

    # Contrast by construction: a dark background (grey level 0.12-0.32) and a light shape (luma
    # 0.6-0.72), or both mirrored, with equal odds; the shape's tint has zero luma (Rec. 601
    # weights), so colour varies without eating into the contrast. Shape colours stay within
    # [0.25, 0.75] so that colour ± stripe amplitude (≤ 0.25) needs no clipping.
    dark = u[:, 7] < 0.5
    level = 0.12 + 0.2 * u[:, 6]
    bg_colour = level[:, None] + 0.05 * (2 * u[:, 8:11] - 1)
    tint = 0.15 * (2 * u[:, 14:17] - 1)
    tint = tint - (tint @ _LUMA)[:, None]
    colour = ((0.6 + 0.12 * u[:, 21])[:, None] + tint).clamp(0.25, 0.75)
    bg_colour = torch.where(dark[:, None], bg_colour, 1.0 - bg_colour)
    colour = torch.where(dark[:, None], colour, 1.0 - colour)
    return ShapeParams(
        coarse=y // NUM_FINE,
        fine=y % NUM_FINE,
        centre=0.42 + 0.16 * u[:, 0:2],
        size=0.24 + 0.08 * u[:, 2],
        rotation=2 * math.pi * u[:, 3],
        period_u=u[:, 4],
        phase=2 * math.pi * u[:, 5],
        amplitude=0.2 + 0.05 * u[:, 17],  # colour ± amplitude stays inside [0, 1]
        colour=colour,
        bg_colour=bg_colour,
        bg_wave=0.1 * (2 * u[:, 11:14] - 1),
        bg_direction=2 * math.pi * u[:, 18],
        bg_frequency=0.5 + u[:, 19],
        bg_phase=2 * math.pi * u[:, 20],
    )


def _outer_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out[n, i, j] = a[n, i] + b[n, j]``: a function of y (rows) plus one of x (columns)."""
    return a[:, :, None] + b[:, None, :]


def _signed_distance(p: ShapeParams, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Signed distance (image units, < 0 inside) of every pixel to each image's shape: N×H×W.

    Exact for the disk and ring and along straight edges; corners are approximate, which only
    affects the one-pixel antialiasing ramp. Each shape is evaluated on its own images only.
    """
    dx = x[None] - p.centre[:, 0, None]  # N×W
    dy = y[None] - p.centre[:, 1, None]  # N×H
    r = p.size[:, None, None]
    cos, sin = torch.cos(p.rotation)[:, None], torch.sin(p.rotation)[:, None]
    out = torch.empty(len(p), len(y), len(x))
    for shape in range(NUM_COARSE):
        k = (p.coarse == shape).nonzero().squeeze(1)
        if len(k) == 0:
            continue
        if shape in (0, 3):  # disk, ring
            rho = _outer_sum(dy[k] ** 2, dx[k] ** 2).sqrt_()
            if shape == 0:
                d = rho - r[k]
            else:  # outer radius 1.1 r, inner 0.5 r
                d = (rho - 0.8 * r[k]).abs_() - 0.3 * r[k]
        elif shape == 1:  # square, half side 0.85 r (area ≈ the disk's), rotated
            qx = _outer_sum(sin[k] * dy[k], cos[k] * dx[k]).abs_()
            qy = _outer_sum(cos[k] * dy[k], -sin[k] * dx[k]).abs_()
            d = torch.maximum(qx, qy) - 0.85 * r[k]
        else:  # equilateral triangle, circumradius 1.3 r: the max over its three edges' half-planes
            d = None
            for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6):
                # normal (cos a, sin a) in the shape's frame, rotated back into the image frame
                nx = math.cos(a) * cos - math.sin(a) * sin
                ny = math.cos(a) * sin + math.sin(a) * cos
                e = _outer_sum(ny[k] * dy[k], nx[k] * dx[k])
                d = e if d is None else torch.maximum(d, e)
            d = d - 0.65 * r[k]
        out[k] = d
    return out


def _plane_wave(
    kx: torch.Tensor, ky: torch.Tensor, phase: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """cos(kx·x + ky·y + phase) per image, N×H×W, as a batched rank-2 product (no per-pixel cos)."""
    ax = kx[:, None] * x[None]  # N×W
    ay = ky[:, None] * y[None] + phase[:, None]  # N×H
    rows = torch.stack([torch.cos(ay), -torch.sin(ay)], dim=2)  # N×H×2
    cols = torch.stack([torch.cos(ax), torch.sin(ax)], dim=1)  # N×2×W
    return torch.bmm(rows, cols)  # cos(ay)cos(ax) − sin(ay)sin(ax) = cos(ax + ay)


def render(p: ShapeParams, resolution: int) -> torch.Tensor:
    """Float images in [0, 1], N×3×resolution×resolution, of the scenes ``p``."""
    res = resolution
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / res  # pixel centres in [0, 1]

    # Background: one low-frequency cosine (at most 1.5 half-cycles across the image).
    k = math.pi * p.bg_frequency
    shift = p.bg_phase - 0.5 * k * (torch.cos(p.bg_direction) + torch.sin(p.bg_direction))  # centred
    wave = _plane_wave(k * torch.cos(p.bg_direction), k * torch.sin(p.bg_direction), shift, coords, coords)

    # Stripes: a sinusoid of `period` pixels whose wave vector points at f·45°.
    low, high = stripe_period_range(res)
    k = 2 * math.pi * res / (low + (high - low) * p.period_u)  # radians per image unit
    theta = p.fine.float() * (math.pi / 4)
    stripes = _plane_wave(k * torch.cos(theta), k * torch.sin(theta), p.phase, coords, coords)

    # Antialiased coverage: a one-pixel ramp across the edge.
    alpha = (0.5 - _signed_distance(p, coords, coords) * res).clamp_(0, 1)

    # image_c = bg_c + wave_c·wave + alpha·(colour_c + amp·stripes − bg_c − wave_c·wave), per channel:
    # a per-image 3×5 mix of five maps, done as one batched matrix product.
    n = len(p)
    maps = torch.stack([torch.ones_like(alpha), wave, alpha, alpha * stripes, alpha * wave], dim=1)
    mix = torch.stack(
        [p.bg_colour, p.bg_wave, p.colour - p.bg_colour, p.amplitude[:, None].expand(n, 3), -p.bg_wave], dim=2
    )  # N×3×5
    images = torch.bmm(mix, maps.reshape(n, 5, res * res)).reshape(n, 3, res, res)
    return images.clamp_(0, 1)


def generate(
    indices: torch.Tensor, resolution: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images ``indices`` of the shapes dataset: (uint8 N×3×R×R, coarse int64 N, fine int64 N)."""
    if resolution < 16 or resolution & (resolution - 1):
        raise ValueError(f"shapes need a power-of-two resolution ≥ 16, got {resolution}")
    indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
    images = torch.empty(len(indices), 3, resolution, resolution, dtype=torch.uint8)
    coarse = torch.empty(len(indices), dtype=torch.int64)
    fine = torch.empty(len(indices), dtype=torch.int64)
    batch = max(64, 2**18 // resolution**2)  # render in cache-sized pieces; the result does not depend on it
    for start in range(0, len(indices), batch):
        p = sample_params(indices[start : start + batch], seed)
        images[start : start + batch] = render(p, resolution).mul_(255).round_().to(torch.uint8)
        coarse[start : start + batch], fine[start : start + batch] = p.coarse, p.fine
    return images, coarse, fine
