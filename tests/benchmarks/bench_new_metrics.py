"""Cost of the spectrum, FWD, Vendi and memorization metrics: wall time and peak memory per case.

    PYTHONPATH=. python tests/benchmarks/bench_new_metrics.py                 # the whole table
    PYTHONPATH=. python tests/benchmarks/bench_new_metrics.py --sizes 2000 --dims 128 --only fwd,vendi

Each case runs in a fresh subprocess, so its memory is its own. The table gives the wall time of
the metric call and ``extra MB``: the peak RSS during the call (VmHWM, reset before it) minus
the RSS once its inputs are built and a warm-up call on small inputs is done. The inputs
themselves are not counted: N uint8 images of 32×32×3 are 3 MB per thousand, features N×d
float64 8·d bytes per row. Sizes: N samples and N reference images (2,000 and 10,000), a
training set of 20,000 where a metric needs one, features of d = 128 (the domain extractor's
width) and d = 2,048 (Inception's pool3). Values are random (uint8 images, clustered Gaussian
features): the cost depends on sizes, not on content, except k-means (C_T), which converges
faster on clustered features than on structureless ones. Torch and NumPy use ``--threads``
threads (default 1, steadier on a shared machine). Cached parts are separate rows: what depends
on the training set alone (``train_radii`` for authenticity, ``ct_fit`` for C_T; the held-out
images' own nearest neighbours, the same cost as the samples' row) is computed once per dataset
and extractor; ``ct`` is the whole of C_T, ``ct_per_model`` what remains per model.
No assertion on time: a timing printed here is for a person to read against its CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

TRAIN = 20_000
RES = 32


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0), so the peak is the call's own."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_case(metric: str, n: int, d: int, threads: int) -> dict:
    """Warm up on tiny inputs (libraries' code and buffers loaded), build the inputs, then time one
    call of ``metric``; returns seconds and memory."""
    build(metric, 200, d, 600, threads)()
    call = build(metric, n, d, TRAIN, threads)
    _reset_peak()
    rss = _status_mb("VmRSS")
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "extra_mb": _status_mb("VmHWM") - rss}


def build(metric: str, n: int, d: int, train: int, threads: int) -> Callable[[], object]:
    """The call of ``metric`` on random inputs: N samples (and N reference), ``train`` training rows."""
    import torch

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)

    def images(count: int) -> torch.Tensor:
        return torch.randint(0, 256, (count, 3, RES, RES), dtype=torch.uint8, generator=g)

    centres = torch.randn(10, max(d, 1), generator=g, dtype=torch.float64) * 3  # one distribution for every set

    def feats(count: int) -> torch.Tensor:
        noise = torch.randn(count, max(d, 1), generator=g, dtype=torch.float64)
        return centres[torch.randint(0, 10, (count,), generator=g)] + noise

    from mgbench.metrics import fwd, memorization, spectrum, vendi
    from mgbench.metrics.knn import knn_radii

    def spectra(a: torch.Tensor, b: torch.Tensor) -> dict:
        return spectrum.spectrum_distances(spectrum.radial_profile(a), spectrum.radial_profile(b))

    if metric == "spectrum":
        call = partial(spectra, images(n), images(n))
    elif metric == "fwd":
        call = partial(fwd.frechet_wavelet_distance, images(n), images(n))
    elif metric == "vendi":
        call = partial(vendi.vendi_score, feats(n))
    elif metric == "nn_pixel":
        call = partial(memorization.nearest_train_pixels, images(n), images(train))
    elif metric == "nn_feature":
        call = partial(memorization.nearest_train_features, feats(n), feats(train))
    elif metric == "train_radii":
        call = partial(knn_radii, feats(train), 1)
    elif metric == "authpct":  # with the training radii given (their cost is the train_radii row)
        radii = torch.ones(train, dtype=torch.float64)
        call = partial(memorization.authenticity, train=feats(train), samples=feats(n), train_radii=radii)
    elif metric == "ct":  # the whole of C_T: fit on the training set, then the samples
        call = partial(memorization.ct_score, train=feats(train), test=feats(n), samples=feats(n),
                       generator=torch.Generator().manual_seed(0))
    elif metric == "ct_per_model":  # with the training set's cells fitted (cached: the ct_fit row)
        fit = memorization.fit_ct_cells(feats(train), generator=torch.Generator().manual_seed(0), restarts=1)
        call = partial(memorization.ct_from_cells, fit, test=feats(n), samples=feats(n))
    elif metric == "ct_fit":
        call = partial(memorization.fit_ct_cells, feats(train), generator=torch.Generator().manual_seed(0))
    else:
        raise SystemExit(f"unknown metric {metric}")
    return call


# (metric, depends on N, depends on d)
CASES = [("spectrum", True, False), ("fwd", True, False), ("vendi", True, True), ("nn_pixel", True, False),
         ("nn_feature", True, True), ("authpct", True, True), ("ct", True, True), ("ct_per_model", True, True),
         ("train_radii", False, True), ("ct_fit", False, True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,10000", help="N samples (= N reference images)")
    parser.add_argument("--dims", default="128,2048", help="feature widths d")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated metrics (default: all)")
    parser.add_argument("--case", nargs=3, help=argparse.SUPPRESS)  # internal: metric n d, in the subprocess
    args = parser.parse_args()
    if args.case:
        metric, n, d = args.case
        print("RESULT" + json.dumps(run_case(metric, int(n), int(d), args.threads)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(s) for s in args.dims.split(",")]
    only = set(filter(None, args.only.split(",")))
    flags = sorted(set(open("/proc/cpuinfo").read().split()) & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    print(f"CPU flags: {' '.join(flags)}; threads {args.threads}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; training set {TRAIN}; images {RES}x{RES}x3")
    print(f"{'metric':<12} {'N':>6} {'d':>5} {'seconds':>9} {'extra MB':>9}")
    for metric, by_n, by_d in CASES:
        if only and metric not in only:
            continue
        for n in sizes if by_n else [TRAIN]:
            for d in dims if by_d else [0]:
                proc = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--case", metric,
                                       str(n), str(d)], capture_output=True, text=True, check=False)
                if proc.returncode != 0 or "RESULT" not in proc.stdout:
                    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"{metric:<12} {n:>6} {d or '-':>5}  failed: {last[-300:]}")
                    continue
                r = json.loads(proc.stdout.split("RESULT", 1)[1])
                print(f"{metric:<12} {n:>6} {d or '-':>5} {r['seconds']:>9.2f} {r['extra_mb']:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
