"""Peak memory and time of precision/recall/density/coverage (``mgbench.metrics.knn.prdc``) at scale.

    python tests/benchmarks/bench_knn_scale.py                      # N = 10k and 50k, 2048-d, float32 and float64
    python tests/benchmarks/bench_knn_scale.py --sizes 10000 --dtypes float32

Each case runs in a fresh subprocess on random N×d real and fake features (the cost of prdc
depends on N and d, not on the values) and reports its peak RSS (VmHWM: the process's own
high-water mark) before and after prdc, and prdc's seconds. float64 is what ``Evaluator.score``
hands prdc (``extract_features`` returns float64); float32 is what a caller with float32 features
gets.

The table sets prdc's own peak (peak minus the RSS with its inputs) beside a model of what it
holds at once, in element counts times the element size:

* ``cols copy`` = N·(d+2): ``torch.cdist`` (its matrix-product path, ``_euclidean_dist``) builds a
  padded copy ``[x₂, 1, ‖x₂‖²]`` of the WHOLE column set on every call, that is for every row block;
* ``block`` = B·N with B = 2²⁴ // N rows (knn.py's ``_BLOCK_ELEMENTS``): the distance block, plus
  its padded-rows copy and the boolean masks of the fake×real pass (1 byte per entry each).

So memory is O(N·d) (no N×N matrix is ever held), with a transient extra copy of one feature set
per block; time is O(N²·d) over three passes (real×real, fake×fake, fake×real), and each block
also pays the N·d copy (memory traffic of the order of the matrix product's at small d).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

BLOCK_ELEMENTS = 2**24  # mirrors mgbench.metrics.knn._BLOCK_ELEMENTS (checked in child())


def peak_rss_mib() -> float:
    from mgbench.job import process_peak_rss_mb

    return process_peak_rss_mb()


def limit_blocks(knn, max_blocks: int) -> list[dict[str, float]]:
    """Make each of prdc's passes compute only its first ``max_blocks`` distance blocks; the rest
    are blocks of +inf of the same shape (allocated like real ones, so the memory pattern is the
    same, but no matrix product). Returns, per pass, the wall and CPU seconds of its real block
    iterations and its number of blocks, from which the whole pass's time is extrapolated."""
    real_blocks = knn._distance_blocks
    passes: list[dict[str, float]] = []

    def blocks(rows, cols, block_size):
        size = block_size or max(1, BLOCK_ELEMENTS // max(1, len(cols)))
        record = {"blocks": -(-len(rows) // size), "wall": 0.0, "cpu": 0.0, "timed": 0}
        passes.append(record)
        source = real_blocks(rows, cols, block_size)
        for i, start in enumerate(range(0, len(rows), size)):
            if i < max_blocks:
                w, c = time.perf_counter(), time.process_time()
                yield next(source)  # the consumer's work on this block runs before we resume
                record["wall"] += time.perf_counter() - w
                record["cpu"] += time.process_time() - c
                record["timed"] += 1
            else:
                yield start, torch.full((min(size, len(rows) - start), len(cols)), float("inf"), dtype=rows.dtype)

    knn._distance_blocks = blocks
    return passes


def child(n: int, d: int, dtype: str, threads: int, max_blocks: int) -> None:
    """One prdc on N×d random features; prints a JSON line."""
    from mgbench.metrics import knn

    assert knn._BLOCK_ELEMENTS == BLOCK_ELEMENTS, "update BLOCK_ELEMENTS to knn.py's"
    torch.set_num_threads(threads)
    passes = limit_blocks(knn, max_blocks) if max_blocks else []
    g = torch.Generator().manual_seed(0)
    real = torch.randn(n, d, generator=g, dtype=getattr(torch, dtype))
    fake = torch.randn(n, d, generator=g, dtype=getattr(torch, dtype)).mul_(1.1)  # in place: no temporary
    before = peak_rss_mib()
    start = time.perf_counter()
    cpu = time.process_time()
    scores = knn.prdc(real=real, fake=fake)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if passes:  # extrapolated from the real blocks of each pass (the scores then mean nothing)
        wall = sum(p["wall"] / p["timed"] * p["blocks"] for p in passes)
        cpu = sum(p["cpu"] / p["timed"] * p["blocks"] for p in passes)
        scores = {}
    print(json.dumps({"n": n, "d": d, "dtype": dtype, "rss_inputs_mib": before, "rss_peak_mib": peak_rss_mib(),
                      "seconds": wall, "cpu_seconds": cpu, "scores": scores, "extrapolated": bool(passes)}))


def model_mib(n: int, d: int, element: int) -> dict[str, float]:
    """What prdc holds at once beyond its inputs (module docstring), MiB."""
    rows = max(1, BLOCK_ELEMENTS // n)
    cols_copy = n * (d + 2) * element
    block = rows * n * element + rows * (d + 2) * element + 3 * rows * n  # distances, padded rows, masks
    return {"cols_copy": cols_copy / 2**20, "block": block / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[2048])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in the child (default 1)")
    parser.add_argument("--max-blocks", type=int, default=0,
                        help="compute only the first K distance blocks of each pass and extrapolate the time "
                             "(peak memory is reached in the first block); 0: all (default)")
    parser.add_argument("--child", nargs=3, metavar=("N", "D", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(int(args.child[0]), int(args.child[1]), args.child[2], args.threads, args.max_blocks)
        return
    base = subprocess.run([sys.executable, "-c", "import torch, mgbench.metrics.knn; from mgbench.job import "
                           "process_peak_rss_mb as p; print(p())"], capture_output=True, text=True, check=True)
    print(f"interpreter + torch + mgbench alone: {float(base.stdout):.0f} MiB peak RSS; {args.threads} thread(s)")
    print("| N | d | dtype | inputs 2·N·d MiB | RSS with inputs MiB | peak RSS MiB | prdc's own peak MiB "
          "| model: cols copy + block MiB | own / (N·d·size) | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for d in args.dims:
            for dtype in args.dtypes:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(args.threads),
                       "--max-blocks", str(args.max_blocks), "--child", str(n), str(d), dtype]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                out = json.loads(proc.stdout.splitlines()[-1])
                element = torch.tensor([], dtype=getattr(torch, dtype)).element_size()
                inputs = 2 * n * d * element / 2**20
                own = out["rss_peak_mib"] - out["rss_inputs_mib"]
                model = model_mib(n, d, element)
                print(f"| {n} | {d} | {dtype} | {inputs:.0f} | {out['rss_inputs_mib']:.0f} | {out['rss_peak_mib']:.0f} "
                      f"| {own:.0f} | {model['cols_copy']:.0f} + {model['block']:.0f} | {own / (inputs / 2):.2f} "
                      f"| {out['seconds']:.1f}{' (extrapolated)' if out['extrapolated'] else ''} "
                      f"| {out['cpu_seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
