"""mgbench's scoring against the tools people use, on the same images, one after the other.

    python tests/benchmarks/bench_peers.py peers --n 2000 10000      # the three tools, FID and wall time
    python tests/benchmarks/bench_peers.py pass --n 64 --profile     # the Inception pass step by step

``peers`` writes N shapes images (32 px PNG) as the "fake" folder and N held-out ones as the
"real" folder, then runs, each as a fresh process as a user would, with its defaults:

* mgbench's Python path for FID alone (``read_images``, ``InceptionExtractor``, ``extract_features``,
  ``fid_from_features``): the same work as the two peers do;
* ``python -m mgbench score FAKE REAL --feature-extractor inception`` (the whole metric suite:
  FID, FID∞, IS, KID, precision/recall, density/coverage, LPIPS diversity, MS-SWD), with an
  empty cache so that both folders go through the feature pass;
* torch-fidelity's ``fidelity --fid --cpu --no-cache`` (FID alone);
* pytorch-fid's ``python -m pytorch_fid FAKE REAL --device cpu`` (FID alone; install it with
  ``pip install --no-deps pytorch-fid==0.3.0``, or ``--pytorch-fid-path`` to a ``--target`` folder).

No tool downloads anything: the Inception weights are random tensors in the real layout
(tests/fake_weights.py), written for torch-fidelity and mgbench as
``weights-inception-2015-12-05-6726825d.pth`` and for pytorch-fid, in a private ``TORCH_HOME``, as
``pt_inception-2015-12-05-6726825d.pth``: the two files hold the same 566 tensors under the same
names (torch-fidelity's network is pytorch-fid's with other module classes), so all three run the
same weights. The timings are those of the real network; the FIDs mean nothing beyond agreement.

mgbench and torch-fidelity must agree on FID (same resize, same network: 1e-4 relative).
pytorch-fid does not, by design: it resizes with PyTorch's ``F.interpolate(bilinear,
align_corners=False)`` (half-pixel centres) where torch-fidelity and mgbench reproduce TensorFlow
1's ``resize_bilinear`` (pixel i samples the input at i·in/out), and it scales pixels to
(x/255)·2-1 instead of (x-128)/128. The table says by how much.

``pass`` times torch-fidelity's forward, pytorch-fid's (if importable) and mgbench's, and the
steps between (the resize as matrix products, channels-last, BatchNorm folding), interleaved
over rounds on the same batch, wall and CPU seconds per image, and with ``--profile`` the top
operators of torch-fidelity's forward and of ours (torch.profiler).

Heavy: not a pytest benchmark (CI's short rounds never run it). State the CPU flags and the
load with any figure: ``grep -o -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the tests' fake_weights

PYTORCH_FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"


# --- the images and the weights ----------------------------------------------------------------


def write_pngs(images: torch.Tensor, folder: Path) -> Path:
    """uint8 N×C×H×W → folder/000000.png ... (lossless: every tool reads the same pixels)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    array = images.permute(0, 2, 3, 1).numpy()
    for i, image in enumerate(array):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB").save(folder / f"{i:06d}.png")
    return folder


def prepare(workdir: Path, n: int, resolution: int = 32) -> dict[str, Path]:
    """The two PNG folders and the weight files (kept across runs in ``workdir``)."""
    from fake_weights import random_inception_state

    from mgbench.data import load_dataset
    from mgbench.features.inception import WEIGHTS_FILE

    paths = {"fake": workdir / f"fake-{n}", "real": workdir / f"real-{n}", "weights": workdir / WEIGHTS_FILE,
             "torch_home": workdir / "torch-home"}
    if not paths["weights"].exists():
        state = random_inception_state()
        torch.save(state, paths["weights"])
        pytorch_fid = paths["torch_home"] / "hub" / "checkpoints" / PYTORCH_FID_WEIGHTS
        pytorch_fid.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["weights"], pytorch_fid)  # the same tensors and names (module docstring)
    for split, key, size in (("train", "fake", {"train_size": n}), ("reference", "real", {"reference_size": n})):
        if not (paths[key] / f"{n - 1:06d}.png").exists():
            write_pngs(load_dataset("shapes", split, resolution=resolution, seed=0, **size).images, paths[key])
    return paths


# --- the three tools ------------------------------------------------------------------------------


