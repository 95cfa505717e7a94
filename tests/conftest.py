from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real MNIST test split lives beside the checkout (../shared/data/mnist); never shipped.
MNIST_DIR = Path(os.environ.get("MGBENCH_MNIST", REPO.parent / "shared" / "data" / "mnist"))


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {MNIST_DIR} (set MGBENCH_MNIST)")
    return MNIST_DIR


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches (domain classifier, reference features) go to a per-session temp folder."""
    monkeypatch.setenv("MGBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "mgbench-cache"))
