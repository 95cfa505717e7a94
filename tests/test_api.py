"""The Python API: mgbench.score from a training loop, saved Fréchet statistics, mgbench.run."""

import numpy as np
import pytest
import torch
from fake_weights import write_inception_weights

import mgbench
from mgbench import api
from mgbench.cli import main
from mgbench.data import load_dataset
from mgbench.errors import UsageError
from mgbench.metrics.frechet import feature_statistics, frechet_distance


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return str(write_inception_weights(tmp_path_factory.mktemp("w") / "inception.pth"))


@pytest.fixture(scope="module")
def images():
    real = load_dataset("shapes", "reference", resolution=16, reference_size=24).images
    noise = torch.randint(0, 256, (16, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return real, noise


def test_the_package_exports_the_api():
    assert mgbench.score is api.score and mgbench.save_stats is api.save_stats and mgbench.run is api.run


def test_a_sampler_in_a_training_loop_scores_as_its_images_do_and_reuses_the_evaluator(images, weights):
    real, _ = images

    def sampler(n, generator):  # a "generator network": floats in [-1, 1]
        return torch.rand(n, 3, 16, 16, generator=generator) * 2 - 1

    first = mgbench.score(sampler, real, num_samples=12, metrics=["fid"], feature_extractor="inception",
                          weights=weights)
    evaluator = api._last_evaluator[1]
    again = mgbench.score(sampler, real, num_samples=12, metrics=["fid"], feature_extractor="inception",
                          weights=weights)
    assert api._last_evaluator[1] is evaluator  # the same settings: the features of real are not recomputed
    drawn = api.draw(sampler, 12)
    assert first["fid"] == again["fid"] == mgbench.score(drawn, real, metrics=["fid"], feature_extractor="inception",
                                                         weights=weights)["fid"]
    assert first["num_samples"] == 12
    with pytest.raises(UsageError, match="num_samples"):
        mgbench.score(sampler, real, metrics=["fid"])


def test_saved_statistics_give_the_fid_of_the_reference_images(images, weights, tmp_path, caplog):
    real, noise = images
    path = mgbench.save_stats(real, tmp_path / "ref.npz", feature_extractor="inception", weights=weights)
    direct = mgbench.score(noise, real, metrics=["fid"], feature_extractor="inception", weights=weights)["fid"]
    from_stats = mgbench.score(noise, path, feature_extractor="inception", weights=weights)
    assert from_stats["fid"] == pytest.approx(direct, rel=1e-9, abs=1e-9) and direct > 0
    with np.load(path) as saved:  # pytorch-fid's keys, and what was measured
        assert saved["mu"].shape == (2048,) and saved["sigma"].shape == (2048, 2048) and int(saved["num_images"]) == 24
        mu, sigma = saved["mu"], saved["sigma"]
    bare = tmp_path / "pytorch_fid_style.npz"
    np.savez(bare, mu=mu, sigma=sigma)  # a file from pytorch-fid names no extractor: a warning, then FID
    assert mgbench.score(noise, bare, feature_extractor="inception", weights=weights)["fid"] == from_stats["fid"]
    assert "does not name its feature extractor" in caplog.text
    with pytest.raises(UsageError, match="only fid"):
        mgbench.score(noise, path, metrics=["kid"], feature_extractor="inception", weights=weights)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 24 images, 2048 dimensions: singular
def test_fid_from_statistics_is_the_frechet_formula(images, weights, tmp_path):
    """The stored mu/sigma are the features' mean and covariance (N-1), and the FID is Fréchet's
    formula on them, computed here with scipy's sqrtm."""
    import scipy.linalg

    real, noise = images
    path = mgbench.save_stats(real, tmp_path / "ref.npz", feature_extractor="inception", weights=weights)
    config = api._score_config(16, 16, None, None, ["fid"], "inception", weights, 0)
    feats, _ = api._pool_features(noise, config, "cpu", None)
    f = feats.numpy()
    mu2, sigma2 = f.mean(0), np.cov(f, rowvar=False)
    with np.load(path) as saved:
        mu1, sigma1 = saved["mu"], saved["sigma"]
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * covmean))
    got = mgbench.score(noise, path, feature_extractor="inception", weights=weights)["fid"]
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert got == pytest.approx(frechet_distance(*feature_statistics(feats), mu1, sigma1), rel=1e-9)


def test_score_command_saves_statistics_and_scores_against_them(images, weights, tmp_path, capsys):
    real, noise = images
    for name, x in (("real", real), ("fake", noise)):
        np.savez(tmp_path / f"{name}.npz", x.permute(0, 2, 3, 1).numpy())
    stats = tmp_path / "stats.npz"
    flags = ["--feature-extractor", "inception", "--weights", weights]
    assert main(["score", str(tmp_path / "real.npz"), "--save-stats", str(stats), *flags]) == 0
    assert main(["score", str(tmp_path / "fake.npz"), str(stats), *flags]) == 0
    assert "fid" in capsys.readouterr().out
    assert main(["score", str(tmp_path / "fake.npz"), str(tmp_path / "real.npz"), "--save-stats", str(stats)]) == 2
    assert "one set of images" in capsys.readouterr().err


@pytest.mark.slow
def test_run_returns_the_results_table(tmp_path):
    results = mgbench.run(preset="smoke", models=["vae"], seeds=[0], train={"steps": 20}, out=str(tmp_path),
                          eval={"metrics": ["fid", "modes"]})
    assert set(results["model"]) == {"vae", "real-data", "noise"}
    assert (results["status"] == "ok").all() and np.isfinite(results["fid"]).all()
    assert (tmp_path / "smoke" / "results.csv").exists()
