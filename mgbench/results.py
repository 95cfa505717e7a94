"""results.csv: one row per job, rewritten atomically so it never holds a partial row."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

KEY = ["model", "seed"]
# Columns that measure the machine, not the model: they differ between identical runs.
TIMING_COLUMNS = ["wall_s", "train_img_per_s", "sample_img_per_s", "achieved_tflops", "peak_mem_mb"]


class ResultsStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame()
        return pd.read_csv(self.path, keep_default_na=False, na_values=["nan", "NaN"])

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
        tmp = self.path.with_suffix(".csv.tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, self.path)
