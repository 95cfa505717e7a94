"""The Python API: score images from a training loop or a notebook, and run a benchmark.

``mgbench.score`` is what torch-fidelity's ``calculate_metrics`` or clean-fid's ``compute_fid``
is for their users, with every registered metric of mgbench; ``mgbench.run`` is `mgbench run`
returning the results table. Both resolve their settings exactly as the command line does.

Scoring a generator every N steps of one's own loop::

    import mgbench

    for step in range(steps):
        ...  # train
        if step % 1000 == 0:
            scores = mgbench.score(lambda n, g: netG(torch.randn(n, 100, 1, 1, generator=g)),
                                   dataset="shapes", num_samples=2000, metrics=["fid", "swd"])

The evaluator (feature extractor, reference features, LPIPS network) of the last call is kept, so
calls with the same settings pay only for the samples' feature pass and the metrics.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgbench import seeding
from mgbench.errors import UsageError

# images: a uint8 tensor or array (N×C×H×W or N×H×W×C), a folder of images or an .npz file;
# for the samples also a callable (n, generator) -> images (floats in [-1, 1], or uint8).
Images = torch.Tensor | np.ndarray | str | Path
Sampler = Callable[[int, torch.Generator], torch.Tensor]

SAMPLE_BATCH = 500
_last_evaluator: tuple[str, Any] | None = None  # (key, Evaluator): the in-loop case reuses it


def read_images(path: str | Path, resolution: int | None = None) -> torch.Tensor:
    """uint8 N×C×H×W from a folder of images or an .npz (its ``arr_0``, or its only/first array:
    N×H×W×C or N×H×W, as the TensorFlow/ADM evaluation suites write them)."""
    from mgbench.data.readers import read_folder, resize

    path = Path(path)
    if path.is_dir():
        if resolution is None:
            from PIL import Image

            first = next((p for p in sorted(path.rglob("*")) if p.suffix.lower() in (".png", ".jpg", ".jpeg")), None)
            if first is None:
                raise UsageError(f"no images (png, jpg) in {path}", "give a folder of images or an .npz")
            try:
                with Image.open(first) as im:
                    resolution = min(im.size)
            except Image.DecompressionBombError as err:  # the reader's own check, before it reads
                raise UsageError(f"image {first} is too large to decode safely ({err})".splitlines()[0],
                                 "delete it or give a smaller copy") from None
            except OSError as err:
                raise UsageError(f"cannot decode image {first}: {err}", "replace or delete that file") from None
        return read_folder(path, resolution)[0]
    if not path.exists():
        raise UsageError(f"{path} does not exist", "check the path")
    if path.suffix != ".npz":
        raise UsageError(f"{path} is neither a folder nor an .npz file", "give a folder of images or an .npz")
    try:
        with np.load(path, allow_pickle=False) as npz:  # no pickles: an .npz cannot run code
            if not npz.files:
                raise UsageError(f"{path} holds no arrays", "save the images with np.savez(path, images)")
            array = npz["arr_0"] if "arr_0" in npz.files else npz[npz.files[0]]
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path} cannot be read as .npz: {err}", "save the images with np.savez") from None
    images = as_images(array, str(path))
    if resolution is not None and images.shape[-1] != resolution:
        images = resize(images, resolution)
    return images


def as_images(array: torch.Tensor | np.ndarray, what: str = "images") -> torch.Tensor:
    """uint8 N×C×H×W (C = 1 or 3) from a uint8 tensor/array N×C×H×W, N×H×W×C or N×H×W."""
    x = torch.as_tensor(np.asarray(array)) if isinstance(array, np.ndarray) else array
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim not in (3, 4):
        got = f"{x.dtype} {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
        raise UsageError(f"{what}: expected uint8 images N×H×W×3 (or N×C×H×W), got {got}",
                         "convert with ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)")
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise UsageError(f"{what}: images must have 1 or 3 channels, got shape {tuple(x.shape)}",
                         "give uint8 N×H×W×3 (or N×C×H×W) images, grey or RGB")
    if x.shape[-1] != x.shape[-2]:
        raise UsageError(f"{what}: images are {x.shape[-2]}×{x.shape[-1]}, not square", "crop them to a square")
    return x.contiguous().cpu()


def draw(sampler: Sampler, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images from ``sampler(count, generator)`` in batches, as uint8 on the CPU."""
    from mgbench.data import to_uint8

    gen = seeding.generator(seeding.derive_seed("api-samples", seed))
    out = []
    with torch.inference_mode():
        for start in range(0, n, SAMPLE_BATCH):
            batch = sampler(min(SAMPLE_BATCH, n - start), gen)
            batch = batch if batch.dtype == torch.uint8 else to_uint8(batch.float())
            out.append(as_images(batch.cpu(), "the sampler's images"))
    return torch.cat(out)


