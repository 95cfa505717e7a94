"""`mgbench score FAKE [REFERENCE]`: the metrics of `mgbench run` for images made anywhere
(:func:`mgbench.api.score` on the command line).

FAKE and REFERENCE are each a folder of png/jpg images or an ``.npz`` whose ``arr_0`` (or first
array) is uint8 N×H×W×3 (the layout of the TensorFlow/ADM evaluation suites). REFERENCE may
also be saved Fréchet statistics (an ``.npz`` with ``mu`` and ``sigma``: ``--save-stats``, or
pytorch-fid's ``--save-stats``): then only FID is computed. Instead of
REFERENCE, ``--dataset NAME`` scores against that dataset's held-out reference split; the
``domain`` extractor needs ``--dataset`` in any case, since it is trained on that dataset's
training split.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from mgbench.errors import UsageError


def score_command(args: argparse.Namespace) -> int:
    from mgbench.api import save_stats, score

    if args.save_stats:
        if args.reference is not None:
            raise UsageError("--save-stats takes one set of images, not FAKE and REFERENCE",
                             "`mgbench score IMAGES --save-stats stats.npz`, then `mgbench score FAKE stats.npz`")
        path = save_stats(args.fake, args.save_stats, dataset=args.dataset, data_root=args.data_root,
                          feature_extractor=args.feature_extractor, weights=args.weights, device=args.device)
        print(f"mgbench score: wrote the Fréchet statistics of {args.fake} to {path}")
        return 0
    if args.json:
        _check_writable(Path(args.json))  # before the scores are computed, not after
    scores = score(args.fake, args.reference, dataset=args.dataset, data_root=args.data_root,
                   metrics=args.metrics, feature_extractor=args.feature_extractor, weights=args.weights,
                   device=args.device, seed=args.seed)
    print(format_scores(scores))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(_json_safe(scores), indent=2, sort_keys=True))
        except OSError as err:  # the scores are on the console above: nothing is lost
            raise UsageError(f"cannot write {args.json}: {err.strerror} (the scores are printed above)",
                             "give a writable --json path") from None
    return 0


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--json {path} is a directory", "give a file path, e.g. scores.json")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"--json {path}: the folder {folder} does not exist", "create it or give another path")
    try:
        probe = folder / f".{path.name}.probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"--json {path} cannot be written: {err.strerror}", "give a writable path") from None


def _json_safe(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in scores.items()}


def format_scores(scores: dict[str, Any]) -> str:
    width = max(map(len, scores))
    lines = []
    for k, v in scores.items():
        text = f"{v:.6g}" if isinstance(v, float) else str(v)
        lines.append(f"{k:<{width}}  {text}")
    return "\n".join(lines)


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def add_command(subparsers: Any) -> None:
    p = subparsers.add_parser("score", help="score images from anywhere against a reference",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fake", help="folder of images or .npz (uint8 N×H×W×3)")
    p.add_argument("reference", nargs="?", help="folder of images or .npz; or use --dataset")
    p.add_argument("--dataset", help="score against this registered dataset's held-out split (shapes, mnist, ...)")
    p.add_argument("--data-root", help="folder of the dataset's files (real datasets)")
    p.add_argument("--metrics", type=_names, help="comma-separated metrics (default: all)")
    p.add_argument("--feature-extractor", default="auto", help="auto (default), inception or domain")
    p.add_argument("--weights", help="Inception weights file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of the metrics' random subsets and patches")
    p.add_argument("--json", help="also write the scores to this file as a flat JSON object")
    p.add_argument("--save-stats", metavar="FILE.npz",
                   help="write the Fréchet statistics (mu, sigma) of FAKE's images instead of scoring; a REFERENCE "
                        "that is such a file (or pytorch-fid's) gives FID without the reference images")
    p.set_defaults(func=score_command)
