"""Scoring through the CLI: the inception path offline, the missing-weights stop, `mgbench score`."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fake_weights import write_inception_weights

from mgbench.cli import main
from mgbench.data import load_dataset
from mgbench.features.inception import WEIGHTS_FILE

pytestmark = pytest.mark.slow

TINY = """
preset = "smoke"
models = ["vae"]
[data]
reference_size = 24
[eval]
num_samples = 24
lpips_pairs = 20
"""


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_inception_without_weights_stops_before_training(tmp_path, torch_home, capsys):
    code = main(["run", "--preset", "smoke", "--feature-extractor", "inception", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert WEIGHTS_FILE in err and str(torch_home / "hub" / "checkpoints") in err
    assert "--feature-extractor domain" in err and "Traceback" not in err
    assert not (tmp_path / "smoke").exists()  # nothing trained, nothing written


def test_inception_path_runs_end_to_end_on_random_weights(tmp_path, torch_home):
    write_inception_weights(torch_home / "hub" / "checkpoints" / WEIGHTS_FILE)
    (tmp_path / "tiny.toml").write_text(TINY)
    code = main(["run", "--config", str(tmp_path / "tiny.toml"), "--feature-extractor", "inception",
                 "--out", str(tmp_path)])
    assert code == 0
    rows = pd.read_csv(tmp_path / "smoke" / "results.csv")
    assert sorted(rows["model"]) == ["noise", "real-data", "vae"]
    assert (rows["feature_extractor"] == "inception-v3-compat").all()
    assert np.isfinite(rows["fid"]).all() and (rows["num_samples"] == 24).all()
    manifest = json.loads((tmp_path / "smoke" / "manifest.json").read_text())
    assert manifest["feature_extractor"]["name"] == "inception-v3-compat"


def _npz(path, images: torch.Tensor) -> str:
    np.savez(path, images.permute(0, 2, 3, 1).numpy())  # N×H×W×3, as other suites write it
    return str(path)


def test_score_command_on_npz_files(tmp_path, torch_home, capsys):
    weights = write_inception_weights(tmp_path / "inception.pth")
    real = load_dataset("shapes", "reference", resolution=16, reference_size=40).images
    fake_path, ref_path = _npz(tmp_path / "fake.npz", real), _npz(tmp_path / "ref.npz", real)
    out = tmp_path / "scores.json"
    code = main(["score", fake_path, ref_path, "--feature-extractor", "inception", "--weights", str(weights),
                 "--json", str(out)])
    assert code == 0
    scores = json.loads(out.read_text())
    assert abs(scores["fid"]) < 1e-6  # the same images: identity
    # Random Inception weights map every image to almost the same point, so the k-NN metrics
    # are degenerate here; their behaviour is tested on real geometry in test_metrics_math.
    for key in ("kid_mean", "precision", "recall", "density", "coverage", "is_mean", "fid_inf"):
        assert key in scores
    assert "fid" in capsys.readouterr().out


def test_score_command_rejects_bad_input(tmp_path, capsys):
    bad = tmp_path / "float.npz"
    np.savez(bad, np.zeros((4, 16, 16, 3), dtype=np.float32))
    assert main(["score", str(bad), "--dataset", "shapes"]) == 2
    assert "uint8" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "missing.npz"), "--dataset", "shapes"]) == 2
    assert "missing.npz" in capsys.readouterr().err
    good = tmp_path / "good.npz"
    np.savez(good, np.zeros((4, 16, 16, 3), dtype=np.uint8))
    assert main(["score", str(good)]) == 2  # no reference at all
    assert "--dataset" in capsys.readouterr().err
