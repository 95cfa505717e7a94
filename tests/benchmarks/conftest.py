"""pytest-benchmark suite: models, metrics, the data generator and the training loop.

Run (benchmarks are skipped by the default ``--benchmark-skip`` in pyproject.toml):

    pytest tests/benchmarks --benchmark-only                     # full rounds
    pytest tests/benchmarks --benchmark-only --benchmark-min-rounds=1 \\
        --benchmark-max-time=0.5 --benchmark-warmup=off           # short rounds, as in CI
    tox -e bench -- --benchmark-compare                          # against the last saved run

Conventions (as pydantic-core's benchmarks): competing implementations of one thing share a
``group``; everything that is not the thing measured is built in fixtures, outside the timing.
Torch and NumPy's BLAS run on ``MGBENCH_BENCH_THREADS`` threads (default 1): on a shared 2-core
machine one thread gives much steadier timings than two. Contenders that take tens of seconds
and add nothing CI must watch run only with ``MGBENCH_BENCH_HEAVY=1`` (``heavy_only`` in
bench_setup.py). There are no timing
assertions: noise never fails a run; compare saved runs instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_setup, yardsticks

BENCH_THREADS = int(os.environ.get("MGBENCH_BENCH_THREADS", "1"))
MAX_HEAVY_ROUNDS = 3  # calls that take seconds: at most this many rounds, whatever --benchmark-min-rounds says


def _numpy_openblas() -> Any:
    """NumPy's bundled OpenBLAS (ctypes handle), or None. torch-fidelity's KID and FID run on
    NumPy, whose BLAS threads ``torch.set_num_threads`` does not reach (threadpoolctl does the
    same through ctypes; it is not a dependency here)."""
    import ctypes

    import numpy

    libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(libs.glob("*openblas*.so*")):
        lib = ctypes.CDLL(str(path))
        if hasattr(lib, "scipy_openblas_set_num_threads64_"):
            return lib
    return None


@pytest.fixture(scope="module", autouse=True)
def _bench_threads() -> Iterator[None]:
    """Pin torch's (and NumPy's OpenBLAS) threads for this module's benchmarks; restore them afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(BENCH_THREADS)
    blas = _numpy_openblas()
    blas_before = blas.scipy_openblas_get_num_threads64_() if blas else None
    if blas:
        blas.scipy_openblas_set_num_threads64_(BENCH_THREADS)
    yield
    torch.set_num_threads(before)
    if blas:
        blas.scipy_openblas_set_num_threads64_(blas_before)


@pytest.fixture
def slow(benchmark: Any, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Time a call that takes 0.1 s or more: ``slow(fn, *args)``.

    No calibration loop (pytest-benchmark's first, untimed calls would double the cost of a
    short run); rounds = ``--benchmark-min-rounds`` capped at 3, one call each; warm-up belongs
    to the fixture that builds the thing.
    """
    rounds = max(1, min(MAX_HEAVY_ROUNDS, request.config.getoption("benchmark_min_rounds")))

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=0)

    return run
