"""The ``domain`` feature extractor: a small CNN classifier trained on the benchmark's real images.

It needs no downloaded weights, so the benchmark scores offline. It plays the role Inception-v3
plays for FID (Heusel et al. 2017) and IS (Salimans et al. 2016), and of the MNIST classifier
in Stacked-MNIST mode counts (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): its
penultimate embedding ``pool`` feeds FID/KID/precision-recall, its logits feed IS and the
per-factor mode counts. On the shapes data it has two heads over a shared trunk, ``coarse`` and
``fine`` (docs/ARCHITECTURE.md, "The embedded dataset"), so a model's coverage is measured per scale.

Scores with this extractor are comparable only between runs that use the same classifier: its
name holds the hash of its training inputs, and its weight hash goes into every cache key.

The classifier is trained once per (dataset spec, training images, architecture, settings) and
cached on disk under a content hash of those (see :mod:`mgbench.cache`); a later run loads it.
Training is deterministic on the CPU for fixed settings: parameters drawn inside a forked RNG,
batches from a private generator, and a pinned thread count (CPU results depend on it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from mgbench.cache import cache_key, cache_root, cached_with_meta
from mgbench.errors import UsageError
from mgbench.features.extract import extract_features, images_sha256, to_rgb_uint8

log = logging.getLogger(__name__)

ARCH_VERSION = "domain-cnn-v1"  # bump when DomainNet changes: invalidates cached classifiers


class LabelledImages(Protocol):
    """What the domain classifier needs of a dataset split (``mgbench.data.ImageSet`` has it)."""

    images: torch.Tensor  # uint8 N×C×H×W, C = 1 or 3
    factors: dict[str, torch.Tensor]  # head name → int64 labels (N,), e.g. {"coarse", "fine"}
    factor_classes: dict[str, int]  # head name → number of classes


@dataclasses.dataclass(frozen=True)
class DomainSettings:
    """How the classifier is trained. Every field is part of the cache key."""

    steps: int = 300  # Adam steps; 300 × 128 ≈ 2 passes over 20k images
    batch_size: int = 128
    lr: float = 3e-3  # Adam, cosine-decayed to 0 over ``steps``
    width: int = 16  # channels of the full-resolution stage; doubled at each halving, up to embed_dim
    embed_dim: int = 128  # width of the embedding ``pool``
    # Intra-op CPU threads while training. Fixed because CPU results depend on it (measured:
    # 1 and 2 threads give different weights, each bit-identical run to run); 1 is also the
    # fastest on a loaded 2-core machine (65 s vs 268 s for 2 threads, shapes 32 px).
    cpu_threads: int = 1
    seed: int = 0


class DomainNet(nn.Module):
    """Conv-BN-ReLU trunk: one 3×3 stage at full resolution (the fine texture lives there), then
    stride-2 stages down to 4×4, with one more 3×3 conv at 8×8 and at 4×4 (cheap, and they
    widen the receptive field to the whole shape: without them the coarse head reached 88%
    instead of 99.5% on shapes 32 px for the same budget). Global average pooling gives the
    embedding ``pool`` (``embed_dim`` wide, the analogue of Inception's pool3); one linear head
    per factor."""

    def __init__(self, heads: dict[str, int], resolution: int, width: int = 16, embed_dim: int = 128) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise UsageError(f"the domain classifier needs a power-of-two resolution ≥ 8, got {resolution}")
        self.resolution = resolution
        layers: list[nn.Module] = [*_block(3, width, stride=1)]  # width × R × R
        channels, size = width, resolution
        while size > 4:
            wider = min(2 * channels, embed_dim)
            layers += _block(channels, wider, stride=2)  # wider × size/2 × size/2
            channels, size = wider, size // 2
            if size <= 8:
                out = embed_dim if size == 4 else channels
                layers += _block(channels, out, stride=1)
                channels = out
        self.trunk = nn.Sequential(*layers)  # embed_dim × 4 × 4
        self.embed_dim = embed_dim
        self.heads = nn.ModuleDict({name: nn.Linear(embed_dim, k) for name, k in heads.items()})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Float B×3×R×R in [-1, 1] → (embedding B×D, {head: logits B×K})."""
        pool = self.trunk(x).mean(dim=(2, 3))
        return pool, {name: head(pool) for name, head in self.heads.items()}


def _block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _features(net: DomainNet, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(pool, joint logits, logits of each head) of uint8 images, float32."""
    pool, logits = net(_to_input(images))
    per_head = list(logits.values())
    return (pool, joint_logits(per_head), *per_head)


def _to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 B×C×H×W → float B×3×H×W in [-1, 1] (grey tiled to RGB)."""
    return to_rgb_uint8(images).float() / 127.5 - 1.0


def joint_logits(head_logits: list[torch.Tensor]) -> torch.Tensor:
    """Logits of the joint class y = c·F + f (first head major) from per-head logits.

    log p(c, f | x) = log p(c | x) + log p(f | x): the heads' posteriors multiplied. The factors
    of the shapes data are drawn independently and each image shows both, so this is the
    posterior over the joint classes that the CGAN conditions on; IS computed on it rewards
    covering all C·F combinations, not each factor alone. One head: its logits unchanged.
    """
    if len(head_logits) == 1:
        return head_logits[0]
    out = head_logits[0].log_softmax(dim=1)
    for logits in head_logits[1:]:
        out = (out[:, :, None] + logits.log_softmax(dim=1)[:, None, :]).flatten(1)
    return out


def heads_of(data: LabelledImages) -> dict[str, int]:
    """The classifier heads for ``data``, or a :class:`UsageError` if it has no labels."""
    heads = {name: int(k) for name, k in getattr(data, "factor_classes", {}).items() if k >= 2}
    if not heads:
        raise UsageError(
            "the domain feature extractor is trained on class labels and this dataset has none",
            "use --feature-extractor inception with its weights (see --weights)",
        )
    return heads


def train_domain_classifier(
    data: LabelledImages, heads: dict[str, int], settings: DomainSettings, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Train :class:`DomainNet` on ``data`` (sum of the heads' cross-entropies); its state dict.

    Deterministic on the CPU for fixed ``settings`` (same torch build and CPU kind): the
    parameters are drawn inside a forked RNG, the batches from a private generator, and the
    thread count is pinned to ``settings.cpu_threads`` for the duration (then restored).
    """
    device = torch.device(device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(settings.cpu_threads)
    try:
        return _train(data, heads, settings, device)
    finally:
        torch.set_num_threads(threads)


def _train(
    data: LabelledImages, heads: dict[str, int], settings: DomainSettings, device: torch.device
) -> dict[str, torch.Tensor]:
    images = data.images
    labels = torch.stack([data.factors[name].long() for name in heads], dim=1)  # N × heads
    # Draw the initial parameters from a forked RNG: the caller's global RNG is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = DomainNet(heads, images.shape[-1], settings.width, settings.embed_dim).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / settings.steps)))
    g = torch.Generator().manual_seed(settings.seed)
    order, pos = torch.randperm(len(images), generator=g), 0
    net.train()
    for _ in range(settings.steps):
        if pos + settings.batch_size > len(images):  # a new epoch: reshuffle
            order, pos = torch.randperm(len(images), generator=g), 0
        idx = order[pos : pos + settings.batch_size]
        pos += settings.batch_size
        x, y = _to_input(images[idx]).to(device), labels[idx].to(device)
        _, logits = net(x)
        loss = sum(F.cross_entropy(out, y[:, i]) for i, out in enumerate(logits.values()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


class DomainExtractor:
    """A trained :class:`DomainNet` behind the :class:`~mgbench.features.extract.Extractor` interface.

    Features: ``pool`` (embedding), ``logits`` (see :func:`joint_logits`) and ``logits_<head>``.
    """

    def __init__(
        self,
        state: dict[str, torch.Tensor],
        heads: dict[str, int],
        resolution: int,
        settings: DomainSettings,
        name: str,
        meta: dict[str, Any] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.arch = {
            "heads": dict(heads),
            "resolution": resolution,
            "width": settings.width,
            "embed_dim": settings.embed_dim,
        }
        self.net = DomainNet(**self.arch)
        self.net.load_state_dict(state)
        self.device = torch.device(device)
        self.net.to(self.device).eval().requires_grad_(False)
        self.heads = dict(heads)
        self.resolution = resolution
        self.name = name
        self.meta = dict(meta or {})
        self.weights_sha256 = state_sha256(state)
        self.feature_names = ("pool", "logits", *(f"logits_{h}" for h in heads))

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if images.shape[-2:] != (self.resolution, self.resolution):
            raise UsageError(
                f"the domain classifier was trained at {self.resolution} px, got images of "
                f"{images.shape[-2]}×{images.shape[-1]}",
                "score samples at the resolution of the dataset",
            )
        return _features(self.net, images.to(self.device))

    @property
    def accuracy(self) -> dict[str, float]:
        """Held-out accuracy of each head on the reference split it was checked on."""
        return dict(self.meta.get("accuracy", {}))


def head_accuracy(extractor: DomainExtractor, data: LabelledImages, batch_size: int = 500) -> dict[str, float]:
    """Fraction of ``data`` each head classifies correctly."""
    feats = extract_features(extractor, data.images, batch_size)
    return {
        h: (feats[f"logits_{h}"].argmax(1) == data.factors[h].long()).double().mean().item() for h in extractor.heads
    }


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """Content hash of a state dict (names, dtypes, shapes, values), independent of file format."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def labels_sha256(data: LabelledImages, heads: dict[str, int]) -> str:
    digest = hashlib.sha256(images_sha256(data.images).encode())
    for h in heads:
        digest.update(h.encode() + data.factors[h].long().cpu().numpy().tobytes())
    return digest.hexdigest()


def domain_extractor(
    train: LabelledImages,
    reference: LabelledImages | None,
    *,
    dataset: dict[str, Any],
    settings: DomainSettings = DomainSettings(),
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> DomainExtractor:
    """The domain classifier for ``train``: loaded from the cache, or trained and cached.

    ``dataset`` is the dataset spec (name, resolution, train_size, seed, ...), part of the
    cache key together with a hash of the training images and labels, ``ARCH_VERSION`` and
    ``settings`` and the device type. ``reference`` (held out) gives the accuracy of each head,
    logged and kept in the metadata; it is not part of the key.
    """
    heads = heads_of(train)
    resolution = int(train.images.shape[-1])
    device = torch.device(device)
    reference_hash = None if reference is None else labels_sha256(reference, heads)
    key_parts = {
        "kind": "domain-classifier",
        "arch": ARCH_VERSION,
        "dataset": dataset,
        "train_sha256": labels_sha256(train, heads),
        "heads": heads,
        "resolution": resolution,
        "settings": dataclasses.asdict(settings),
        "device": device.type,  # CPU and GPU kernels round differently: different weights
    }

    def compute() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        log.info("training the domain classifier on %d images (%s)", len(train.images), dataset)
        start = time.perf_counter()
        state = train_domain_classifier(train, heads, settings, device)
        seconds = time.perf_counter() - start
        meta: dict[str, Any] = {
            "train_seconds": round(seconds, 2),
            "num_train": len(train.images),
            "torch": torch.__version__,
            "device": str(device),
        }
        if reference is not None:
            probe = DomainExtractor(state, heads, resolution, settings, "probe", device=device)
            meta["accuracy"] = head_accuracy(probe, reference)
            meta["reference_sha256"] = reference_hash
        return state, meta

    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "domain"
    key = cache_key(key_parts)
    state, meta = cached_with_meta(key_parts, compute, folder, label="domain classifier")
    extractor = _from_cache(folder, key, state, meta, heads, resolution, settings, device)
    if reference is not None and meta.get("reference_sha256") != reference_hash:
        extractor.meta["accuracy"] = head_accuracy(extractor, reference)  # another reference split
    if extractor.accuracy:
        log.info(
            "domain classifier %s: held-out accuracy %s",
            extractor.name,
            ", ".join(f"{h} {a:.4f}" for h, a in extractor.accuracy.items()),
        )
    return extractor


def _from_cache(folder: Path, key: str, state: dict[str, torch.Tensor], meta: Any, heads: dict[str, int],
                resolution: int, settings: DomainSettings, device: torch.device) -> DomainExtractor:
    """The extractor of a cache entry; an entry whose hash matches but whose tensors do not fit the
    network (or whose metadata is no table) is damaged: a :class:`UsageError` naming its files."""
    try:
        if not isinstance(meta, dict):
            raise TypeError(f"its metadata is {type(meta).__name__}, not a table")
        accuracy = meta.get("accuracy", {})
        if not isinstance(accuracy, dict) or not all(isinstance(a, (int, float)) for a in accuracy.values()):
            raise TypeError("its accuracy is not a table of numbers")
        return DomainExtractor(state, heads, resolution, settings, f"domain-{key[:12]}", meta, device)
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as err:
        pt, js = folder / f"{key}.pt", folder / f"{key}.json"
        why = " ".join(str(err).split())[:300] or type(err).__name__
        raise UsageError(f"cached domain classifier {str(pt)!r} is damaged ({why})",
                         f"delete {str(pt)!r} and {str(js)!r}: the next run trains it again") from None


class FidelityDomainExtractor(FeatureExtractorBase):
    """A trained domain classifier as a torch-fidelity feature extractor.

    :func:`register_with_torch_fidelity` makes one subclass per classifier with its weights in
    class attributes, because torch-fidelity builds extractors from a registered class.
    """

    _state: dict[str, torch.Tensor] = {}
    _arch: dict[str, Any] = {"heads": {}, "resolution": 0}

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.net = DomainNet(**self._arch)
        self.net.load_state_dict(self._state)

    @classmethod
    def get_provided_features_list(cls) -> tuple[str, ...]:
        return ("pool", "logits", *(f"logits_{h}" for h in cls._arch["heads"]))

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "pool", "kid": "pool", "prc": "pool"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @classmethod
    def get_dummy_input_for_compile(cls) -> torch.Tensor:
        size = cls._arch["resolution"]
        return torch.zeros(1, 3, size, size, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = dict(zip(self.get_provided_features_list(), _features(self.net, x), strict=True))
        return tuple(features[name] for name in self.features_list)


def register_with_torch_fidelity(extractor: DomainExtractor) -> str:
    """Register ``extractor`` with torch-fidelity (idempotent); returns the name to pass as
    ``calculate_metrics(..., feature_extractor=name)``."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    name = f"mgbench-{extractor.name}-{extractor.weights_sha256[:12]}"
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        attrs = {
            "_state": {k: v.detach().cpu().clone() for k, v in extractor.net.state_dict().items()},
            "_arch": dict(extractor.arch),
        }
        register_feature_extractor(
            name, type(f"FidelityDomain_{extractor.weights_sha256[:12]}", (FidelityDomainExtractor,), attrs)
        )
    return name
