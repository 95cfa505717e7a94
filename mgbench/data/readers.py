"""Readers for real images already on disk: MNIST (IDX), CIFAR-10 (python pickles), image folders.

Nothing is downloaded: the user brings the files. Every reader returns uint8 tensors N×C×H×W
and int64 labels; anything wrong with the files is a :class:`UsageError` naming the file and
the fix. Images are read with numpy/PIL, never with a pickle that could run code.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mgbench.errors import UsageError
from mgbench.seeding import derive_seed, generator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# ---------------------------------------------------------------------------------------------
# Shared helpers: resizing and the train/reference split of a real dataset.


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 N×C×h×w → uint8 N×C×R×R: center-crop to a square, then an antialiased bilinear resize."""
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    images = images[..., top : top + side, left : left + side]
    if side == resolution:
        return images.contiguous()
    out = torch.empty(*images.shape[:-2], resolution, resolution, dtype=torch.uint8)
    for start in range(0, len(images), 1024):  # bounded float memory
        x = F.interpolate(
            images[start : start + 1024].float(),
            size=(resolution, resolution),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        out[start : start + 1024] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def split_indices(
    n: int, train_size: int, reference_size: int, seed: int, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded permutation of ``n`` images: reference = its first ``reference_size``, train = the rest
    (the first ``train_size`` of the rest; ``train_size`` ≤ 0 means all). Disjoint by construction."""
    if n <= reference_size:
        raise UsageError(
            f"{where} holds {n} images, too few for a reference set of {reference_size} plus training images",
            f"set data.reference_size below {n}, or add images",
        )
    perm = torch.randperm(n, generator=generator(derive_seed("data-split", seed)))
    train = perm[reference_size:]
    if 0 < train_size < len(train):
        train = train[:train_size]
    return train, perm[:reference_size]


# ---------------------------------------------------------------------------------------------
# MNIST: IDX files (LeCun et al. 1998), gzipped or raw.

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FIX = "replace it with an intact copy of the MNIST file (the download or unpacking was cut short?)"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic (whatever its name)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise UsageError(f"{path} is a corrupt or truncated gzip file: {err}", _MNIST_FIX) from None
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file as a numpy array (magic: two zero bytes, a type code, the number of dimensions;
    then each dimension as a big-endian int32; then the data, row-major)."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise UsageError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})", _MNIST_FIX)
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UsageError(f"{path} is truncated inside its IDX header", _MNIST_FIX)
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise UsageError(
            f"{path} holds {len(data)} bytes but its IDX header {shape} says {expected}", _MNIST_FIX
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_mnist(root: Path) -> tuple[Path, Path]:
    """The (images, labels) pair: the training split if present, else the test split (t10k)."""
    folders = [root, root / "raw", root / "MNIST" / "raw"]  # plain, and torchvision's layout
    for prefix in ("train", "t10k"):
        for folder in folders:
            found = []
            for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
                names = [folder / f"{prefix}-{kind}", folder / f"{prefix}-{kind}.gz"]
                found.append(next((p for p in names if p.is_file()), None))
            if found[0] and found[1]:
                return found[0], found[1]
            if found[0] or found[1]:
                have, missing = (found[0], "labels") if found[0] else (found[1], "images")
                raise UsageError(
                    f"{folder} has {have.name} but no {prefix}-{missing} file beside it",
                    "put both the images and the labels IDX files of the split in that folder",
                )
    raise UsageError(
        f"no MNIST files in {root}",
        "put train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] (or the t10k-* pair) there",
    )


def read_mnist(root: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits as uint8 N×1×28×28 and labels int64 N (0-9)."""
    image_file, label_file = _find_mnist(Path(root))
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UsageError(
            f"{image_file} holds {images.dtype} {images.shape}, not N×28×28 uint8 digits", _MNIST_FIX
        )
    if (
        labels.dtype != np.uint8
        or labels.ndim != 1
        or len(labels) != len(images)
        or labels.max(initial=0) > 9
    ):
        raise UsageError(
            f"{label_file} does not hold {len(images)} labels 0-9 matching {image_file.name}", _MNIST_FIX
        )
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def pad_mnist(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """28×28 digits → 32×32 with 2 zero pixels each side (as LeNet-5 did), then resized if needed."""
    return resize(F.pad(images, (2, 2, 2, 2)), resolution)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (Krizhevsky 2009): the "python version" pickles, loaded with a whitelist.

_CIFAR_FIX = "replace it with an intact file from the CIFAR-10 python version (cifar-10-python.tar.gz)"


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR pickle needs: numpy's array reconstructors, under their numpy 1
    (``numpy.core``) and numpy 2 (``numpy._core``) module names, plus ``_codecs.encode`` which
    Python 3 uses for bytes in protocol-2 pickles. None of them can run code or touch files."""
    import codecs

    try:
        from numpy._core import multiarray, numeric  # numpy ≥ 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], object] = {("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles builtin containers and numpy arrays; any other global is refused, so a tampered
    file cannot call a function (the usual pickle exploit goes through ``find_class``)."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _load_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with path.open("rb") as f:
            # latin1: the official files were written by Python 2 (numpy's advice for such pickles)
            batch = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UsageError(f"{path} is not a valid CIFAR-10 batch: {err}", _CIFAR_FIX) from None
    if not isinstance(batch, dict):
        raise UsageError(
            f"{path} is not a valid CIFAR-10 batch: it holds a {type(batch).__name__}", _CIFAR_FIX
        )
    data = batch.get("data", batch.get(b"data"))
    labels = batch.get("labels", batch.get(b"labels"))
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
        or labels is None
        or len(labels) != len(data)
    ):
        raise UsageError(
            f"{path} is not a valid CIFAR-10 batch: it needs 'data' (N×3072 uint8) and N 'labels'", _CIFAR_FIX
        )
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise UsageError(f"{path} has labels outside 0-9", _CIFAR_FIX)
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels


def read_cifar10(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The official CIFAR-10 split as uint8 N×3×32×32 and labels: "train" is data_batch_1..5,
    "test" is test_batch. ``root`` is the ``cifar-10-batches-py`` folder or the folder holding it."""
    root = Path(root)
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise UsageError(
            f"{folder} lacks the CIFAR-10 file(s) {', '.join(missing)}",
            "unpack cifar-10-python.tar.gz there (data_batch_1..5 and test_batch)",
        )
    parts = [_load_cifar_batch(folder / n) for n in names]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


# ---------------------------------------------------------------------------------------------
# Image folders: class subfolders give labels, a flat folder is unlabelled.


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _decode(path: Path, resolution: int) -> torch.Tensor:
    """One image file → uint8 3×R×R: RGB (grey is repeated, alpha is dropped), cropped, resized."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except Image.DecompressionBombError as err:  # a small file that would decode to gigabytes
        raise UsageError(f"image {path} is too large to decode safely ({err})".splitlines()[0],
                         "delete it, or replace it with a smaller copy") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise UsageError(f"cannot decode image {path}: {err}", "delete or replace that file") from None
    x = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
    return resize(x[None], resolution)[0]


def read_folder(root: str | Path, resolution: int) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """(uint8 N×3×R×R, labels or None, class names) of the png/jpg images under ``root``.

    With subfolders holding images, each subfolder is a class (sorted names → 0..K-1) and its
    images (at any depth) carry that label; with images directly in ``root`` only, the set is
    unlabelled. Both at once is ambiguous and an error.
    """
    root = Path(root)
    classes = sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and _images_in(d)
    )
    loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if classes and loose:
        raise UsageError(
            f"{root} holds both images ({loose[0].name}, ...) and class subfolders ({classes[0]}, ...)",
            "move the loose images into a class subfolder, or use a flat folder for unlabelled data",
        )
    if classes:
        files = [(p, k) for k, name in enumerate(classes) for p in _images_in(root / name)]
    else:
        files = [(p, -1) for p in _images_in(root)]
    if not files:
        raise UsageError(f"no images (png, jpg) in {root}", "point data.root at a folder of images")
    images = torch.stack([_decode(p, resolution) for p, _ in files])
    labels = torch.tensor([k for _, k in files], dtype=torch.int64) if classes else None
    return images, labels, classes
