"""Figure: azimuthally averaged power spectra per model beside the real data (Durall et al., CVPR
2020, Fig. 1), from :class:`mgbench.metrics.spectrum.SpectrumProfile` values.

Left: power (dB) against frequency (cycles per pixel), one line per model (the mean over its
seeds' profiles), the calibration rows in their fixed styles (real-data black dashed, noise grey
dotted). Right: each line minus the reference row's, where a blur (a drop at high frequencies)
or a checkerboard artefact (a spike at 0.5 cycles/px) is easiest to see. The band edges of the
``spectrum_low/mid/high`` columns are drawn as dotted verticals. Drawn with
:mod:`mgbench.report.figures`' style: the bytes are the same whenever the data are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mgbench.metrics.spectrum import BANDS, SpectrumProfile
from mgbench.report.aggregate import model_order
from mgbench.report.figures import CALIBRATION_STYLE, _save, _style


def _mean_profile(profiles: Sequence[SpectrumProfile]) -> tuple[np.ndarray, np.ndarray]:
    freq = profiles[0].frequency
    if any(not np.array_equal(p.frequency, freq) for p in profiles):
        raise ValueError("profiles of different resolutions cannot be averaged")
    return freq, np.mean([p.power_db for p in profiles], axis=0)


def spectra(
    profiles: Mapping[str, Sequence[SpectrumProfile]],
    colors: Mapping[str, str],
    path: Path,
    *,
    reference: str = "real-data",
) -> bool:
    """Draw the spectra of every model and calibration row in ``profiles`` (name → one profile per
    seed); the right panel subtracts the ``reference`` row. Returns whether it wrote ``path``
    (nothing to draw, or no reference row → no file)."""
    entries = {name: list(p) for name, p in profiles.items() if len(p)}
    if not entries or reference not in entries:
        return False
    names = sorted(entries, key=model_order)
    ref_freq, ref_power = _mean_profile(entries[reference])
    with _style():
        fig = Figure(figsize=(9.0, 3.6), layout="constrained")
        ax_power, ax_diff = fig.subplots(1, 2)
        for name in names:
            freq, power = _mean_profile(entries[name])
            calibration = name in CALIBRATION_STYLE
            style = (dict(CALIBRATION_STYLE[name]) if calibration
                     else {"color": colors.get(name, "C0"), "linestyle": "-"})
            label = name + (" (calibration)" if calibration else "") + f"  ({len(entries[name])})"
            ax_power.plot(freq, power, linewidth=1.3, label=label, **style)
            if np.array_equal(freq, ref_freq):
                ax_diff.plot(freq, power - ref_power, linewidth=1.3, **style)
        for ax in (ax_power, ax_diff):
            for lo, _hi in list(BANDS.values())[1:]:
                ax.axvline(lo, color="0.6", linestyle=":", linewidth=0.8)
            ax.set_xlabel("frequency (cycles per pixel)")
            ax.set_xlim(0, float(ref_freq[-1]) * 1.01)
        ymax = ax_power.get_ylim()[1]
        for name, (lo, hi) in BANDS.items():
            mid = (lo + min(hi, float(ref_freq[-1]))) / 2
            ax_power.text(mid, ymax, name, ha="center", va="top", fontsize=7, color="0.4")
        ax_diff.axhline(0, color="black", linewidth=0.5)
        ax_power.set_ylabel("power (dB), mean over images")
        ax_diff.set_ylabel(f"power − {reference} (dB)")
        ax_power.set_title("Azimuthally averaged power spectrum")
        ax_diff.set_title(f"Difference to {reference}  (↓ |Δ| is better)")
        ax_power.legend(fontsize=6, loc="lower left", title="name (profiles averaged)", title_fontsize=6)
        fig.suptitle("Frequency spectra (Durall et al. 2020); dotted: band edges at 1/8 and 1/4 cycles/px")
        _save(fig, path)
    return True


def profiles_from_results(results: pd.DataFrame) -> dict[str, list[SpectrumProfile]]:
    """Per model (and calibration row), one profile per ok seed from the hidden ``spectrum_ring<k>``
    columns the spectrum metric writes (dB at k/R cycles per pixel); {} when there are none."""
    rings = sorted((c for c in results.columns if c.startswith("spectrum_ring")),
                   key=lambda c: int(c.removeprefix("spectrum_ring")))
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    out: dict[str, list[SpectrumProfile]] = {}
    if not rings or ok.empty:
        return out
    for row in ok.itertuples(index=False):
        power = np.array([getattr(row, c) for c in rings], dtype=np.float64)
        keep = np.isfinite(power)
        if not keep.any():
            continue
        resolution = float(row.resolution)
        frequency = (np.flatnonzero(keep) + 1) / resolution
        out.setdefault(str(row.model), []).append(SpectrumProfile(frequency, power[keep], np.full(keep.sum(), np.nan),
                                                                  int(getattr(row, "num_samples", 0) or 0)))
    return out
