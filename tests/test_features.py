"""Feature extractors: safe loading, Inception offline, the domain classifier and its cache, LPIPS.

Nothing here downloads anything: Inception runs on a random state dict of the right layout,
LPIPS on its random backbone (or a random stand-in for torchvision's AlexNet file).
"""

from __future__ import annotations

import json
import logging
import pathlib
import types

import numpy as np
import pytest
import torch
from fake_weights import random_inception_state
from scipy import linalg

from mgbench.cache import cache_key, cached
from mgbench.errors import UsageError
from mgbench.features import domain, inception, lpips_net
from mgbench.features.extract import extract_features, reference_features
from mgbench.features.weights import file_sha256, safe_load_state_dict


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread. On a loaded 2-core machine two threads spin-wait on each
    other and a 6-step training takes 4 s instead of 0.04 s (measured); results do not change."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Payload:
    """Unpickling this creates ``marker``: stands in for malicious code in a weight file."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def write_payload(path: pathlib.Path, marker: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2), "evil": Payload(marker)}, path)


# --- safe loading ---------------------------------------------------------------------------


def test_safe_load_refuses_pickled_code_without_running_it(tmp_path):
    path, marker = tmp_path / "w.pth", tmp_path / "pwned"
    write_payload(path, marker)
    with pytest.raises(UsageError, match="refusing to load .*pickled code"):
        safe_load_state_dict(path)
    assert not marker.exists()
    # The payload is live: an unsafe load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_safe_load_missing_corrupt_and_good(tmp_path):
    with pytest.raises(UsageError, match="nothere.pth"):
        safe_load_state_dict(tmp_path / "nothere.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(UsageError, match="corrupt"):
        safe_load_state_dict(bad)
    good = tmp_path / "good.pth"
    state = {"a": torch.arange(3.0), "b": torch.ones(2, 2)}
    torch.save(state, good)
    loaded = safe_load_state_dict(good)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    import hashlib

    assert file_sha256(good) == hashlib.sha256(good.read_bytes()).hexdigest()


# --- Inception ------------------------------------------------------------------------------


def test_inception_missing_weights_message_names_file_folder_and_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UsageError) as err:
        inception.find_inception_weights(None)
    text = str(err.value)
    assert inception.WEIGHTS_FILE in text
    assert str(tmp_path / "hub" / "checkpoints") in text
    assert "--feature-extractor domain" in text
    assert "https://github.com/toshas/torch-fidelity/releases/" in text
    with pytest.raises(UsageError, match="elsewhere"):
        inception.find_inception_weights(tmp_path / "elsewhere" / "w.pth")


def test_inception_end_to_end_on_random_weights(tmp_path, monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(random_inception_state(), path)

    ex = inception.InceptionExtractor(device="cpu")
    assert ex.weights_sha256 == file_sha256(path)
    images = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    feats = extract_features(ex, images, batch_size=1)
    assert feats["pool"].shape == (2, 2048) and feats["logits"].shape == (2, 1008)
    assert feats["pool"].dtype == torch.float64 and torch.isfinite(feats["logits"]).all()
    # Independent reference: torch-fidelity's own loader on the same (trusted, self-written) file.
    ref = FeatureExtractorInceptionV3("r", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path))
    with torch.inference_mode():
        pool, logits = ref(images.expand(-1, 3, -1, -1))
    assert not torch.allclose(feats["pool"][0], feats["pool"][1])  # features that tell images apart
    # float32 tolerances: the two run different batch sizes through float32 convolutions.
    torch.testing.assert_close(feats["pool"].float(), pool)
    torch.testing.assert_close(feats["logits"].float(), logits)


def test_inception_refuses_a_weight_file_with_pickled_code(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, marker = tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_FILE, tmp_path / "pwned"
    write_payload(path, marker)
    with pytest.raises(UsageError, match="pickled code"):
        inception.InceptionExtractor(device="cpu")
    # torch-fidelity's registered variant goes through the same safe loader.
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    name = inception.register_with_torch_fidelity()
    with pytest.raises(UsageError, match="pickled code"):
        FEATURE_EXTRACTORS_REGISTRY[name](name, ["2048"], feature_extractor_weights_path=str(path))
    assert not marker.exists()


# --- domain classifier ----------------------------------------------------------------------


def toy_set(n: int, seed: int, resolution: int = 8) -> types.SimpleNamespace:
    """Images whose 'coarse' label is the brightness of the left half, 'fine' of the top row."""
    g = torch.Generator().manual_seed(seed)
    coarse, fine = torch.randint(0, 2, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)
    images = torch.randint(0, 60, (n, 1, resolution, resolution), generator=g, dtype=torch.uint8)
    images[:, :, :, : resolution // 2] += (coarse * 120).to(torch.uint8)[:, None, None, None]
    images[:, :, 0, :] += (fine * 60).to(torch.uint8)[:, None, None]
    return types.SimpleNamespace(
        images=images, factors={"coarse": coarse, "fine": fine}, factor_classes={"coarse": 2, "fine": 3}
    )


TINY = domain.DomainSettings(steps=6, batch_size=16, width=4, embed_dim=16, seed=3)
SPEC = {"name": "toy", "resolution": 8, "train_size": 64, "seed": 0}


def test_domain_training_is_deterministic_and_leaves_global_rng_alone():
    data = toy_set(64, 0)
    heads = domain.heads_of(data)
    before = torch.get_rng_state()
    a = domain.train_domain_classifier(data, heads, TINY)
    b = domain.train_domain_classifier(data, heads, TINY)
    c = domain.train_domain_classifier(data, heads, domain.DomainSettings(**{**vars(TINY), "seed": 4}))
    assert torch.equal(torch.get_rng_state(), before)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.set_num_threads(2)  # the caller's thread count does not matter: training pins its own
    d = domain.train_domain_classifier(data, heads, TINY)
    assert torch.get_num_threads() == 2 and all(torch.equal(a[k], d[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_domain_features_and_joint_logits():
    data = toy_set(20, 1)
    ex = domain.domain_extractor(data, data, dataset=SPEC, settings=TINY)
    feats = extract_features(ex, data.images, batch_size=7)
    assert set(feats) == {"pool", "logits", "logits_coarse", "logits_fine"}
    assert feats["pool"].shape == (20, 16) and feats["logits"].shape == (20, 6)
    # softmax of the joint logits is the outer product of the heads' softmaxes, index c·F + f
    p = feats["logits"].softmax(1).reshape(20, 2, 3)
    outer = feats["logits_coarse"].softmax(1)[:, :, None] * feats["logits_fine"].softmax(1)[:, None, :]
    torch.testing.assert_close(p, outer)
    # batch size does not change the features (BatchNorm in eval mode)
    torch.testing.assert_close(extract_features(ex, data.images, batch_size=20)["pool"], feats["pool"])
    # grey input equals the same image tiled to RGB
    rgb = extract_features(ex, data.images.expand(-1, 3, -1, -1).contiguous(), batch_size=20)
    torch.testing.assert_close(rgb["logits"], feats["logits"])


def test_domain_needs_labels():
    unlabelled = types.SimpleNamespace(images=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), factors={}, factor_classes={})
    with pytest.raises(UsageError, match="--feature-extractor inception"):
        domain.domain_extractor(unlabelled, None, dataset=SPEC, settings=TINY)


def test_domain_cache_hit_and_invalidation(tmp_path, monkeypatch):
    data, ref = toy_set(64, 0), toy_set(32, 9)
    calls = []
    real = domain.train_domain_classifier

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(domain, "train_domain_classifier", counting)
    first = domain.domain_extractor(data, ref, dataset=SPEC, settings=TINY, cache_dir=tmp_path)
    assert len(calls) == 1 and set(first.accuracy) == {"coarse", "fine"}

    def fail(*args, **kwargs):
        raise AssertionError("retrained although the classifier is cached")

    monkeypatch.setattr(domain, "train_domain_classifier", fail)
    second = domain.domain_extractor(data, ref, dataset=SPEC, settings=TINY, cache_dir=tmp_path)
    assert second.weights_sha256 == first.weights_sha256 and second.name == first.name
    assert second.accuracy == first.accuracy

    monkeypatch.setattr(domain, "train_domain_classifier", counting)
    other = domain.domain_extractor(data, ref, dataset={**SPEC, "seed": 1}, settings=TINY, cache_dir=tmp_path)
    assert len(calls) == 2 and other.name != first.name
    changed = toy_set(64, 5)  # same spec, other images (e.g. the generator changed)
    domain.domain_extractor(changed, ref, dataset=SPEC, settings=TINY, cache_dir=tmp_path)
    assert len(calls) == 3


@pytest.mark.parametrize("fix_sidecar_hash", [False, True])
def test_tampered_domain_cache_is_refused_and_not_run(tmp_path, fix_sidecar_hash):
    data = toy_set(32, 0)
    domain.domain_extractor(data, None, dataset=SPEC, settings=TINY, cache_dir=tmp_path)
    (pt,) = tmp_path.glob("*.pt")
    marker = tmp_path / "pwned"
    write_payload(pt, marker)
    if fix_sidecar_hash:  # an attacker who also rewrites the sidecar still gets no code run
        sidecar = pt.with_suffix(".json")
        meta = json.loads(sidecar.read_text())
        meta["sha256"] = file_sha256(pt)
        sidecar.write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="pickled code" if fix_sidecar_hash else "does not match the hash"):
        domain.domain_extractor(data, None, dataset=SPEC, settings=TINY, cache_dir=tmp_path)
    assert not marker.exists()


class UInt8Set(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID by its formula (Heusel et al. 2017), with scipy's sqrtm."""
    a, b = a.numpy(), b.numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units: singular covariance
