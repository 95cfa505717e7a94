"""Safe loading of weight files: tensors only, never pickled code.

``torch.load`` with ``weights_only=False`` runs whatever code a pickle names; a weight file
from the internet or a shared cache folder must never get that chance.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from mgbench.errors import UsageError


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_load_state_dict(path: str | Path, where: str = "") -> dict[str, torch.Tensor]:
    """Load a flat ``{name: tensor}`` dict from ``path`` with ``weights_only=True``, on the CPU.

    ``where`` says where the file belongs (shown when it is missing). Every failure is a
    :class:`UsageError` that names the file: missing, holding pickled code, corrupt, or not a
    dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"weight file {str(path)!r} does not exist",
            f"put the file at {where or str(path)!r}",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only raises UnpicklingError for any global outside its allow-list.
        raise UsageError(
            f"refusing to load {str(path)!r}: it contains pickled code, not just tensors ({_first_line(err)})",
            "use a plain state_dict saved with torch.save(model.state_dict(), path)",
        ) from None
    except Exception as err:  # truncated zip, random bytes, ...: torch raises many types
        raise UsageError(
            f"weight file {str(path)!r} is corrupt or not a torch file ({type(err).__name__}: {_first_line(err)})",
            "delete it and put a fresh copy there",
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise UsageError(
            f"weight file {str(path)!r} does not hold a flat dict of tensors (a state_dict)",
            "save it with torch.save(model.state_dict(), path)",
        )
    return state


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