def commands(paths: dict[str, Path], workdir: Path, python: str) -> dict[str, list[str]]:
    fake, real = str(paths["fake"]), str(paths["real"])
    fidelity = str(Path(python).with_name("fidelity"))
    if not Path(fidelity).exists():
        fidelity = shutil.which("fidelity") or "fidelity"
    fid_only = ("import json, sys; from mgbench.score import read_images; "
                "from mgbench.features.inception import InceptionExtractor; "
                "from mgbench.features.extract import extract_features; "
                "from mgbench.metrics.frechet import fid_from_features; "
                "ex = InceptionExtractor(sys.argv[3], 'cpu'); "
                "f = [extract_features(ex, read_images(p))['pool'] for p in sys.argv[1:3]]; "
                "print('FID:', fid_from_features(*f))")
    return {
        "mgbench FID (Python path)": [python, "-c", fid_only, fake, real, str(paths["weights"])],
        "mgbench score (all metrics)": [python, "-m", "mgbench", "score", fake, real, "--feature-extractor",
                                        "inception", "--weights", str(paths["weights"]), "--device", "cpu",
                                        "--json", str(workdir / "mgbench.json")],
        "torch-fidelity fidelity --fid": [fidelity, "--fid", "--cpu", "--no-cache", "--input1", fake, "--input2", real,
                                          "--feature-extractor-weights-path", str(paths["weights"])],
        "pytorch-fid": [python, "-m", "pytorch_fid", fake, real, "--device", "cpu"],
    }


def parse_fid(name: str, stdout: str, workdir: Path) -> float:
    if name.startswith("mgbench score"):
        return float(json.loads((workdir / "mgbench.json").read_text())["fid"])
    pattern = r"frechet_inception_distance:\s*([-0-9.eE+]+)" if "fidelity" in name else r"FID:\s*([-0-9.eE+]+)"
    match = re.search(pattern, stdout)
    if match is None:
        raise RuntimeError(f"{name}: no FID in its output:\n{stdout[-2000:]}")
    return float(match.group(1))


def run_tool(name: str, cmd: list[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return {"tool": name, "wall_s": wall, "fid": float("nan"), "error": out.strip().splitlines()[-1:]}
    return {"tool": name, "wall_s": wall, "fid": parse_fid(name, out, workdir)}


def peers_table(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for n in args.n:
            paths = prepare(workdir, n)
            env = {**os.environ, "TORCH_HOME": str(paths["torch_home"]),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), args.pytorch_fid_path,
                                                                os.environ.get("PYTHONPATH", "")])),
                   "PYTHONUNBUFFERED": "1"}
            if args.threads:
                env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
            for name, cmd in commands(paths, workdir, args.python).items():
                if args.only and not any(o in name for o in args.only):
                    continue
                cache = workdir / "mgbench-cache"
                shutil.rmtree(cache, ignore_errors=True)  # mgbench passes the reference folder too
                row = run_tool(name, cmd, {**env, "MGBENCH_CACHE": str(cache)}, workdir)
                rows.append({"n": n, **row})
                print(f"N = {n}: {name}: {row['wall_s']:.1f} s, FID {row['fid']:.6g}"
                      + (f"  ERROR {row['error']}" if "error" in row else ""), flush=True)
    print_peers(rows, args)
    return rows


def print_peers(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lines = ["| N (per folder) | tool | wall s | s per image (2N) | FID | FID vs torch-fidelity (rel.) "
             "| its time / mgbench FID's |", "|---|---|---|---|---|---|---|"]
    for n in args.n:
        group = {r["tool"]: r for r in rows if r["n"] == n}
        ours = group.get("mgbench FID (Python path)")
        theirs = next((r for name, r in group.items() if "fidelity" in name), None)
        for name, r in group.items():
            rel = abs(r["fid"] - theirs["fid"]) / abs(theirs["fid"]) if theirs and theirs["fid"] else float("nan")
            ratio = f"{r['wall_s'] / ours['wall_s']:.2f}" if ours else ""
            lines.append(f"| {n} | {name} | {r['wall_s']:.1f} | {r['wall_s'] / (2 * n):.4f} | {r['fid']:.6g} "
                         f"| {rel:.2e} | {ratio} |")
        peers = [r["wall_s"] for name, r in group.items() if not name.startswith("mgbench")]
        suite = group.get("mgbench score (all metrics)")
        if peers:
            for label, mine in (("mgbench FID", ours), ("mgbench score, all metrics", suite)):
                if mine:
                    lines.append(f"| {n} | **faster peer / {label}** | | | | | "
                                 f"**{min(peers) / mine['wall_s']:.2f}×** (target ≥ 1.5×) |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


# --- the pass, step by step -------------------------------------------------------------------------


def pass_contenders(weights_state: dict[str, torch.Tensor]) -> dict[str, Callable[[torch.Tensor], Any]]:
    """torch-fidelity's forward, pytorch-fid's, and mgbench's with its steps added one at a time."""
    from torch import nn

    from mgbench.features import inception

    reference = inception.load_reference_module(weights_state)

    class Steps(nn.Module):
        """torch-fidelity's network behind mgbench's resize, with channels-last and folding optional."""

        def __init__(self, channels_last: bool) -> None:
            super().__init__()
            net = copy.deepcopy(reference)
            self.fast = inception.FastInceptionV3(reference, channels_last=channels_last)
            self.fast.trunk = nn.Sequential(*[getattr(net, name) for name in (
                "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")])  # BatchNorm not folded
            if channels_last:
                self.fast.to(memory_format=torch.channels_last)

        def forward(self, x: torch.Tensor) -> Any:
            return self.fast(x)

    out: dict[str, Callable[[torch.Tensor], Any]] = {"torch-fidelity forward": reference}
    try:
        out["pytorch-fid forward"] = pytorch_fid_forward(weights_state)
    except ImportError:
        pass
    out["+ resize as matrices"] = Steps(channels_last=False).eval()
    out["+ channels-last"] = Steps(channels_last=True).eval()
    out["+ BatchNorm folded = mgbench"] = inception.FastInceptionV3(reference)
    return out


def pytorch_fid_forward(state: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], Any]:
    """pytorch-fid's InceptionV3 (2048-d block) with ``state``, fed as its CLI feeds it: [0, 1] floats."""
    from unittest import mock

    import pytorch_fid.inception as pfi

    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state):
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    return lambda x: model(x.float() / 255)


