"""The standard Inception-v3 feature extractor of FID/IS papers, loaded without unpickling code.

This is torch-fidelity's ``inception-v3-compat`` (a port of the TensorFlow graph
``pt_inception-2015-12-05`` used by Heusel et al. 2017 for FID and Salimans et al. 2016 for IS),
so the numbers are comparable with published ones. torch-fidelity itself reads the weight file
with ``torch.load(..., weights_only=False)``; here the file is read with ``weights_only=True``
first and torch-fidelity only ever sees an in-memory copy made of plain tensors.

The pass itself (:class:`FastInceptionV3`) is torch-fidelity's network with the same weights and
the same arithmetic up to float32 rounding, arranged for speed: BatchNorm folded into the
convolutions, channels-last activations (oneDNN's and cuDNN's preferred layout), and the
TensorFlow-1 bilinear resize to 299 px as two small matrix products instead of gathers. Its
features agree with torch-fidelity's own forward to about 1e-6 relative (tests/test_inception_fast.py);
the measured speed-up is in tests/benchmarks/bench_peers.py.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, BasicConv2d, FeatureExtractorInceptionV3

from mgbench.errors import UsageError
from mgbench.features.weights import file_sha256, safe_load_state_dict

log = logging.getLogger(__name__)

NAME = "inception-v3-compat"
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = URL_INCEPTION_V3
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name holds its hash prefix
# torch-fidelity feature name → mgbench feature name (the same names the domain extractor uses)
FEATURES = {"2048": "pool", "logits_unbiased": "logits"}
INPUT_SIZE = FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE  # 299
# Images per forward call. On the CPU a batch of 16-32 at 299 px keeps the largest activation
# (64×147×147 floats, 5.5 MB an image) nearer the caches than 200 does (measured: 128 was slower
# than 8-32 on 2 cores); on a GPU larger batches fill the device.
CPU_BATCH, CUDA_BATCH = 32, 200


def weights_dir() -> Path:
    """Where torch.hub (and so torch-fidelity) looks: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_inception_weights(path: str | Path | None = None) -> Path:
    """The Inception weight file: ``path`` (a file, or a folder holding it) or the torch.hub folder.

    Raises :class:`UsageError` when it is missing, with where to get it and the offline
    alternative, so that a run fails before any training.
    """
    if path is None:
        candidate = weights_dir() / WEIGHTS_FILE
    else:
        candidate = Path(path).expanduser()
        if candidate.is_dir():
            candidate = candidate / WEIGHTS_FILE
    if candidate.is_file():
        return candidate
    folder = candidate.parent
    raise UsageError(
        f"Inception-v3 weights {WEIGHTS_FILE!r} not found at {str(candidate)!r}",
        f"download {WEIGHTS_URL} into the folder {str(folder)!r} (or pass --weights PATH), "
        "or run offline with --feature-extractor domain",
    )


def _as_buffer(state: dict[str, torch.Tensor]) -> io.BytesIO:
    """An in-memory torch file holding only ``state``'s tensors: safe for any ``torch.load``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


class SafeInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 whose weight file is read with ``weights_only=True``.

    Registered with torch-fidelity as ``mgbench-inception-v3-compat`` by
    :func:`register_with_torch_fidelity`; it accepts the same arguments as the original.
    """

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path=None, **kwargs):
        state = safe_load_state_dict(find_inception_weights(feature_extractor_weights_path))
        super().__init__(name, features_list, feature_extractor_weights_path=_as_buffer(state), **kwargs)


def tf1_resize_matrix(n_in: int, n_out: int = INPUT_SIZE) -> torch.Tensor:
    """n_out × n_in matrix of TensorFlow 1.x's ``resize_bilinear(align_corners=False)`` along one axis.

    The sample positions and weights are those of torch-fidelity's
    ``interpolate_bilinear_2d_like_tensorflow1x`` (computed in float32 as there): output i reads
    input ``lo = floor(i·n_in/n_out)`` with weight 1-d and ``min(lo+1, n_in-1)`` with weight d.
    Applied as ``R_y @ x @ R_xᵀ`` it is the same resize as two dense products, which oneDNN/cuBLAS
    run far faster than the four gathers of the original (it differs by float32 rounding only).
    """
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    grid = torch.arange(n_out, dtype=torch.float32) * scale
    lo = grid.long()
    hi = (lo + 1).clamp_max(n_in - 1)
    d = (grid - lo.float()).double()
    rows = torch.arange(n_out)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix.index_put_((rows, lo), 1 - d, accumulate=True)
    matrix.index_put_((rows, hi), d, accumulate=True)  # lo == hi at the last column: weights add to 1
    return matrix.float()