def test_torch_fidelity_runs_with_the_registered_domain_extractor():
    import torch_fidelity

    data = toy_set(64, 0)
    ex = domain.domain_extractor(data, None, dataset=SPEC, settings=TINY)
    name = domain.register_with_torch_fidelity(ex)
    assert domain.register_with_torch_fidelity(ex) == name  # idempotent
    a = toy_set(40, 1).images.expand(-1, 3, -1, -1).contiguous()
    b = 255 - a  # another distribution
    kwargs = dict(
        fid=True, feature_extractor=name, cuda=False, cache=False, verbose=False, save_cpu_ram=True, batch_size=16
    )
    same = torch_fidelity.calculate_metrics(input1=UInt8Set(a), input2=UInt8Set(a), **kwargs)
    assert abs(same["frechet_inception_distance"]) < 1e-3
    diff = torch_fidelity.calculate_metrics(input1=UInt8Set(a), input2=UInt8Set(b), **kwargs)
    ours = fid_from_features(extract_features(ex, a)["pool"], extract_features(ex, b)["pool"])
    assert diff["frechet_inception_distance"] == pytest.approx(ours, rel=1e-3, abs=1e-4)
    assert ours > 1e-3


# --- feature cache --------------------------------------------------------------------------


class MeanExtractor:
    """A trivial extractor: per-channel means."""

    name = "mean"
    feature_names = ("pool",)
    device = torch.device("cpu")

    def __init__(self, weights_sha256: str = "0" * 64) -> None:
        self.weights_sha256 = weights_sha256
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return (images.float().mean(dim=(2, 3)),)


