"""The training harness against the least a loop can do: ``mgbench.train.train`` versus a bare
loop of ``train_step`` calls, on the same model and the same batches (target: bare / harness
≥ 0.97, i.e. the harness costs at most 3%)."""

from __future__ import annotations

import pytest
from bench_setup import NullModel, bare_loop, harness_loop, harness_model

STEPS = 20


@pytest.fixture(scope="module")
def setup():
    model, data, sampler = harness_model()
    bare_loop(model, data, sampler, 2)  # warm-up
    return model, data, sampler


@pytest.mark.parametrize("impl", ["bare-loop", "mgbench.train"])
def test_training_loop(benchmark, slow, setup, tmp_path, impl):
    benchmark.group = f"training loop dcgan 32px ngf 32, {STEPS} steps"
    model, data, sampler = setup
    if impl == "bare-loop":
        slow(bare_loop, model, data, sampler, STEPS)
    else:
        slow(harness_loop, model, data, sampler, STEPS, tmp_path)


NULL_STEPS = 1000


@pytest.mark.parametrize("impl", ["bare-loop", "mgbench.train"])
def test_training_loop_overhead(benchmark, setup, tmp_path, impl):
    """The same loops around a model whose step does nothing: what the loop itself costs per step."""
    benchmark.group = f"training loop, no-op model, {NULL_STEPS} steps"
    _, data, sampler = setup
    null = NullModel(data.spec())
    if impl == "bare-loop":
        benchmark(bare_loop, null, data, sampler, NULL_STEPS)
    else:
        benchmark(harness_loop, null, data, sampler, NULL_STEPS, tmp_path)