def resize_like_tf1(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """float B×C×H×W → B×C×size×size by TensorFlow 1.x's bilinear resize (torch-fidelity's
    ``interpolate_bilinear_2d_like_tensorflow1x``), as ``R_y @ x @ R_xᵀ``."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x  # torch-fidelity's resize is exactly the identity here (all weights 0 or 1)
    ry, rx = _resize_matrices(h, w, size, x.device)
    return ry.to(x.dtype) @ x @ rx.to(x.dtype).T


@functools.lru_cache(maxsize=16)
def _resize_matrices(h: int, w: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return tf1_resize_matrix(h, size).to(device), tf1_resize_matrix(w, size).to(device)


def _fold_batchnorm(block: BasicConv2d) -> None:
    """Conv → BN (eval) as one conv with a bias, in place: w' = w·γ/√(σ²+ε), b' = β - μ·γ/√(σ²+ε).

    Computed in float64 and rounded once, so the folded weights are as close to the pair's
    arithmetic as float32 allows.
    """
    conv, bn = block.conv, block.bn
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True)
    with torch.no_grad():
        fused.weight.copy_(conv.weight.double() * scale[:, None, None, None])
        fused.bias.copy_(bn.bias.double() - bn.running_mean.double() * scale)
    block.conv = fused.requires_grad_(False)
    block.bn = nn.Identity()  # BasicConv2d.forward: conv → bn → relu


class FastInceptionV3(nn.Module):
    """torch-fidelity's ``inception-v3-compat`` forward (pool3 2048 and logits_unbiased 1008),
    rearranged for speed; built from a loaded :class:`FeatureExtractorInceptionV3`, whose
    block modules (and so their TensorFlow patches: avg-pool without padded zeros, max-pool in
    the last block) it reuses with BatchNorm folded into each convolution.

    ``channels_last``: run the network on NHWC activations (oneDNN on the CPU, cuDNN on the GPU);
    the numbers change by float32 rounding only.
    """

    def __init__(self, reference: FeatureExtractorInceptionV3, channels_last: bool = True) -> None:
        super().__init__()
        net = copy.deepcopy(reference).float()
        for module in net.modules():
            if isinstance(module, BasicConv2d):
                _fold_batchnorm(module)
        self.trunk = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.MaxPool_1,  # 64 × 73 × 73
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.MaxPool_2,  # 192 × 35 × 35
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d,  # 288 × 35 × 35
            net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e,  # 768 × 17 × 17
            net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,  # 2048 × 8 × 8
        )
        self.register_buffer("fc_weight", net.fc.weight.detach().clone())  # 1008 × 2048; logits_unbiased: no bias
        self.channels_last = channels_last
        self.requires_grad_(False)
        self.eval()
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 B×3×H×W → (pool B×2048, logits_unbiased B×1008), float32."""
        x = resize_like_tf1(images.float())  # B × 3 × 299 × 299
        x = (x - 128) / 128  # as torch-fidelity: the graph's (x - 128) · 0.0078125
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.trunk(x)  # B × 2048 × 8 × 8
        pool = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)  # B × 2048
        return pool, pool.mm(self.fc_weight.T)  # B × 1008


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """Set TF32 for CUDA matmuls and cuDNN convolutions inside the block, restore it after."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def load_reference_module(state: dict[str, torch.Tensor]) -> FeatureExtractorInceptionV3:
    """torch-fidelity's own extractor with ``state`` (pool3 and logits_unbiased), from an in-memory copy."""
    return FeatureExtractorInceptionV3(NAME, list(FEATURES), feature_extractor_weights_path=_as_buffer(state))


class InceptionExtractor:
    """The mgbench :class:`~mgbench.features.extract.Extractor` over Inception-v3.

    Features: ``pool`` (torch-fidelity's "2048", the pool3 embedding for FID/KID/PR) and
    ``logits`` (its "logits_unbiased", 1008 classes, for IS as torch-fidelity computes it).

    ``fast=False`` runs torch-fidelity's own forward instead of :class:`FastInceptionV3` (the
    reference the fast pass is tested against). ``tf32``: allow TensorFlow-32 matmuls and
    convolutions on a GPU during the pass (faster on Ampere and later, but about 1e-3 relative
    off; off by default, and the global setting is restored after each call).
    """

    name = NAME
    feature_names = tuple(FEATURES.values())

    def __init__(self, weights: str | Path | None = None, device: torch.device | str = "cpu", *,
                 fast: bool = True, tf32: bool = False) -> None:
        path = find_inception_weights(weights)
        state = safe_load_state_dict(path, where=str(weights_dir() / WEIGHTS_FILE))
        self.weights_path = path
        self.weights_sha256 = file_sha256(path)
        if not self.weights_sha256.startswith(WEIGHTS_SHA256_PREFIX):
            log.warning(
                "Inception weights %s have SHA-256 %s, not the published file (%s...): "
                "scores will not be comparable with papers",
                path,
                self.weights_sha256,
                WEIGHTS_SHA256_PREFIX,
            )
        self.device = torch.device(device)
        self.tf32 = tf32
        self.batch_size = CUDA_BATCH if self.device.type == "cuda" else CPU_BATCH
        reference = load_reference_module(state)  # features_list order fixes the tuple's order
        self.module: nn.Module = (FastInceptionV3(reference) if fast else reference).to(self.device)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 B×3×H×W → (pool B×2048, logits B×1008), float32 on the extractor's device."""
        with _tf32(self.tf32), torch.inference_mode():
            return tuple(self.module(images.to(self.device)))


def register_with_torch_fidelity() -> str:
    """Register :class:`SafeInceptionV3` with torch-fidelity (idempotent); returns its name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    name = "mgbench-" + NAME
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, SafeInceptionV3)
    return name