def pass_table(args: argparse.Namespace) -> None:
    from fake_weights import random_inception_state

    from mgbench.data import load_dataset

    torch.set_num_threads(args.threads or torch.get_num_threads())
    images = load_dataset("shapes", "train", resolution=args.px, train_size=args.n, seed=0).images
    contenders = pass_contenders(random_inception_state())
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    outputs: dict[str, Any] = {}
    with torch.inference_mode():
        for fn in contenders.values():
            fn(images[:2])  # warm-up: kernel choice, allocation
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                w, c = time.perf_counter(), time.process_time()
                for start in range(0, len(images), args.batch):
                    outputs[name] = fn(images[start : start + args.batch])
                wall[name].append((time.perf_counter() - w) / len(images))
                cpu[name].append((time.process_time() - c) / len(images))
    base = statistics.median(wall["torch-fidelity forward"])
    base_cpu = statistics.median(cpu["torch-fidelity forward"])
    ref_pool = outputs["torch-fidelity forward"][0]
    print(f"{args.n} images, {args.px} px, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds interleaved (medians)")
    print("| pass | wall s/img | CPU s/img | speed-up (wall) | speed-up (CPU) | pool vs torch-fidelity (max-scaled) |")
    print("|---|---|---|---|---|---|")
    for name in contenders:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        pool = outputs[name][0]
        pool = pool.flatten(1) if pool.dim() == 4 else pool  # pytorch-fid returns B×2048×1×1
        err = float((pool - ref_pool).abs().max() / ref_pool.abs().max())
        print(f"| {name} | {w:.4f} | {c:.4f} | {base / w:.2f} | {base_cpu / c:.2f} | {err:.1e} |", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for name in ("torch-fidelity forward", "+ BatchNorm folded = mgbench"):
            with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
                contenders[name](images[: args.batch])
            print(f"\n{name}: top operators, batch {args.batch}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("peers", help="mgbench score, torch-fidelity and pytorch-fid on the same PNG folders")
    p.add_argument("--n", type=int, nargs="+", default=[2000, 10000], help="images per folder (default 2000 10000)")
    p.add_argument("--workdir", default="", help="keep the images and weights here between runs")
    p.add_argument("--threads", type=int, default=0, help="OMP/MKL threads for every tool (default: their own)")
    p.add_argument("--python", default=sys.executable, help="the interpreter with mgbench and torch-fidelity")
    p.add_argument("--pytorch-fid-path", default="", help="folder holding pytorch_fid (a pip --target folder)")
    p.add_argument("--only", nargs="*", default=[], help="run only the tools whose name holds one of these")
    p.add_argument("--out", default="", help="also write the table (Markdown) to this file")
    p = sub.add_parser("pass", help="the Inception pass step by step, and profiles")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--px", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    p.add_argument("--profile", action="store_true", help="print the top operators of the first and last pass")
    p.add_argument("--profile-rows", type=int, default=12)
    args = parser.parse_args(argv)
    if args.command == "peers":
        peers_table(args)
    else:
        pass_table(args)


if __name__ == "__main__":
    main()
