"""A tiny on-disk cache of tensor dicts, keyed by a content hash, written atomically.

An entry is two files in the cache folder:

* ``<key>.pt``   – ``torch.save`` of a flat ``{name: tensor}`` dict (no pickled objects);
* ``<key>.json`` – the key parts, the SHA-256 of the ``.pt`` file and free-form metadata.

The key is the SHA-256 of the canonical JSON of the key parts, so a cache entry is only ever
reused for exactly the same inputs (unlike torch-fidelity's cache, whose file names hold no
hash of the extractor's weights). Files are written to a temporary name and moved into place
with ``os.replace`` (as NVlabs stylegan3 does), so a reader sees a whole entry or none.
Entries are read with ``weights_only=True`` after checking the file hash against the sidecar:
a file swapped into the folder is refused, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mgbench.errors import UsageError
from mgbench.features.weights import file_sha256, safe_load_state_dict
from mgbench.files import write_atomic

log = logging.getLogger(__name__)

Tensors = dict[str, torch.Tensor]


def cache_root() -> Path:
    """``$MGBENCH_CACHE``, default ``~/.cache/mgbench``."""
    return Path(os.environ.get("MGBENCH_CACHE") or "~/.cache/mgbench").expanduser()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal inputs give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def cache_key(key_parts: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``key_parts`` (which must be plain JSON data)."""
    return hashlib.sha256(canonical_json(key_parts).encode()).hexdigest()


def cached(
    key_parts: dict[str, Any],
    compute: Callable[[], Tensors],
    cache_dir: str | Path | None = None,
    *,
    label: str = "cache",
) -> Tensors:
    """``compute()`` once per distinct ``key_parts``; later calls load the stored result.

    ``label`` names the entry in the log ("reference features: cache hit <key>").
    """
    tensors, _ = cached_with_meta(key_parts, lambda: (compute(), {}), cache_dir, label=label)
    return tensors


def cached_with_meta(
    key_parts: dict[str, Any],
    compute: Callable[[], tuple[Tensors, dict[str, Any]]],
    cache_dir: str | Path | None = None,
    *,
    label: str = "cache",
) -> tuple[Tensors, dict[str, Any]]:
    """Like :func:`cached`, for a ``compute`` that returns ``(tensors, metadata)``."""
    folder = Path(cache_dir) if cache_dir is not None else cache_root()
    key = cache_key(key_parts)
    hit = load_entry(folder, key, key_parts)
    if hit is not None:
        log.info("%s: cache hit %s", label, key)
        return hit
    tensors, meta = compute()
    save_entry(folder, key, key_parts, tensors, meta)
    log.info("%s: computed and cached %s", label, key)
    return tensors, meta


def save_entry(folder: Path, key: str, key_parts: dict[str, Any], tensors: Tensors, meta: dict[str, Any]) -> None:
    """Write ``<key>.pt`` then ``<key>.json``, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    # clone: torch.save of a view would store the whole underlying storage.
    plain = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in tensors.items()}
    pt = folder / f"{key}.pt"
    write_atomic(pt, lambda f: torch.save(plain, f))
    sidecar = {"key": key, "key_parts": key_parts, "sha256": file_sha256(pt), "meta": meta}
    text = json.dumps(sidecar, indent=1, sort_keys=True, allow_nan=False).encode()
    write_atomic(folder / f"{key}.json", text)


def load_entry(folder: Path, key: str, key_parts: dict[str, Any]) -> tuple[Tensors, dict[str, Any]] | None:
    """The entry ``key``, or None if it is not (wholly) there.

    Raises :class:`UsageError` when the ``.pt`` file does not match the hash in its sidecar
    or holds anything but tensors: the folder has been tampered with or is damaged.
    """
    pt, js = folder / f"{key}.pt", folder / f"{key}.json"
    if not (pt.is_file() and js.is_file()):
        return None
    fix = f"delete {str(pt)!r} and {str(js)!r} (or the whole cache folder) to rebuild it"
    try:
        sidecar = json.loads(js.read_text())
        expected, stored_parts, meta = sidecar["sha256"], sidecar["key_parts"], sidecar["meta"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"cache sidecar {str(js)!r} is damaged", fix) from None
    if canonical_json(stored_parts) != canonical_json(key_parts):
        raise UsageError(f"cache entry {str(js)!r} was written for other inputs", fix)
    if file_sha256(pt) != expected:
        raise UsageError(f"cache file {str(pt)!r} does not match the hash in its sidecar (tampered or damaged)", fix)
    return safe_load_state_dict(pt), meta