def _images(source: Images | Sampler, num_samples: int | None, what: str, resolution: int | None = None,
            seed: int = 0) -> torch.Tensor:
    if callable(source):
        if not num_samples:
            raise UsageError(f"{what} is a sampler: say how many images to draw", "pass num_samples=N")
        return draw(source, num_samples, seed)
    if isinstance(source, (str, Path)):
        images = read_images(source, resolution)
    else:
        images = as_images(source, what)
    if num_samples is not None:
        if num_samples > len(images):
            raise UsageError(f"{what} holds {len(images)} images, fewer than num_samples={num_samples}")
        images = images[:num_samples]
    return images


def score(fake: Images | Sampler, reference: Images | None = None, *, dataset: str | None = None,
          data_root: str | None = None, metrics: Sequence[str] | None = None, feature_extractor: str = "auto",
          weights: str | None = None, device: str | None = None, num_samples: int | None = None,
          seed: int = 0) -> dict[str, Any]:
    """Every selected metric of ``fake`` against ``reference`` (or ``dataset``'s held-out split):
    the same flat dict as `mgbench score --json` (column → value).

    ``fake``: uint8 images (tensor or array, N×C×H×W or N×H×W×C), a folder, an .npz, or a sampler
    ``(n, generator) -> images`` with ``num_samples``. ``reference`` may be an .npz of saved
    Fréchet statistics (:func:`save_stats`, or pytorch-fid's): then only FID is computed.
    ``dataset``: a registered dataset; the ``domain`` extractor (the default when the Inception
    weights are absent) is trained on its training split (cached). ``seed`` fixes the metrics'
    random subsets and a sampler's noise.
    """
    from mgbench.device import resolve_device

    fake_images = _images(fake, num_samples, "fake", seed=seed)
    if reference is None and dataset is None:
        raise UsageError("nothing to score against",
                         "give a reference (images, a folder or an .npz: REFERENCE), or dataset=NAME (--dataset)")
    config = _score_config(fake_images.shape[-1], len(fake_images), dataset, data_root, metrics,
                           feature_extractor, weights, seed)
    if is_stats_file(reference):
        return _score_against_stats(fake_images, Path(reference), config, device, dataset, metrics)
    reference_images = None if reference is None else _images(reference, None, "reference", fake_images.shape[-1])
    evaluator = _evaluator(config, resolve_device(device or "auto"), dataset, reference_images)
    return evaluator.score(fake_images, seed=seed)


def _score_config(resolution: int, count: int, dataset: str | None, data_root: str | None,
                  metrics: Sequence[str] | None, feature_extractor: str, weights: str | None, seed: int) -> Any:
    """The run config that scoring ``count`` images at ``resolution`` amounts to."""
    from mgbench.config import RunConfig
    from mgbench.data import get_dataset
    from mgbench.evaluate import resolve_extractor

    if dataset is not None:
        get_dataset(dataset)  # an unknown name lists the valid ones
    config = RunConfig.from_dict({
        "seeds": [seed],
        "data": {"name": dataset or "folder", "resolution": resolution, "root": data_root},
        "eval": {"num_samples": max(10, count), "feature_extractor": feature_extractor,
                 "weights": weights, "metrics": list(metrics) if metrics is not None else None},
    })
    if dataset is None and resolve_extractor(config) == "domain":
        from mgbench.metrics import registry
        from mgbench.metrics.registry import FEATURES

        if any(FEATURES in m.needs for m in registry.select(config.eval.metrics)):
            raise UsageError("the domain feature extractor needs a dataset (it is trained on that dataset)",
                             "pass dataset=NAME (--dataset), or feature_extractor='inception' with its weights")
    return config


# ---------------------------------------------------------------- saved Fréchet statistics

STATS_KEYS = ("mu", "sigma")  # the names pytorch-fid's --save-stats writes


def is_stats_file(path: object) -> bool:
    """An .npz holding ``mu`` and ``sigma`` (saved statistics), not images."""
    if not isinstance(path, (str, Path)) or Path(path).suffix != ".npz" or not Path(path).is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as npz:
            return set(STATS_KEYS) <= set(npz.files)
    except (ValueError, OSError, zipfile.BadZipFile):
        return False


def _pool_features(images: torch.Tensor, config: Any, device: str | None, dataset: str | None) -> tuple[Any, str]:
    """The ``pool`` features of ``images`` under the config's extractor, and the extractor's name."""
    from mgbench.device import resolve_device
    from mgbench.evaluate import build_extractor
    from mgbench.features.extract import extract_features
    from mgbench.job import load_data

    train = load_data(config, "train") if dataset is not None else None
    heldout = load_data(config, "reference") if dataset is not None else None
    extractor = build_extractor(config, resolve_device(device or "auto"), train, heldout)
    return extract_features(extractor, images)["pool"], extractor.name


