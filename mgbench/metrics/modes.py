"""Per-scale mode coverage: the Stacked-MNIST mode count (Srivastava et al. 2017, VEEGAN;
Lin et al. 2018, PacGAN) made scale-resolved.

A classifier trained on real images of the dataset predicts, for every generated image, each
factor the dataset declares (on the embedded shapes: the coarse factor, the global shape, and
the fine factor, the local texture; on MNIST: the class). From those predictions we count, per
head, how many classes a sampler produces and how evenly it spreads over them (KL of the
predicted-class histogram to the uniform), and the same for the joint label of a dataset whose
label combines several factors (shapes: y = c·F + f, the label the conditional models are given).

When is a class covered? Stacked MNIST counts a mode once a single sample lands in it. With a
classifier that errs, that makes a collapsed sampler look diverse: an error rate ε spread over
the other K−1 classes gives each of them about εN/(K−1) samples, which passes a threshold of
one sample as soon as N is large. Here a class is covered when it receives at least
``min_share`` (default 10 %) of its expected share N/K under a uniform sampler (and at least
``min_count`` samples): misclassifications then fake a mode only when the classifier errs on
about 10 % of a collapsed sampler's images. ``min_share=0`` gives the classic count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mgbench.errors import UsageError

JOINT = "joint"


def predictions(logits_or_preds: torch.Tensor) -> torch.Tensor:
    """Class indices from N×K logits (argmax) or from N class indices (returned as they are)."""
    x = torch.as_tensor(logits_or_preds)
    if x.ndim == 2:
        return x.argmax(dim=1)
    if x.ndim == 1 and not x.is_floating_point():
        return x.long()
    raise UsageError(f"expected N×K logits or N integer labels, got {x.dtype} {tuple(x.shape)}")


def joint_labels(preds: Sequence[torch.Tensor], classes: Sequence[int]) -> torch.Tensor:
    """The joint label of several factors, the first most significant: y = c·F + f for shapes'
    (coarse c, fine f) with F fine classes (docs/ARCHITECTURE.md, "The embedded dataset")."""
    out = torch.zeros_like(preds[0], dtype=torch.long)
    for p, k in zip(preds, classes, strict=True):
        out = out * k + p.long()
    return out


def _histogram(preds: torch.Tensor, classes: int, name: str) -> torch.Tensor:
    if len(preds) == 0:
        raise UsageError(f"head {name!r}: no predictions")
    if preds.min() < 0 or preds.max() >= classes:
        raise UsageError(f"head {name!r}: predicted classes outside [0, {classes})")
    return torch.bincount(preds.cpu(), minlength=classes).double()


def _kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p̂ ‖ uniform) = log K − H(p̂), in nats; empty classes contribute 0."""
    p = counts / counts.sum()
    entropy = -float(torch.special.xlogy(p, p).sum())
    return math.log(len(counts)) - entropy


def mode_coverage(
    head_logits: dict[str, torch.Tensor],
    factor_classes: dict[str, int],
    *,
    joint: Sequence[str] = (),
    min_count: int = 1,
    min_share: float = 0.1,
) -> dict[str, float]:
    """Modes covered and KL to uniform per classifier head, and for the joint label.

    ``head_logits`` maps a head name to N×K logits (or N predicted labels); ``factor_classes``
    gives K per head. Returns ``modes_<head>`` (number of covered classes, see the module
    docstring) and ``kl_<head>`` (nats; 0 for perfectly balanced, log K for a single class),
    plus ``modes_joint`` / ``kl_joint`` over the label combining the heads ``joint`` (e.g.
    ``("coarse", "fine")``: c·F + f) when it names two or more.
    """
    preds = {}
    for name, logits in head_logits.items():
        if name not in factor_classes:
            raise UsageError(f"no class count for head {name!r}", f"factor_classes has {sorted(factor_classes)}")
        x = torch.as_tensor(logits)
        if x.ndim == 2 and x.shape[1] != factor_classes[name]:
            raise UsageError(f"head {name!r}: {x.shape[1]} logits but {factor_classes[name]} classes")
        preds[name] = predictions(x)
    classes = {name: factor_classes[name] for name in preds}
    if len(joint) > 1 and all(h in preds for h in joint):
        preds[JOINT] = joint_labels([preds[h] for h in joint], [classes[h] for h in joint])
        classes[JOINT] = math.prod(classes[h] for h in joint)

    out: dict[str, float] = {}
    for name, p in preds.items():
        counts = _histogram(p, classes[name], name)
        threshold = max(min_count, min_share * len(p) / classes[name])
        out[f"modes_{name}"] = int((counts >= threshold).sum())
        out[f"kl_{name}"] = _kl_to_uniform(counts)
    return out


def predicted_labels(head_logits: dict[str, torch.Tensor], factor_classes: dict[str, int],
                     label_heads: Sequence[str]) -> torch.Tensor:
    """The class label the heads predict, in the dataset's label space (the ``label_heads``
    combined as :func:`joint_labels`)."""
    return joint_labels([predictions(head_logits[h]) for h in label_heads], [factor_classes[h] for h in label_heads])


def conditional_accuracy(logits_or_preds: torch.Tensor, requested_labels: torch.Tensor) -> float:
    """Fraction of samples of a conditional model classified as the label it was asked for."""
    preds = predictions(logits_or_preds)
    requested = torch.as_tensor(requested_labels).long().to(preds.device)
    if preds.shape != requested.shape:
        raise UsageError(f"{len(preds)} predictions but {len(requested)} requested labels")
    return float((preds == requested).double().mean())
