"""`mgbench score FAKE [REFERENCE]`: the metrics of `mgbench run` for images made anywhere.

FAKE and REFERENCE are each a folder of png/jpg images or an ``.npz`` whose first array is
uint8 N×H×W×3 (the layout of the TensorFlow/ADM evaluation suites). Instead of REFERENCE,
``--dataset NAME`` scores against that dataset's held-out reference split; the ``domain``
extractor needs ``--dataset`` in any case, since it is trained on that dataset's training split.
"""

from __future__ import annotations

import argparse
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgbench import presets
from mgbench.config import RunConfig
from mgbench.data import DATASETS, ImageSet
from mgbench.data.readers import read_folder
from mgbench.device import resolve_device
from mgbench.errors import UsageError, unknown_name
from mgbench.evaluate import Evaluator, resolve_extractor
from mgbench.job import load_data


def read_images(path: str | Path, resolution: int | None = None) -> torch.Tensor:
    """uint8 N×C×H×W from a folder of images or an .npz (first array N×H×W×C or N×H×W)."""
    path = Path(path)
    if path.is_dir():
        if resolution is None:
            from PIL import Image

            first = next((p for p in sorted(path.rglob("*")) if p.suffix.lower() in (".png", ".jpg", ".jpeg")), None)
            if first is None:
                raise UsageError(f"no images (png, jpg) in {path}", "give a folder of images or an .npz")
            resolution = min(Image.open(first).size)
        return read_folder(path, resolution)[0]
    if path.suffix != ".npz":
        raise UsageError(f"{path} is neither a folder nor an .npz file", "give a folder of images or an .npz")
    try:
        with np.load(path, allow_pickle=False) as npz:  # no pickles: an .npz cannot run code
            if not npz.files:
                raise UsageError(f"{path} holds no arrays", "save the images with np.savez(path, images)")
            array = npz[npz.files[0]]
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist", "check the path") from None
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path} cannot be read as .npz: {err}", "save the images with np.savez") from None
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)):
        raise UsageError(f"{path}: first array is {array.dtype} {array.shape}, expected uint8 N×H×W×3",
                         "convert with (x * 255).round().astype(np.uint8), channels last")
    images = torch.from_numpy(array)
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)
    if resolution is not None and images.shape[-1] != resolution:
        from mgbench.data.readers import resize

        images = resize(images, resolution)
    return images.contiguous()


def score_command(args: argparse.Namespace) -> int:
    fake = read_images(args.fake)
    if fake.shape[-1] != fake.shape[-2]:
        raise UsageError(f"{args.fake}: images are {fake.shape[-2]}×{fake.shape[-1]}, not square",
                         "crop the images to a square")
    resolution = fake.shape[-1]
    if args.dataset is not None and args.dataset not in DATASETS:
        raise unknown_name("dataset", args.dataset, DATASETS)
    if args.reference is None and args.dataset is None:
        raise UsageError("nothing to score against", "give a REFERENCE folder or .npz, or --dataset NAME")
    data = {"name": args.dataset or "folder", "resolution": resolution, "root": args.data_root}
    config = RunConfig.from_dict({
        **presets.preset("quick"),
        "data": data,
        "eval": {"num_samples": len(fake), "feature_extractor": args.feature_extractor, "weights": args.weights},
    })
    if resolve_extractor(config) == "domain" and args.dataset is None:
        raise UsageError("the domain feature extractor needs --dataset (it is trained on that dataset)",
                         "add --dataset NAME, or use --feature-extractor inception --weights PATH")
    if args.reference is not None:
        reference = ImageSet(read_images(args.reference, resolution), None, 0)
    else:
        reference = load_data(config, "reference")
    train = load_data(config, "train") if args.dataset is not None else None
    evaluator = Evaluator(config, resolve_device(args.device), reference, train)
    scores = evaluator.score(fake, seed=args.seed)
    print(format_scores(scores))
    if args.json:
        Path(args.json).write_text(json.dumps(_json_safe(scores), indent=2, sort_keys=True))
    return 0


def _json_safe(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in scores.items()}


def format_scores(scores: dict[str, Any]) -> str:
    width = max(map(len, scores))
    lines = []
    for k, v in scores.items():
        text = f"{v:.6g}" if isinstance(v, float) else str(v)
        lines.append(f"{k:<{width}}  {text}")
    return "\n".join(lines)


def add_command(subparsers: Any) -> None:
    p = subparsers.add_parser("score", help="score images from anywhere against a reference",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fake", help="folder of images or .npz (uint8 N×H×W×3)")
    p.add_argument("reference", nargs="?", help="folder of images or .npz; or use --dataset")
    p.add_argument("--dataset", help=f"score against this dataset's held-out split ({', '.join(DATASETS)})")
    p.add_argument("--data-root", help="folder of the dataset's files (real datasets)")
    p.add_argument("--feature-extractor", default="auto", help="auto (default), inception or domain")
    p.add_argument("--weights", help="Inception weights file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of the metrics' random subsets and patches")
    p.add_argument("--json", help="also write the scores to this file as a flat JSON object")
    p.set_defaults(func=score_command)