def save_stats(images: Images, path: str | Path, *, dataset: str | None = None, data_root: str | None = None,
               feature_extractor: str = "auto", weights: str | None = None, device: str | None = None) -> Path:
    """The Fréchet statistics of ``images`` (mean and covariance of the extractor's pool features)
    into the .npz ``path``, under the keys pytorch-fid's ``--save-stats`` uses (``mu``, ``sigma``),
    with the extractor's name and the number of images. Score against it later with
    ``score(fake, path)``: FID without the reference images."""
    from mgbench.metrics.frechet import feature_statistics

    imgs = _images(images, None, "images")
    config = _score_config(imgs.shape[-1], len(imgs), dataset, data_root, ["fid"], feature_extractor, weights, 0)
    features, name = _pool_features(imgs, config, device, dataset)
    mu, sigma = feature_statistics(features)
    path = Path(path)
    if path.suffix != ".npz":
        raise UsageError(f"statistics file {path} must end in .npz", "give a path like ref_stats.npz")
    with path.open("wb") as handle:
        np.savez(handle, mu=mu, sigma=sigma, feature_extractor=np.array(name), num_images=np.array(len(imgs)),
                 resolution=np.array(imgs.shape[-1]))
    return path


def _score_against_stats(fake: torch.Tensor, path: Path, config: Any, device: str | None, dataset: str | None,
                         metrics: Sequence[str] | None) -> dict[str, Any]:
    """FID of ``fake`` against saved statistics; the only metric they allow."""
    import logging

    from mgbench.metrics.frechet import feature_statistics, frechet_distance

    if metrics is not None and list(metrics) != ["fid"]:
        raise UsageError(f"{path} holds Fréchet statistics, from which only fid can be computed "
                         f"(asked for: {', '.join(metrics)})", "pass metrics=['fid'] (--metrics fid), or give images")
    with np.load(path, allow_pickle=False) as npz:
        mu, sigma = npz["mu"], npz["sigma"]
        saved = str(npz["feature_extractor"]) if "feature_extractor" in npz.files else None
    features, name = _pool_features(fake, config, device, dataset)
    if saved is not None and saved != name:
        raise UsageError(f"{path} was saved with the feature extractor {saved}, the samples are scored with {name}",
                         "score with the same --feature-extractor (and --dataset for domain) as when saving")
    if saved is None:
        logging.getLogger(__name__).warning("%s does not name its feature extractor (pytorch-fid's files do not): "
                                            "make sure it is %s", path, name)
    if mu.shape != (features.shape[1],):
        raise UsageError(f"{path} holds statistics of {mu.shape[0]}-dimensional features, {name} gives "
                         f"{features.shape[1]}", "save and score with the same feature extractor")
    fake_mu, fake_sigma = feature_statistics(features)
    return {"fid": frechet_distance(fake_mu, fake_sigma, mu, sigma), "num_samples": len(fake),
            "feature_extractor": name}


def _evaluator(config: Any, device: torch.device, dataset: str | None, reference: torch.Tensor | None) -> Any:
    """The evaluator for these settings; the previous call's when they are the same."""
    global _last_evaluator
    from mgbench.data import ImageSet
    from mgbench.evaluate import Evaluator
    from mgbench.features.extract import images_sha256
    from mgbench.job import load_data

    key = f"{config.to_json()}|{device}|{None if reference is None else images_sha256(reference)}"
    if _last_evaluator is not None and _last_evaluator[0] == key:
        return _last_evaluator[1]
    train = load_data(config, "train") if dataset is not None else None
    heldout = load_data(config, "reference") if dataset is not None else None
    scored_against = heldout if reference is None else ImageSet(reference, None, 0)
    evaluator = Evaluator(config, device, scored_against, train, heldout=heldout)
    _last_evaluator = (key, evaluator)
    return evaluator


def run(config: str | Path | dict[str, Any] | None = None, *, preset: str | None = None,
        **overrides: Any) -> Any:
    """Run a benchmark as `mgbench run` does and return its results table (a pandas DataFrame,
    one row per job and calibration row). ``config``: a TOML file, or a TOML-shaped dict;
    ``overrides``: top-level keys or tables (``models=["dcgan"], train={"steps": 200}``)."""
    import pandas as pd

    from mgbench import config as configuration
    from mgbench.errors import UsageError as Usage
    from mgbench.report.commands import build_report
    from mgbench.runner import execute

    if isinstance(config, dict):
        settings = configuration.merge(config, overrides)
        resolved = configuration.resolve(preset or settings.pop("preset", None), None, settings)
    elif config is None or isinstance(config, (str, Path)):
        resolved = configuration.resolve(preset, config, overrides)
    else:
        raise Usage(f"config must be a TOML file path or a dict, got {type(config).__name__}")
    execute(resolved)
    build_report(resolved.run_dir)
    return pd.read_csv(resolved.run_dir / "results.csv")
