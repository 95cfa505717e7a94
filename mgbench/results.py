"""results.csv: one row per job, rewritten atomically so it never holds a partial row."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

KEY = ["model", "seed"]
# Columns that measure the machine, not the model: they differ between identical runs.
TIMING_COLUMNS = ["wall_s", "train_img_per_s", "sample_img_per_s", "achieved_tflops", "peak_mem_mb"]
# Column order does not depend on which job finished first (parallel executors): who and how
# first, then the scores, then the cost, then the training losses; alphabetical within a group.
_FRONT = ["model", "dataset", "resolution", "seed", "status", "message", "steps", "batch_size", "device",
          "deterministic", "feature_extractor", "num_samples", "num_reference", "lpips_backbone"]
_COST = ["gflops_per_sample", "train_gflops_per_img", *TIMING_COLUMNS]


def _column_rank(name: str) -> tuple[int, int, str]:
    if name in _FRONT:
        return 0, _FRONT.index(name), name
    if name.startswith("params_") or name in _COST:
        return 2, 0, name
    if name.startswith("loss_"):
        return 3, 0, name
    return 1, 0, name


class ResultsStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame()
        df = pd.read_csv(self.path, keep_default_na=False, na_values=["", "nan", "NaN"])
        text = [c for c in ("status", "message") if c in df]
        df[text] = df[text].astype(object).fillna("").astype(str)
        return df

    def finished(self) -> set[tuple[str, int]]:
        """(model, seed) of the jobs that finished with status ok."""
        df = self.read()
        if df.empty:
            return set()
        ok = df[df["status"] == "ok"]
        return {(str(m), int(s)) for m, s in zip(ok["model"], ok["seed"], strict=True)}

    def add(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of one job; rows stay sorted by (model, seed)."""
        df = self.read()
        if not df.empty:
            same = (df["model"].astype(str) == row["model"]) & (df["seed"].astype(int) == row["seed"])
            df = df[~same]
        df = pd.concat([df, pd.DataFrame([row])], ignore_index=True)
        df = df.sort_values(KEY, kind="stable").reset_index(drop=True)
        df = df[sorted(df.columns, key=_column_rank)].apply(_whole_numbers_as_int)
        tmp = self.path.with_suffix(".csv.tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, self.path)


def _whole_numbers_as_int(column: pd.Series) -> pd.Series:
    """A count stays ``10`` in the file even when another row leaves it empty (no ``10.0``)."""
    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        return column.astype("Int64")
    return column
