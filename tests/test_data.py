"""Tests of mgbench.data: the shapes generator against the mathematics of its design (stripe
orientation, the binomial filter's response), the real-data readers against independent readers
and known file contents, and the batch sampler against its definition."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgbench.data import BatchSampler, ImageSet, list_datasets, load_dataset, readers, shapes, to_float, to_uint8
from mgbench.errors import UsageError
from mgbench.pyramid import downsample
from mgbench.seeding import derive_seed

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"  # the real MNIST test split
MNIST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def shapes_set(split: str = "train", n: int = 64, resolution: int = 16, seed: int = 0) -> ImageSet:
    return load_dataset("shapes", split, resolution=resolution, train_size=n, reference_size=n, seed=seed)


# ------------------------------------------------------------------------------------------------
# shapes: determinism, splits, labels


def test_shapes_same_seed_same_images_and_image_i_independent_of_set_size():
    small, large = shapes_set(n=10), shapes_set(n=1000)
    assert torch.equal(shapes_set(n=10).images, small.images)
    assert torch.equal(large.images[:10], small.images)
    assert torch.equal(large.labels[:10], small.labels)
    # Any index, in any order, crossing the generator's chunk boundary: the same image.
    picks = torch.tensor([999, 3, 500])
    images, coarse, fine = shapes.generate(picks, 16, seed=0)
    assert torch.equal(images, large.images[picks])
    assert torch.equal(coarse * 4 + fine, large.labels[picks])


def test_shapes_chunk_boundary_continuity():
    # image i comes from chunk i // CHUNK: generating a range across two chunks in one call or
    # one image at a time gives the same pixels
    idx = torch.arange(shapes.CHUNK - 3, shapes.CHUNK + 3)
    together, _, _ = shapes.generate(idx, 16, seed=5)
    alone = torch.cat([shapes.generate(idx[i : i + 1], 16, seed=5)[0] for i in range(len(idx))])
    assert torch.equal(together, alone)


def test_shapes_different_seed_different_images():
    a, b = shapes_set(seed=0), shapes_set(seed=1)
    differing = (a.images != b.images).flatten(1).any(1)
    assert differing.all()


def test_shapes_same_scene_at_every_resolution():
    sets = [shapes_set(n=32, resolution=r) for r in (16, 32, 64)]
    for s in sets[1:]:
        assert torch.equal(s.labels, sets[0].labels)
    # the 64 px image, box-averaged down to 16 px, is close to the 16 px render of the same scene
    big = sets[2].images.float().reshape(32, 3, 16, 4, 16, 4).mean((3, 5))
    assert (big - sets[0].images.float()).abs().mean() < 12  # of 255; unrelated scenes differ by ~60


def test_shapes_labels_balanced_and_joint():
    s = shapes_set(n=1600)
    assert s.num_classes == 16 and s.factor_classes == {"coarse": 4, "fine": 4}
    assert torch.equal(s.labels, s.factors["coarse"] * 4 + s.factors["fine"])
    assert torch.bincount(s.labels, minlength=16).tolist() == [100] * 16
    assert torch.bincount(s.factors["coarse"]).tolist() == [400] * 4
    assert torch.bincount(s.factors["fine"]).tolist() == [400] * 4
    # not simply i mod 16: the order within each block of 16 is random
    assert not torch.equal(s.labels[:16], torch.arange(16))


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_shapes_dtype_shape_range(resolution):
    s = shapes_set(n=48, resolution=resolution)
    assert s.images.dtype == torch.uint8 and s.images.shape == (48, 3, resolution, resolution)
    assert s.labels.dtype == torch.int64 and s.labels.shape == (48,)
    assert s.spec().channels == 3 and s.spec().resolution == resolution and s.spec().num_classes == 16
    assert len(s) == 48
    # uses most of the range, with clear contrast inside every image
    assert s.images.min() < 40 and s.images.max() > 215
    per_image_range = s.images.flatten(1).float().quantile(0.95, 1) - s.images.flatten(1).float().quantile(
        0.05, 1
    )
    assert per_image_range.min() > 60


def test_shapes_train_and_reference_disjoint():
    train, ref = shapes_set("train", n=400), shapes_set("reference", n=400)
    seen = {bytes(x.numpy()) for x in train.images}
    assert len(seen) == 400  # and no two training images are equal either
    assert not any(bytes(x.numpy()) in seen for x in ref.images)


def test_shapes_bad_resolution_is_usage_error():
    with pytest.raises(UsageError, match="power-of-two"):
        shapes_set(resolution=24)
    with pytest.raises(UsageError, match="power-of-two"):
        shapes_set(resolution=8)


# ------------------------------------------------------------------------------------------------
# shapes: the fine factor lives at full resolution only


def classify_stripes(images: torch.Tensor) -> torch.Tensor:
    """Fine class by orientation, independent of the generator: a sinusoid is constant along its
    lines, so the squared difference to the neighbour along the lines of the true orientation is
    the smallest. Wave vector at 0° → lines vertical (neighbour below); 45° (wave (1, 1), y down)
    → lines along (x+1, y−1); 90° → lines horizontal; 135° → lines along (x+1, y+1)."""
    g = images.float().mean(1)
    h, w = g.shape[-2:]

    def energy(dy: int, dx: int) -> torch.Tensor:
        centre = g[:, 1 : h - 1, 1 : w - 1]
        shifted = g[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        return (centre - shifted).pow(2).mean((1, 2))

    return torch.stack([energy(1, 0), energy(-1, 1), energy(0, 1), energy(1, 1)], 1).argmin(1)


@pytest.mark.parametrize("resolution, accuracy", [(16, 0.85), (32, 0.97), (64, 0.97)])
def test_fine_class_recoverable_at_full_resolution_only(resolution, accuracy):
    s = shapes_set(n=800 if resolution == 16 else 400, resolution=resolution)
    fine = s.factors["fine"]
    assert (classify_stripes(s.images) == fine).float().mean() >= accuracy
    # two halvings with the pyramid's binomial filter: chance level (1/4)
    low = downsample(downsample(s.images.float()))
    assert (classify_stripes(low) == fine).float().mean() < 0.35


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_stripe_energy_gone_after_two_halvings(resolution):
    # Stripe signal = the image minus the same scene with stripe amplitude 0 (rendering is linear
    # in it). The binomial filter passes cos⁴(ω/2) per axis; for periods of 2-4 px two halvings
    # leave < 1% of the energy per pixel, while the shape itself (coarse factor) survives.
    p = shapes.sample_params(torch.arange(200), seed=0)
    flat = dataclasses.replace(p, amplitude=torch.zeros(len(p)))
    no_shape = dataclasses.replace(flat, size=torch.zeros(len(p)))
    striped, plain, background = (shapes.render(q, resolution) for q in (p, flat, no_shape))

    def after_two(x):
        return downsample(downsample(x))

    stripe_full = (striped - plain).pow(2).mean((1, 2, 3))
    stripe_low = (after_two(striped) - after_two(plain)).pow(2).mean((1, 2, 3))
    shape_low = (after_two(plain) - after_two(background)).pow(2).mean((1, 2, 3))
    assert stripe_full.min() > 1e-3  # stripes are there at full resolution
    assert (stripe_low / stripe_full).max() < 0.02
    assert (stripe_low / stripe_full).mean() < 0.005
    assert (shape_low / stripe_low).min() > 100  # the coarse structure is what remains


# ------------------------------------------------------------------------------------------------
# conversions


def test_to_float_and_back():
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = to_float(levels)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), levels)
    assert torch.equal(
        to_uint8(torch.tensor([-3.0, 2.0, 0.0, 1 / 127.5 * 0.49])), torch.tensor([0, 255, 128, 128])
    )
    # rounding to the nearest level, not truncation
    assert to_uint8(to_float(torch.tensor([100], dtype=torch.uint8)) + 0.6 / 127.5).item() == 101


# ------------------------------------------------------------------------------------------------
# BatchSampler


def test_batch_sampler_each_epoch_is_a_permutation():
    n, b = 10, 3
    sampler = BatchSampler(n, b, seed=7)
    stream = torch.cat([sampler.indices(k) for k in range(10)])  # 30 = 3 epochs, batches straddle
    for e in range(3):
        epoch = stream[e * n : (e + 1) * n]
        assert sorted(epoch.tolist()) == list(range(n))
        g = torch.Generator().manual_seed(derive_seed(7, e))
        assert torch.equal(epoch, torch.randperm(n, generator=g))
    assert not torch.equal(stream[:n], stream[n : 2 * n])  # epochs are reshuffled


def test_batch_sampler_pure_function_of_step_and_resume():
    a = BatchSampler(1000, 64, seed=3)
    forward = [a.indices(k) for k in range(40)]
    b = BatchSampler(1000, 64, seed=3)  # a fresh one resumed at step 25, asked in another order
    for k in [25, 39, 26, 0, 15]:
        assert torch.equal(b.indices(k), forward[k])
    assert all(len(x) == 64 and x.dtype == torch.int64 for x in forward)
    assert not torch.equal(BatchSampler(1000, 64, seed=4).indices(0), forward[0])


def test_batch_sampler_batch_larger_than_dataset():
    s = BatchSampler(4, 10, seed=0)
    batch = s.indices(1)  # positions 10..19: the end of epoch 2, epochs 3 and 4
    assert len(batch) == 10
    assert sorted(batch[2:6].tolist()) == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------------------
# errors common to every dataset


def test_unknown_names_list_valid_ones():
    with pytest.raises(UsageError, match="cifar10, folder, mnist, shapes"):
        load_dataset("imagenet", "train", resolution=32)
    with pytest.raises(UsageError, match="reference, train"):
        load_dataset("shapes", "test", resolution=32)
    assert set(list_datasets()) >= {"shapes", "mnist", "cifar10", "folder"}


@pytest.mark.parametrize("name", ["mnist", "cifar10", "folder"])
def test_real_data_needs_an_existing_root(name, tmp_path):
    with pytest.raises(UsageError, match="data.root"):
        load_dataset(name, "train", resolution=32)
    with pytest.raises(UsageError, match="does not exist"):
        load_dataset(name, "train", resolution=32, root=str(tmp_path / "nowhere"))


# ------------------------------------------------------------------------------------------------
# MNIST


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    if not MNIST.is_dir():
        pytest.skip(f"the real MNIST test split is not at {MNIST}")
    return MNIST


def test_real_mnist_loads_and_splits(mnist_dir):
    kw = dict(root=str(mnist_dir), resolution=32, train_size=0, reference_size=2000, seed=0)
    train, ref = load_dataset("mnist", "train", **kw), load_dataset("mnist", "reference", **kw)
    assert len(train) + len(ref) == 10000 and len(ref) == 2000
    counts = torch.bincount(torch.cat([train.labels, ref.labels]), minlength=10)
    assert counts.tolist() == MNIST_COUNTS
    assert train.images.shape[1:] == (1, 32, 32) and train.images.dtype == torch.uint8
    assert train.spec().channels == 1 and train.num_classes == 10
    assert torch.equal(train.factors["class"], train.labels) and train.factor_classes == {"class": 10}
    # the 2 px padding is black, the digits reach full white
    assert train.images[..., :2, :].max() == 0 and train.images[..., :, -2:].max() == 0
    assert train.images.max() == 255
    # disjoint: all 10,000 test digits are distinct, so 10,000 distinct images in total
    assert len({bytes(x.numpy()) for x in torch.cat([train.images, ref.images])}) == 10000
    # another seed, another split
    other = load_dataset("mnist", "reference", **{**kw, "seed": 1})
    assert not torch.equal(other.labels, ref.labels)


def test_real_mnist_resized_and_capped(mnist_dir):
    s = load_dataset("mnist", "train", root=str(mnist_dir), resolution=16, train_size=500, reference_size=100)
    assert s.images.shape == (500, 1, 16, 16)
    assert s.images.float().mean() > 10  # resizing kept the ink


def test_idx_reader_matches_torchvision(mnist_dir, tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for name, reference_reader in [
        ("t10k-images-idx3-ubyte", read_image_file),
        ("t10k-labels-idx1-ubyte", read_label_file),
    ]:
        raw = tmp_path / name
        raw.write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
        ours = readers.read_idx(mnist_dir / f"{name}.gz")
        assert np.array_equal(ours, reference_reader(str(raw)).numpy())
        assert np.array_equal(readers.read_idx(raw), ours)  # raw and gzipped read the same


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    code = {np.uint8: 0x08}[array.dtype.type]
    data = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">i4").tobytes() + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_mnist_prefers_training_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in [("train", 30), ("t10k", 20)]:
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(
            tmp_path / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8), compress=True
        )
    images, labels = readers.read_mnist(tmp_path)
    assert images.shape == (30, 1, 28, 28) and labels.tolist() == [i % 10 for i in range(30)]


def test_mnist_corrupt_files_are_usage_errors(tmp_path):
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, (np.arange(20) % 10).astype(np.uint8), compress=True)
    write_idx(images, np.zeros((20, 28, 28), np.uint8), compress=True)
    assert readers.read_mnist(tmp_path)[0].shape == (20, 1, 28, 28)  # intact files read
    full = images.read_bytes()
    raw = gzip.decompress(full)
    cases = {
        "truncated gzip": full[: len(full) // 2],
        "truncated data": gzip.compress(raw[: len(raw) - 100]),
        "trailing bytes": gzip.compress(raw + b"extra"),
        "bad magic": gzip.compress(b"\x12\x34" + raw[2:]),
        "truncated header": gzip.compress(raw[:9]),
    }
    for case, data in cases.items():
        images.write_bytes(data)
        with pytest.raises(UsageError, match="t10k-images-idx3-ubyte.gz") as err:
            load_dataset("mnist", "train", root=str(tmp_path), resolution=32, reference_size=5)
        assert err.value.fix, case
    write_idx(images, np.zeros((20, 27, 28), np.uint8), compress=True)
    with pytest.raises(UsageError, match="28"):
        readers.read_mnist(tmp_path)
    labels.unlink()
    with pytest.raises(UsageError, match="labels"):
        readers.read_mnist(tmp_path)
    images.unlink()
    with pytest.raises(UsageError, match="no MNIST files"):
        readers.read_mnist(tmp_path)


def test_mnist_too_few_for_reference(mnist_dir):
    with pytest.raises(UsageError, match="too few"):
        load_dataset("mnist", "train", root=str(mnist_dir), resolution=32, reference_size=10000)


# ------------------------------------------------------------------------------------------------
# CIFAR-10 (fake batches in the exact format of the python version)


def write_cifar(
    folder: Path, per_batch: int = 20, protocol: int = 4
) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(j + i) % 10 for j in range(per_batch)]
        with (folder / name).open("wb") as f:
            pickle.dump({b"batch_label": b"fake", b"labels": labels, b"data": data}, f, protocol=protocol)
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_reads_the_official_split(tmp_path, protocol):
    written = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    train = load_dataset("cifar10", "train", root=str(tmp_path), resolution=32, train_size=0)
    assert train.images.shape == (100, 3, 32, 32) and train.num_classes == 10
    # row layout: 1024 red, then green, then blue values, each row-major 32×32
    data, labels = written["data_batch_1"]
    assert torch.equal(train.images[:20].reshape(20, -1), torch.from_numpy(data))
    assert train.labels[:20].tolist() == labels
    ref = load_dataset("cifar10", "reference", root=str(tmp_path), resolution=16, reference_size=10)
    test_data = torch.from_numpy(written["test_batch"][0]).reshape(20, 3, 32, 32)
    assert ref.images.shape == (10, 3, 16, 16)
    # a seeded subset of test_batch: each image is an (antialiased, resized) test image
    full = readers.resize(test_data, 16)
    assert all(any(torch.equal(x, y) for y in full) for x in ref.images)


def test_cifar10_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    target = tmp_path / "pwned"

    class Payload:
        def __init__(self, path):
            self.path = path

        def __reduce__(self):
            return (open, (str(self.path), "w"))

    # the payload is live: a plain unpickler creates its file
    pickle.loads(pickle.dumps(Payload(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Payload(target), b"labels": []}))
    with pytest.raises(UsageError, match="data_batch_3"):
        load_dataset("cifar10", "train", root=str(folder), resolution=32)
    assert not target.exists()


def test_cifar10_missing_or_corrupt_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_4").write_bytes((folder / "data_batch_4").read_bytes()[:500])
    with pytest.raises(UsageError, match="data_batch_4"):
        load_dataset("cifar10", "train", root=str(tmp_path), resolution=32)
    (folder / "data_batch_4").unlink()
    with pytest.raises(UsageError, match="data_batch_4"):
        load_dataset("cifar10", "train", root=str(tmp_path), resolution=32)
    with pytest.raises(UsageError, match="reference_size"):
        load_dataset("cifar10", "reference", root=str(tmp_path), resolution=32, reference_size=21)


# ------------------------------------------------------------------------------------------------
# image folders


def save_png(path: Path, array: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_folder_with_classes(tmp_path):
    # class "b": grey images; class "a": RGBA; class "c": wide RGB with a blue centre square
    for i in range(4):
        save_png(tmp_path / "b" / f"{i}.png", np.full((20, 20), 10 * i, np.uint8), "L")
        save_png(tmp_path / "a" / f"{i}.png", np.full((16, 16, 4), [200, 100, 50, 7], np.uint8), "RGBA")
        wide = np.zeros((16, 48, 3), np.uint8)
        wide[:, :16] = wide[:, 32:] = [255, 0, 0]
        wide[:, 16:32] = [0, 0, 255]
        save_png(tmp_path / "c" / "deeper" / f"{i}.png", wide, "RGB")
    images, labels, classes = readers.read_folder(tmp_path, 16)
    assert classes == ["a", "b", "c"] and images.shape == (12, 3, 16, 16)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert (
        images[:4] == torch.tensor([200, 100, 50], dtype=torch.uint8)[:, None, None]
    ).all()  # alpha dropped
    assert (images[4:8, 0] == images[4:8, 1]).all() and (images[4:8, 1] == images[4:8, 2]).all()  # grey → RGB
    assert (images[8:] == torch.tensor([0, 0, 255], dtype=torch.uint8)[:, None, None]).all()  # centre crop

    train = load_dataset("folder", "train", root=str(tmp_path), resolution=16, reference_size=3)
    ref = load_dataset("folder", "reference", root=str(tmp_path), resolution=16, reference_size=3)
    assert len(train) == 9 and len(ref) == 3 and train.num_classes == 3
    assert train.factors == {"class": train.labels} and train.factor_classes == {"class": 3}
    both = torch.cat([train.labels, ref.labels])
    assert torch.bincount(both).tolist() == [4, 4, 4]


def test_flat_folder_is_unlabelled_and_split_disjoint(tmp_path):
    for i in range(12):  # each image a different grey level, so images identify themselves
        save_png(tmp_path / f"{i:02d}.jpg", np.full((40, 30), 20 * i, np.uint8), "L")
    train = load_dataset("folder", "train", root=str(tmp_path), resolution=16, reference_size=4)
    ref = load_dataset("folder", "reference", root=str(tmp_path), resolution=16, reference_size=4)
    assert train.labels is None and train.num_classes == 0 and train.factors == {}
    assert train.spec().num_classes == 0 and train.images.shape == (8, 3, 16, 16)
    levels = lambda s: {int(x.float().mean().round()) for x in s.images}  # noqa: E731
    assert len(levels(train)) == 8 and len(levels(ref)) == 4 and not levels(train) & levels(ref)


def test_folder_errors(tmp_path):
    with pytest.raises(UsageError, match="no images"):
        load_dataset("folder", "train", root=str(tmp_path), resolution=16)
    for i in range(3):
        save_png(tmp_path / f"{i}.png", np.zeros((8, 8), np.uint8), "L")
    with pytest.raises(UsageError, match="too few"):
        load_dataset("folder", "train", root=str(tmp_path), resolution=16, reference_size=3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UsageError, match="broken.png"):
        load_dataset("folder", "train", root=str(tmp_path), resolution=16, reference_size=1)
    (tmp_path / "broken.png").unlink()
    save_png(tmp_path / "cls" / "x.png", np.zeros((8, 8), np.uint8), "L")
    with pytest.raises(UsageError, match="class subfolder"):
        load_dataset("folder", "train", root=str(tmp_path), resolution=16, reference_size=1)