def test_reference_features_cached_by_extractor_weights(tmp_path, caplog):
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    ex = MeanExtractor()
    spec = {"name": "toy", "resolution": 4}
    with caplog.at_level(logging.INFO, logger="mgbench.cache"):
        first = reference_features(ex, images, dataset=spec, split="reference", cache_dir=tmp_path)
        again = reference_features(ex, images, dataset=spec, split="reference", cache_dir=tmp_path)
    assert ex.calls == 1 and torch.equal(first["pool"], again["pool"])
    torch.testing.assert_close(first["pool"], images.double().mean(dim=(2, 3)))
    assert "reference features: cache hit" in caplog.text
    other = MeanExtractor("1" * 64)  # same name, other weights: must not reuse the entry
    reference_features(other, images, dataset=spec, split="reference", cache_dir=tmp_path)
    assert other.calls == 1
    reference_features(ex, images, dataset=spec, split="train", cache_dir=tmp_path)
    assert ex.calls == 2


def test_cache_key_is_canonical_and_cached_recomputes_on_new_key(tmp_path):
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    n = []

    def compute():
        n.append(1)
        return {"x": torch.arange(4)[::2]}  # a view: stored as its own tensor

    assert torch.equal(cached({"k": 1}, compute, tmp_path)["x"], torch.tensor([0, 2]))
    assert torch.equal(cached({"k": 1}, compute, tmp_path)["x"], torch.tensor([0, 2]))
    cached({"k": 2}, compute, tmp_path)
    assert len(n) == 2


# --- LPIPS ----------------------------------------------------------------------------------


def test_lpips_random_backbone_identity_symmetry_determinism(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no AlexNet weights there
    before = torch.get_rng_state()
    net, label = lpips_net.lpips_model("cpu")
    assert label == "alex-random" and torch.equal(torch.get_rng_state(), before)
    net2, _ = lpips_net.lpips_model("cpu")
    assert all(torch.equal(p, q) for p, q in zip(net.state_dict().values(), net2.state_dict().values(), strict=True))
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8, generator=g)
    assert torch.equal(lpips_net.lpips_distance(net, a, a), torch.zeros(5, dtype=torch.float64))
    ab, ba = lpips_net.lpips_distance(net, a, b), lpips_net.lpips_distance(net, b, a)
    torch.testing.assert_close(ab, ba)
    assert (ab > 0).all()
    # diversity of copies of one image is 0; of distinct images positive
    assert lpips_net.lpips_diversity(net, a[:1].expand(4, -1, -1, -1), 8, g) == 0.0
    assert lpips_net.lpips_diversity(net, a, 8, g) > 0


def test_lpips_loads_alexnet_backbone_when_present(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / lpips_net.ALEXNET_FILE
    path.parent.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        alex = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(alex, path)
    net, label = lpips_net.lpips_model("cpu")
    assert label == "alex"
    state = net.state_dict()
    for i in (0, 3, 6, 8, 10):  # AlexNet's five convolutions
        (key,) = [k for k in state if k.startswith("net.slice") and k.endswith(f".{i}.weight")]
        torch.testing.assert_close(state[key], alex[f"features.{i}.weight"])
