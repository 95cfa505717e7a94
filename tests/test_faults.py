"""The fault suite (issue 18): nothing a user or a plugin does gives a traceback or loses a result.

Table-driven like test_bad_input.py. Every case ends with exit code 2 and one message naming the
problem and the fix (bad input, a damaged file that cannot be rebuilt, a resource that ran out),
or with the job statuses of docs/FAULTS.md and exit 1 (what a model does at run time); never a
traceback without --debug; and nothing computed is lost: a damaged or missing row comes back
from jobs/*.json, a damaged checkpoint retrains to the same numbers, an interrupted or killed
run resumes to the results of an uninterrupted one.

The fast cases run in-process in seconds; the end-to-end ones (marked slow) start `mgbench run`
in its own process, as a user does, and share one reference run.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from test_bad_input import Payload

from mgbench import checks
from mgbench.cli import main
from mgbench.config import resolve
from mgbench.errors import UsageError
from mgbench.files import DiskFull, write_atomic
from mgbench.report.aggregate import read_results
from mgbench.report.commands import build_report
from mgbench.results import ResultsStore, check_rows
from mgbench.schema import timing_columns

TESTS = Path(__file__).parent
RUN_TIMEOUT_S = 900  # one `mgbench run` below takes one to three minutes on 2 busy cores
RUN = ["run", "--preset", "smoke"]


# =============================================================== helpers


def bomb_png(path: Path, side: int = 30_000) -> None:
    """A PNG of a few hundred bytes that claims side × side pixels (a decompression bomb)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))


def image_folder(folder: Path, n: int, side: int = 16, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def env_with_tests(**extra: str) -> dict[str, str]:
    """The environment of a `mgbench run` subprocess: the test plugins importable, output unbuffered."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", **extra)


def mgbench(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mgbench", *args], cwd=cwd, env=env or env_with_tests(),
                          capture_output=True, text=True, timeout=timeout)


def one_message(err: str) -> None:
    """No traceback, and the error is said once."""
    assert "Traceback" not in err, err[-3000:]
    assert err.count("mgbench: error:") <= 1, err[-3000:]


# =============================================================== 1. the CLI: bad input, exit 2

MODEL_SRC = '''
from dataclasses import dataclass
import torch
from mgbench import GenerativeModel, register_model

@register_model({name!r})
class Plugin(GenerativeModel):
    @dataclass(frozen=True)
    class Config:
        lr: float = 0.1
    def train_step(self, images, labels):
        return {{}}
    def sample(self, n, labels=None, generator=None):
        return torch.zeros(n, 3, 16, 16)
'''
PLUGINS = {  # module name → source; each is a plugin's mistake at import time
    "raises_on_import": "raise RuntimeError('plugin broke while importing')\n",
    "syntax_error": "def broken(:\n    pass\n",
    "exits_on_import": "import sys\nsys.exit(4)\n",
    "missing_dependency": "import mgbench_no_such_dependency\n",
    "takes_a_baseline_name": MODEL_SRC.format(name="dcgan"),
    "takes_noise": MODEL_SRC.format(name="noise"),
    "takes_real_data": MODEL_SRC.format(name="real-data"),
    "config_without_default": MODEL_SRC.format(name="p-nodefault").replace("lr: float = 0.1", "lr: float"),
    "config_not_a_dataclass": MODEL_SRC.format(name="p-notdc").replace("    @dataclass(frozen=True)\n", ""),
    "not_a_model": MODEL_SRC.format(name="p-notmodel").replace("class Plugin(GenerativeModel):", "class Plugin:"),
    "one_name_twice": MODEL_SRC.format(name="p-twice") + MODEL_SRC.format(name="p-twice").split("\n", 4)[4],
    "metric_takes_fid": ("from mgbench.metrics.registry import LOWER, Column, register_metric\n"
                         "@register_metric('fid', columns=[Column('fid2', LOWER)])\n"
                         "def fid(ctx):\n    return {}\n"),
    "dataset_takes_shapes": ("from mgbench.data import Dataset, register_dataset\n"
                             "register_dataset(Dataset('shapes', lambda request: None))\n"),
}
PLUGIN_WORDS = {
    "raises_on_import": ["failed to import", "plugin broke while importing", ":1"],
    "syntax_error": ["failed to import", "SyntaxError", ":1"],
    "exits_on_import": ["called sys.exit(4)", "__main__"],
    "missing_dependency": ["mgbench_no_such_dependency", "install what the plugin needs"],
    "takes_a_baseline_name": ["'dcgan' is taken by", "another name"],
    "takes_noise": ["'noise' is reserved"],
    "takes_real_data": ["'real-data' is reserved"],
    "config_without_default": ["lr", "have no default"],
    "config_not_a_dataclass": ["must be a dataclass"],
    "not_a_model": ["not a subclass of mgbench.GenerativeModel"],
    "one_name_twice": ["'p-twice' is taken by"],
    "metric_takes_fid": ["'fid' is taken by"],
    "dataset_takes_shapes": ["'shapes' is taken by"],
}


def make(tmp: Path) -> dict[str, str]:
    """The files the cases refer to, made in ``tmp``."""
    places: dict[str, Path] = {"tmp": tmp}
    (tmp / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (tmp / "timeout.toml").write_text("[execution]\njob_timeout_s = -1\n")
    # A run directory with a config.json that is not JSON, and one that is binary.
    for name, data in (("notjson", b"{ this is not json"), ("binaryrun", bytes(range(256)))):
        (tmp / name / "smoke").mkdir(parents=True)
        (tmp / name / "smoke" / "config.json").write_bytes(data)
        places[name] = tmp / name / "smoke"
    good = tmp / "goodrun"  # no run needed: the config.json that resolve writes is enough
    good.mkdir()
    (good / "config.json").write_text(resolve("smoke", None, {"out": str(tmp), "name": "goodrun"}).to_json())
    places["goodrun"] = good
    # Image folders: a bomb among good images; a truncated PNG; an empty PNG (each read first).
    for name, bad in (("bomb", "0-bomb.png"), ("truncated", "0-trunc.png"), ("emptypng", "0-empty.png")):
        folder = image_folder(tmp / name, 3)
        if name == "bomb":
            bomb_png(folder / bad)
        elif name == "truncated":
            whole = (folder / "0001.png").read_bytes()
            (folder / bad).write_bytes(whole[: len(whole) // 2])
        else:
            (folder / bad).write_bytes(b"")
        places[name] = folder
    # CIFAR-10 batches, the first a pickle that would run code.
    cifar = tmp / "evilcifar"
    cifar.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cifar / name).write_bytes(pickle.dumps(Payload(tmp / "PWNED")))
    places["evilcifar"] = cifar
    # Score inputs.
    rng = np.random.default_rng(0)
    np.savez(tmp / "fake.npz", rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8))
    np.savez(tmp / "objects.npz", np.array([{"a": 1}], dtype=object))
    np.savez(tmp / "noarrays.npz")
    (tmp / "emptydir").mkdir()
    bombdir = tmp / "bombfirst"
    bombdir.mkdir()
    bomb_png(bombdir / "0.png")
    places["bombfirst"] = bombdir
    # Report and compare inputs: run directories with a damaged results.csv.
    for name, data in (("emptycsv", b""), ("randomcsv", bytes(np.random.default_rng(1).integers(0, 256, 4000,
                                                                                             dtype=np.uint8))),
                       ("nostatus", b"model,seed,fid\ndcgan,0,1.0\n")):
        (tmp / name).mkdir()
        (tmp / name / "results.csv").write_bytes(data)
        places[name] = tmp / name
    (tmp / "summaryonly").mkdir()
    (tmp / "summaryonly" / "summary.csv").write_text("dataset,metric,mean\nshapes,fid,1\n")
    places["summaryonly"] = tmp / "summaryonly"
    (tmp / "a_file").write_text("")
    # Plugin modules, each under a name of its own (a failed import leaves nothing registered).
    plugins = tmp / "plugins"
    plugins.mkdir()
    for module, source in PLUGINS.items():
        (plugins / f"fault18_{module}.py").write_text(source)
    return {k: str(v) for k, v in places.items()}


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """The files of the cases, made once (no case changes them)."""
    return make(tmp_path_factory.mktemp("bad-input"))


CLI_CASES = [  # (id, argv with {placeholders}, words the message must hold)
    ("config is a binary file", ["run", "--config", "{tmp}/binary.toml"], ["binary.toml", "not text"]),
    ("config is a directory", ["run", "--config", "{tmp}"], ["is a directory"]),
    ("seed of 2^86", RUN + ["--seeds", "99999999999999999999999999"], ["below 2^63"]),
    ("job timeout not positive", ["run", "--config", "{tmp}/timeout.toml"], ["job_timeout_s", "positive"]),
    ("resume: config.json not JSON", ["run", "--resume", "{notjson}"], ["config.json", "damaged"]),
    ("resume: config.json binary", ["run", "--resume", "{binaryrun}"], ["config.json", "damaged"]),
    ("run over a damaged config.json", RUN + ["--out", "{tmp}/notjson"], ["config.json", "damaged"]),
    ("resume with a changed flag", ["run", "--resume", "{goodrun}", "--steps", "7"],
     ["--resume finishes a run as it was configured", "train.steps (run: 40, given: 7)"]),
    ("resume with --config", ["run", "--resume", "{goodrun}", "--config", "{tmp}/timeout.toml"],
     ["--resume takes the run's own configuration"]),
    ("resume of a file", ["run", "--resume", "{tmp}/a_file"], ["not a run directory"]),
    ("more memory than there is", RUN + ["--resolution", "1024"], ["needs at least", "GiB are available", "1024"]),
    ("decompression bomb in an image folder", RUN + ["--dataset", "folder", "--data-root", "{bomb}",
                                                     "--models", "dcgan"], ["0-bomb.png", "too large to decode"]),
    ("truncated PNG in an image folder", RUN + ["--dataset", "folder", "--data-root", "{truncated}",
                                                "--models", "dcgan"], ["0-trunc.png", "cannot decode"]),
    ("empty PNG in an image folder", RUN + ["--dataset", "folder", "--data-root", "{emptypng}",
                                            "--models", "dcgan"], ["0-empty.png", "cannot decode"]),
    ("CIFAR-10 batch with pickled code", RUN + ["--dataset", "cifar10", "--data-root", "{evilcifar}"],
     ["evilcifar", "refusing to load global"]),
    ("score: --json is a directory", ["score", "{tmp}/fake.npz", "{tmp}/fake.npz", "--json", "{tmp}"],
     ["is a directory"]),
    ("score: --json under /proc", ["score", "{tmp}/fake.npz", "{tmp}/fake.npz", "--json", "/proc/x/scores.json"],
     ["/proc/x"]),
    ("score: --json in /proc itself", ["score", "{tmp}/fake.npz", "{tmp}/fake.npz", "--json", "/proc/x"],
     ["/proc/x", "cannot be written"]),
    ("score: FAKE missing", ["score", "{tmp}/nothing.npz", "--dataset", "shapes"], ["nothing.npz", "does not exist"]),
    ("score: npz of pickled objects", ["score", "{tmp}/objects.npz", "--dataset", "shapes"],
     ["objects.npz", "cannot be read as .npz"]),
    ("score: npz without arrays", ["score", "{tmp}/noarrays.npz", "--dataset", "shapes"], ["holds no arrays"]),
    ("score: empty folder", ["score", "{tmp}/emptydir", "--dataset", "shapes"], ["no images"]),
    ("score: nothing to score against", ["score", "{tmp}/fake.npz"], ["nothing to score against"]),
    ("report: no results.csv", ["report", "{tmp}/emptydir"], ["has no results.csv"]),
    ("report: empty results.csv", ["report", "{emptycsv}"], ["results.csv is empty", "--resume"]),
    ("report: results.csv of random bytes", ["report", "{randomcsv}"], ["results.csv is not text", "jobs/*.json"]),
    ("report: results.csv without status", ["report", "{nostatus}"], ["lacks the column(s) status"]),
    ("report: neither RUN_DIR nor --index", ["report"], ["no run directory given"]),
    ("compare: reference missing", ["compare", "{tmp}/nowhere", "{nostatus}"], ["nowhere", "does not exist"]),
    ("compare: only a summary.csv", ["compare", "{summaryonly}", "{summaryonly}"], ["only a summary.csv"]),
    ("compare: results.csv without status", ["compare", "{nostatus}", "{nostatus}"], ["lacks the column(s) status"]),
    ("list: unknown dataset", ["list", "--dataset", "imagenet"], ["imagenet", "cifar10"]),
    ("list: resolution a dataset cannot do", ["list", "--resolution", "8"], ["8"]),
] + [
    (f"{verb}: plugin {module.replace('_', ' ')}", ([*RUN, "--out", "{runs}"] if verb == "run" else ["list"])
     + ["--plugin", f"fault18_{module}"], PLUGIN_WORDS[module])
    for module in PLUGINS for verb in ("run", "list")
]
CLI_CASES += [  # the known gaps of the first fault suite, fixed where they lay
    ("score: decompression bomb first", ["score", "{bombfirst}", "--dataset", "shapes"], ["0.png", "too large"]),
    ("compare: results.csv of random bytes", ["compare", "{randomcsv}", "{randomcsv}"], ["not text"]),
    ("compare: empty results.csv", ["compare", "{emptycsv}", "{emptycsv}"], ["is empty"]),
]
GAPS: list[tuple[str, list[str], list[str], str]] = []  # (id, argv, words, why): cases still open
PARAMS = [pytest.param(argv, words, id=name) for name, argv, words in CLI_CASES] + [
    pytest.param(argv, words, id=name, marks=pytest.mark.xfail(strict=True, reason=why))
    for name, argv, words, why in GAPS]


@pytest.mark.parametrize("argv, words", PARAMS)
def test_bad_input_exits_2_with_one_message(argv, words, places, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no weights anywhere
    monkeypatch.syspath_prepend(str(Path(places["tmp"]) / "plugins"))
    monkeypatch.setattr(checks, "available_memory", lambda: 4 * 2**30)  # the same machine everywhere
    argv = [a.format(**places, runs=tmp_path / "runs") for a in argv]
    if argv[0] == "run" and "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "runs")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    one_message(err)
    assert "mgbench: error:" in err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert not (Path(places["tmp"]) / "PWNED").exists()  # no payload ran
    assert not (tmp_path / "runs" / "smoke" / "results.csv").exists()  # nothing ran before the check


MODES = [  # (PIL mode, size, suffix): what a folder of real images may mix
    ("L", (16, 16), ".png"), ("RGBA", (20, 12), ".png"), ("P", (16, 40), ".png"), ("I;16", (16, 16), ".png"),
    ("1", (17, 17), ".png"), ("LA", (32, 32), ".png"), ("CMYK", (24, 24), ".jpg"), ("RGB", (7, 9), ".jpeg"),
]


def test_a_folder_of_mixed_modes_and_sizes_is_read_as_rgb_squares(tmp_path):
    from mgbench.data.readers import read_folder

    rng = np.random.default_rng(0)
    for i, (mode, size, suffix) in enumerate(MODES):
        rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        image = rgb.convert("L").convert("I;16") if mode == "I;16" else rgb.convert(mode)
        image.save(tmp_path / f"{i}-{mode.replace(';', '')}{suffix}")
    images, labels, classes = read_folder(tmp_path, 16)
    assert images.shape == (len(MODES), 3, 16, 16) and images.dtype == torch.uint8
    assert labels is None and classes == []


def test_plugins_cannot_take_reserved_or_taken_names_in_process():
    """The registry itself (mgbench/plugins.py Registry(reserved=...)): the calibration rows'
    names are reserved, a taken name stays with its owner."""
    from plugin_models import PixelGaussian

    from mgbench import registry

    for name in ("noise", "real-data", "dcgan"):
        with pytest.raises(UsageError, match="reserved" if name != "dcgan" else "taken"):
            registry.register_model(name)(type("Clash", (PixelGaussian,), {}))
    assert registry.get_model_class("dcgan").__module__ == "mgbench_baselines.dcgan"


# =============================================================== 2. results.csv, row by row

BASE = {"dataset": "shapes", "resolution": 16, "steps": 10, "batch_size": 8, "status": "ok", "message": "",
        "device": "cpu", "deterministic": False, "feature_extractor": "domain-abc", "num_samples": 100,
        "num_reference": 100, "lpips_backbone": "alex"}


def job_rows() -> list[dict]:
    """Three models × two seeds and the calibration rows."""
    return [{**BASE, "model": model, "seed": seed, "fid": fid + seed, "precision": 0.5 + 0.1 * seed}
            for model, fid in (("a", 10.0), ("b", 20.0), ("c", 30.0), ("real-data", 0.5), ("noise", 300.0))
            for seed in (0, 1)]


def rows_csv(path: Path) -> Path:
    """A results.csv of :func:`job_rows`, as the store writes it."""
    store = ResultsStore(path)
    for row in job_rows():
        store.add(row)
    return path


def _damage_row(text: str, model: str, seed: int, how) -> str:
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(f"{model},") and line.split(",")[3] == str(seed):
            lines[i] = how(line)
    return "\n".join(lines)


def _cell(line: str, column: int, value: str) -> str:
    cells = line.split(",")
    cells[column] = value
    return ",".join(cells)


ROW_DAMAGE = [  # (id, how the row of (b, 1) is damaged, given the header, words of the problem)
    ("row cut mid-way", lambda line, h: line[: len(line) // 2], ["fields (cut short or garbled)"]),
    ("non-numeric cell", lambda line, h: _cell(line, h.index("fid"), "abc"), ["fid = 'abc' is not a number"]),
    ("seed written as text", lambda line, h: _cell(line, h.index("seed"), "one"),
     ["seed 'one' is not a non-negative integer"]),
    ("negative seed", lambda line, h: _cell(line, h.index("seed"), "-1"), ["seed '-1'"]),
    ("unknown status", lambda line, h: _cell(line, h.index("status"), "okay"), ["status 'okay'"]),
    ("a field too many", lambda line, h: line + ",1", ["fields (cut short or garbled)"]),
    ("no model name", lambda line, h: _cell(line, h.index("model"), ""), ["no model name"]),
]


@pytest.mark.parametrize("how, words", [c[1:] for c in ROW_DAMAGE], ids=[c[0] for c in ROW_DAMAGE])
def test_a_damaged_row_is_reported_and_not_finished_the_rest_stays(how, words, tmp_path, caplog):
    run = tmp_path / "run"
    path = rows_csv(run / "results.csv")
    header = path.read_text().split("\n")[0].split(",")
    damage = lambda line: how(line, header)  # noqa: E731
    path.write_text(_damage_row(path.read_text(), "b", 1, damage))
    store = ResultsStore(path)
    (problem,) = store.problems()
    for word in words:
        assert word in problem
    assert "counts as not finished" in problem
    assert ("b", 1) not in store.finished() and ("b", 0) in store.finished() and len(store.finished()) == 9
    results = read_results(path)  # the report's reader: the other rows, the metric kept
    assert len(results) == 9 and pd.api.types.is_numeric_dtype(results["fid"])
    assert results.loc[results["model"] == "b", "fid"].tolist() == [20.0]
    assert main(["report", str(run)]) == 0
    summary = pd.read_csv(run / "report" / "summary.csv")
    assert set(summary.loc[summary["metric"] == "fid", "model"]) == {"a", "b", "c", "real-data", "noise"}
    assert any("row 4 (b seed 1) is damaged" in r.getMessage() or "is damaged" in r.getMessage()
               for r in caplog.records)
    store.add({**BASE, "model": "d", "seed": 0, "fid": 1.0})  # the next write keeps the damaged file beside
    assert (run / "results.csv.damaged").read_text() == _damage_row(
        rows_csv(tmp_path / "again.csv").read_text(), "b", 1, damage)
    assert store.problems() == [] and len(store.read()) == 10


FILE_DAMAGE = [  # (id, bytes of results.csv, words)
    ("empty", b"", ["is empty"]),
    ("random bytes", bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)), ["is not text"]),
    ("no status column", b"model,seed,fid\na,0,1.0\n", ["lacks the column(s) status"]),
    ("only NUL bytes", b"\0" * 100, ["lacks the column(s)"]),
]


@pytest.mark.parametrize("data, words", [c[1:] for c in FILE_DAMAGE], ids=[c[0] for c in FILE_DAMAGE])
def test_a_damaged_results_file_is_rebuilt_from_the_jobs_rows(data, words, tmp_path):
    run = tmp_path / "run"
    path = rows_csv(run / "results.csv")
    jobs = run / "jobs"
    jobs.mkdir()
    for r in job_rows():
        if r["model"] in "abc":  # the calibration rows are the runner's, not a job's
            (jobs / f"{r['model']}-seed{r['seed']}.json").write_text(json.dumps(r))
    (jobs / "c-seed1.json").write_text('{"model": "c", "seed"')  # a damaged job row: that job runs again
    path.write_bytes(data)
    store = ResultsStore(path)
    (problem,) = store.problems()
    for word in words:
        assert word in problem
    assert store.finished() == set()
    restored = store.restore(jobs, {(m, s) for m in "abc" for s in (0, 1)})
    assert restored == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0)]
    assert store.finished() == set(restored)
    assert (run / "results.csv.damaged").read_bytes() == data  # nothing of it is lost


def test_a_results_row_that_is_a_plugins_text_column_is_not_damage(tmp_path):
    """A column holding no number at all is text (a plugin's), not a damaged number."""
    store = ResultsStore(tmp_path / "results.csv")
    for seed in (0, 1):
        store.add({**BASE, "model": "a", "seed": seed, "fid": 1.0, "note": f"text {seed}"})
    assert store.problems() == [] and len(store.finished()) == 2
    assert check_rows(tmp_path / "results.csv").problems == []


LOSS_DAMAGE = [  # (id, bytes of losses/a-seed0.csv)
    ("random bytes", bytes(np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8))),
    ("text values", b"step,loss_g\n10,abc\n20,def\n"),
    ("no step column", b"loss_g\n1.0\n"),
    ("empty", b""),
]


@pytest.mark.parametrize("data", [c[1] for c in LOSS_DAMAGE], ids=[c[0] for c in LOSS_DAMAGE])
def test_report_skips_a_damaged_losses_file(data, tmp_path, caplog):
    run = tmp_path / "run"
    rows_csv(run / "results.csv")
    losses = run / "losses"
    losses.mkdir()
    (losses / "a-seed0.csv").write_bytes(data)
    (losses / "b-seed0.csv").write_text("step,loss_g\n10,1.5\n20,1.2\n")
    build_report(run)
    assert (run / "report" / "figures" / "losses.png").exists()  # b's curve is drawn
    assert any("a-seed0.csv is damaged" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)


# =============================================================== 3. what sample() returns

SAMPLE_FAULTS = [  # (id, what sample(n) returns from good float images x, words)
    ("NaN", lambda x: x.index_fill(0, torch.tensor([0]), float("nan")), ["non-finite"]),
    ("Inf", lambda x: x.index_fill(0, torch.tensor([3]), float("inf")), ["non-finite"]),
    ("uint8", lambda x: ((x + 1) * 127.5).to(torch.uint8), ["torch.uint8", "not floats"]),
    ("int64", lambda x: x.long(), ["torch.int64"]),
    ("[0, 255] floats", lambda x: (x + 1) * 127.5, ["another scale"]),
    ("one channel on RGB", lambda x: x[:, :1], ["1 channels instead of 3"]),
    ("n - 1 images", lambda x: x[:-1], ["9 images instead of 10"]),
    ("n + 1 images", lambda x: torch.cat([x, x[:1]]), ["11 images instead of 10"]),
    ("half the resolution", lambda x: x[..., ::2, ::2], ["8 rows instead of 16"]),
    ("no batch dimension", lambda x: x[0], ["3 dimensions instead of 4"]),
    ("a list", lambda x: list(x), ["a list, not a tensor"]),
    ("a numpy array", lambda x: x.numpy(), ["a ndarray, not a tensor"]),
    ("None", lambda x: None, ["a NoneType, not a tensor"]),
]
SAMPLE_OK = [  # (id, what sample(n) returns)
    ("float32 in [-1, 1]", lambda x: x),
    ("float16", lambda x: x.half()),
    ("bfloat16", lambda x: x.bfloat16()),
    ("float64", lambda x: x.double()),
    ("unclamped overshoot to 1.1", lambda x: x * 1.1),
    ("0.5 % of the values at 3", lambda x: x.flatten().index_fill(0, torch.arange(38), 3.0).view_as(x)),
]


@pytest.fixture(scope="module")
def rgb_model():
    from plugin_models import PixelGaussian

    from mgbench.contract import DataSpec

    return PixelGaussian(PixelGaussian.Config(), DataSpec(3, 16, 0), torch.device("cpu"))


@pytest.mark.parametrize("fault, words", [c[1:] for c in SAMPLE_FAULTS], ids=[c[0] for c in SAMPLE_FAULTS])
def test_a_broken_sample_is_refused_naming_the_model_and_the_fault(fault, words, rgb_model):
    x = torch.rand(10, 3, 16, 16) * 2 - 1
    with pytest.raises(checks.SampleError) as err:
        checks.check_samples(rgb_model, fault(x), 10)
    assert "model 'pixel-gaussian': sample(10) returned" in str(err.value)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("fine", [c[1] for c in SAMPLE_OK], ids=[c[0] for c in SAMPLE_OK])
def test_a_good_sample_passes(fine, rgb_model):
    x = torch.rand(10, 3, 16, 16) * 2 - 1
    images = fine(x)
    assert checks.check_samples(rgb_model, images, 10) is images


def test_the_memory_estimate_grows_with_the_data_and_refuses_what_does_not_fit():
    from mgbench.config import resolve

    small, large = (resolve("smoke", None, {"data": {"resolution": r}, "models": ["dcgan"], "device": "cpu"})
                    for r in (16, 1024))
    need_small, _ = checks.memory_needed(small, 1)
    data_only, _ = checks.memory_needed(large, 2, with_parameters=False)
    need_large, how = checks.memory_needed(large, 2)
    assert data_only == 2 * 3000 * 3 * 1024 * 1024  # 2 jobs × N×C×R×R (train, reference and samples)
    assert need_small < 2**30 < data_only < need_large  # dcgan's 1024 px parameters are gigabytes
    assert "3×1024×1024" in how and "parameters" in how
    checks.check_memory(small, 1, available=2**30)
    with pytest.raises(UsageError, match="needs at least .* GiB of memory, 1.00 GiB are available"):
        checks.check_memory(large, 2, available=2**30)
    with pytest.raises(UsageError, match="parameters"):  # the data fit, the parameters do not
        checks.check_memory(large, 1, available=data_only // 2 + 2**20)


# =============================================================== 4. checkpoints


@pytest.fixture
def checkpointed(tmp_path):
    """A trained tiny model, its checkpoint at step 5 and a fresh copy to load it into."""
    from plugin_models import PixelGaussian

    from mgbench.contract import DataSpec
    from mgbench.train import Checkpointer, TrainState

    spec = DataSpec(3, 16, 0)
    model = PixelGaussian(PixelGaussian.Config(), spec, torch.device("cpu"))
    for _ in range(5):
        model.train_step(torch.rand(4, 3, 16, 16) * 2 - 1, None)
    ckpt = Checkpointer(tmp_path / "checkpoints", "pg-seed0", "spec0")
    ckpt.save(model, TrainState(step=5, history=[{"step": 5, "nll": 1.0}]))

    def fresh():
        return PixelGaussian(PixelGaussian.Config(), spec, torch.device("cpu"))

    return ckpt, model, fresh


def _zero_bytes(path: Path, n: int = 4000) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - n // 2  # the middle of the file: the weights, not the zip directory
    data[start:start + n] = bytes(n)
    path.write_bytes(bytes(data))


def _rehash(ckpt) -> None:
    """Rewrite the sidecar's hash, as a tamperer who knows the format would."""
    from mgbench.train import _file_sha256

    meta = json.loads(ckpt.meta_path.read_text())
    meta["sha256"] = _file_sha256(ckpt.path)
    ckpt.meta_path.write_text(json.dumps(meta))


CHECKPOINT_DAMAGE = [  # (id, how the checkpoint is damaged, words of the warning)
    ("4,000 zero bytes in the weights", lambda c: _zero_bytes(c.path), "SHA-256 does not match"),
    ("cut in half", lambda c: c.path.write_bytes(c.path.read_bytes()[: c.path.stat().st_size // 2]),
     "SHA-256 does not match"),
    ("random bytes, hash rewritten", lambda c: (c.path.write_bytes(os.urandom(5000)), _rehash(c)), "cannot be read"),
    ("pickled code, hash rewritten", lambda c: (torch.save({"model": Payload(c.path.parent / "PWNED")}, c.path),
                                                _rehash(c)), "cannot be read"),
    ("tensors of the wrong shape, hash rewritten", lambda c: (torch.save(
        {"model": {"networks": {"net": {"mean": torch.zeros(2)}}}, "rng": {}, "step": 5, "history": [],
         "timing": [0, 0]}, c.path), _rehash(c)), "cannot be read"),
    ("sidecar missing", lambda c: c.meta_path.unlink(), "sidecar"),
    ("sidecar not JSON", lambda c: c.meta_path.write_text("{"), "sidecar"),
]


@pytest.mark.parametrize("damage, words", [c[1:] for c in CHECKPOINT_DAMAGE], ids=[c[0] for c in CHECKPOINT_DAMAGE])
def test_a_damaged_checkpoint_is_never_loaded_and_the_job_starts_over(damage, words, checkpointed, caplog):
    ckpt, _, fresh = checkpointed
    damage(ckpt)
    model = fresh()
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    assert ckpt.load(model) is None  # start from scratch
    after = model.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # not even partly loaded
    assert not ckpt.path.exists() and ckpt.path.with_name("pg-seed0.pt.damaged").exists()  # kept aside
    assert any(words in r.getMessage() and "trains again from the start" in r.getMessage() for r in caplog.records)
    assert not (ckpt.path.parent / "PWNED").exists()


def test_an_intact_checkpoint_loads_and_one_of_another_config_is_refused(checkpointed):
    from mgbench.train import Checkpointer

    ckpt, trained, fresh = checkpointed
    model = fresh()
    state = ckpt.load(model)
    assert state.step == 5 and torch.equal(model.net.mean, trained.net.mean)
    assert "sha256" in json.loads(ckpt.meta_path.read_text())
    meta = json.loads(ckpt.meta_path.read_text())
    del meta["sha256"]  # written before checkpoints had hashes: still loads
    ckpt.meta_path.write_text(json.dumps(meta))
    assert ckpt.load(fresh()).step == 5
    with pytest.raises(UsageError, match="written by another model or config"):
        Checkpointer(ckpt.path.parent, "pg-seed0", "another-spec").load(fresh())


# =============================================================== 5. caches


def _domain_entry(tmp_path):
    from test_features import SPEC, TINY, toy_set

    from mgbench.features import domain

    data = toy_set(32, 0)
    domain.domain_extractor(data, None, dataset=SPEC, settings=TINY, cache_dir=tmp_path)
    (pt,) = tmp_path.glob("*.pt")
    return (lambda: domain.domain_extractor(data, None, dataset=SPEC, settings=TINY, cache_dir=tmp_path)), pt


def _with_sidecar(pt: Path, **changes) -> None:
    from mgbench.features.weights import file_sha256

    sidecar = pt.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta.update(changes, sha256=file_sha256(pt))
    sidecar.write_text(json.dumps(meta))


CACHE_DAMAGE = [  # (id, damage(pt), words)
    ("tensors of the wrong shape", lambda pt: (torch.save({k: torch.zeros(3) for k in torch.load(
        pt, weights_only=True)}, pt), _with_sidecar(pt)), ["is damaged", "size mismatch"]),
    ("metadata null", lambda pt: _with_sidecar(pt, meta=None), ["is damaged", "metadata is NoneType"]),
    ("accuracy not numbers", lambda pt: _with_sidecar(pt, meta={"accuracy": {"coarse": "high"}}),
     ["is damaged", "accuracy"]),
    ("sidecar not JSON", lambda pt: pt.with_suffix(".json").write_text("{"), ["sidecar", "is damaged"]),
    ("bytes changed", lambda pt: _zero_bytes(pt, 100), ["does not match the hash"]),
]


@pytest.mark.parametrize("damage, words", [c[1:] for c in CACHE_DAMAGE], ids=[c[0] for c in CACHE_DAMAGE])
def test_a_damaged_cached_classifier_names_its_file_and_how_to_rebuild_it(damage, words, tmp_path):
    load, pt = _domain_entry(tmp_path)
    damage(pt)
    with pytest.raises(UsageError) as err:
        load()
    for word in words:
        assert word in str(err.value)
    assert pt.name in err.value.problem + err.value.fix and "delete" in err.value.fix


# =============================================================== 6. a disk that fills


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root on Linux); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("needs Linux and mount")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_names_the_file_and_keeps_the_old_one(small_disk):
    target = small_disk / "results.csv"
    write_atomic(target, "old\n")
    with pytest.raises(DiskFull) as err:
        write_atomic(target, b"x" * 1_000_000)
    assert f"disk full at {target}" in err.value.problem and "needs 976.6 KiB" in err.value.problem
    assert "free there" in err.value.problem and "--resume" in err.value.fix
    with pytest.raises(DiskFull, match="filled after"):  # a writer function (torch.save, savefig)
        write_atomic(small_disk / "big.pt", lambda f: torch.save({"w": torch.zeros(500_000)}, f))
    assert target.read_text() == "old\n"
    assert [p.name for p in small_disk.iterdir()] == ["results.csv"]  # no temporary left


def test_a_full_disk_is_caught_where_it_cannot_be_mounted(tmp_path, monkeypatch):
    """The same, simulated: ENOSPC from the kernel at fsync."""
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match="disk full at .*a.csv"):
        write_atomic(tmp_path / "a.csv", "x")
    assert list(tmp_path.iterdir()) == []


def test_report_onto_a_full_disk_is_one_line(small_disk, tmp_path, capsys):
    run = small_disk / "run"
    rows_csv(run / "results.csv")
    fill = small_disk / "fill"
    with pytest.raises(DiskFull):
        write_atomic(fill, b"x" * 10_000_000)
    write_atomic(fill, b"x" * (shutil.disk_usage(small_disk).free - 4096))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    one_message(err)
    assert f"disk full at {run / 'report'}" in err
    assert (run / "results.csv").exists()


# =============================================================== 7. end to end (slow)

FAULT_GRID = """
preset = "smoke"
plugins = ["plugin_models", "fault_plugins"]
[train]
steps = 10
checkpoint_every = 10
log_every = 5
[eval]
num_samples = 64
metrics = ["fid"]
every = 0  # no metrics during training: each fault shows where the final sampling meets it
[execution]
job_timeout_s = 60
workers = 2
"""
JOB_FAULTS = [  # (model, status, words of its message): one grid, each job ends as documented
    ("pixel-gaussian", "ok", []),
    ("fault-nan-samples", "failed", ["model 'fault-nan-samples'", "non-finite"]),
    ("fault-uint8-samples", "failed", ["torch.uint8 images, not floats"]),
    ("fault-grey-samples", "failed", ["1 channels instead of 3"]),
    ("fault-short-samples", "failed", ["63 images instead of 64"]),
    ("fault-sample-raises", "failed", ["ValueError: boom in sample", "traceback:"]),
    ("fault-inf-loss", "diverged", ["non-finite loss at step 5"]),
    ("fault-loss-not-tensor", "failed", ["AttributeError"]),
    ("fault-os-exit", "crashed", ["exited with code 3"]),
    ("fault-segfault", "crashed", ["SIGSEGV"]),
    ("fault-sys-exit", "failed", ["sys.exit(4)"]),
    ("fault-keyboard-interrupt", "failed", ["KeyboardInterrupt raised inside the job"]),
    ("fault-cpu-oom", "oom", ["DefaultCPUAllocator: can't allocate memory"]),
    ("fault-memory-error", "oom", ["MemoryError"]),
    ("fault-cuda-oom", "oom", ["CUDA out of memory"]),
    ("fault-init-raises", "failed", ["boom in __init__"]),
    ("fault-disk-full", "failed", ["disk full at /mnt/full/ckpt.pt"]),
    ("fault-hangs", "timeout", ["execution.job_timeout_s = 60 s"]),
]


@pytest.mark.slow
def test_a_models_faults_end_as_job_statuses_with_one_line_each(tmp_path):
    config = tmp_path / "faults.toml"
    config.write_text(FAULT_GRID)
    done = mgbench("run", "--config", str(config), "--models", ",".join(m for m, _, _ in JOB_FAULTS),
                   "--out", str(tmp_path))
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    rows = pd.read_csv(tmp_path / "smoke" / "results.csv", keep_default_na=False).set_index("model")
    console = [line for line in done.stderr.splitlines() if line.startswith("mgbench:   ")]
    assert len(console) == len(JOB_FAULTS) - 1  # one line per job not ok
    for model, status, words in JOB_FAULTS:
        assert rows.loc[model, "status"] == status, (model, rows.loc[model, "message"])
        for word in words:
            assert word in rows.loc[model, "message"], (model, rows.loc[model, "message"])
        if status != "ok":
            (line,) = [c for c in console if f" {model}-seed0 " in c]
            assert status in line
    assert (tmp_path / "smoke" / "logs" / "fault-sample-raises-seed0.log").read_text().count("Traceback") == 1
    assert rows.loc["real-data", "status"] == "ok"


RESUMABLE = """
preset = "smoke"
models = ["vae", "dcgan"]
[train]
steps = 60
checkpoint_every = 20
log_every = 10
[eval]
num_samples = 100
[execution]
workers = 1
"""


def _config(tmp: Path) -> Path:
    path = tmp / "run.toml"
    path.write_text(RESUMABLE)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted, killed or damaged one must end as."""
    tmp = tmp_path_factory.mktemp("reference")
    env = env_with_tests(MGBENCH_CACHE=str(tmp_path_factory.getbasetemp() / "mgbench-cache"))
    done = mgbench("run", "--config", str(_config(tmp)), "--out", str(tmp), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "smoke"


def _values(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "results.csv")
    df = df.drop(columns=timing_columns(df.columns))
    return df[sorted(df.columns)]


def assert_same_results(run_dir: Path, reference: Path) -> None:
    pd.testing.assert_frame_equal(_values(run_dir), _values(reference))
    for model in ("vae", "dcgan"):
        for item in (f"samples/{model}-seed0.png", f"losses/{model}-seed0.csv"):
            assert (run_dir / item).read_bytes() == (reference / item).read_bytes(), item


def _wait(ready, proc: subprocess.Popen, what: str, timeout: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}: {proc.stderr.read()[-3000:] if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _checkpoint_at(run_dir: Path, job: str, step: int):
    path = run_dir / "checkpoints" / f"{job}.json"
    return lambda: path.exists() and f'"step": {step},' in path.read_text()


def _children(pid: int) -> list[int]:
    from test_executors import _processes

    return [p for p, ppid, _ in _processes() if ppid == pid]


def _lock_is_free(run_dir: Path) -> bool:
    with (run_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


def _row_of(results: pd.DataFrame, model: str) -> dict[str, str]:
    """A row's cells as text, empty ones left out (other models' columns)."""
    row = results.set_index("model").loc[model]
    return {k: str(v) for k, v in row.items() if not pd.isna(v)}


SIGNALS = [  # (id, signal, to the process group as a terminal's Ctrl-C does, exit code)
    ("Ctrl-C (SIGINT to the process group)", signal.SIGINT, True, 130),
    ("SIGTERM to the runner", signal.SIGTERM, False, 143),
]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the job processes through /proc")
@pytest.mark.parametrize("signum, group, code", [c[1:] for c in SIGNALS], ids=[c[0] for c in SIGNALS])
def test_an_interrupted_run_ends_its_jobs_quietly_and_resumes_to_the_same_results(
        signum, group, code, reference, tmp_path, capsys):
    run_dir = tmp_path / "smoke"
    proc = subprocess.Popen([sys.executable, "-m", "mgbench", "run", "--config", str(_config(tmp_path)),
                             "--out", str(tmp_path)], env=env_with_tests(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait(_checkpoint_at(run_dir, "dcgan-seed0", 20), proc, "dcgan's step-20 checkpoint")
        jobs = _children(proc.pid)
        assert jobs, "the job runs in a process of its own"
        if signum == signal.SIGTERM:  # meanwhile, a second run on the folder is refused
            assert main(["run", "--resume", str(run_dir)]) == 2
            assert "another mgbench run is using" in capsys.readouterr().err
        (os.killpg if group else os.kill)(proc.pid, signum)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err + out
    assert f"resume with `mgbench run --resume {run_dir}`" in err
    time.sleep(0.5)
    assert not any(Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()
                   for p in jobs), "a job process outlived its run"
    assert _lock_is_free(run_dir)
    stored = pd.read_csv(run_dir / "results.csv")
    assert "vae" in set(stored["model"]) and "dcgan" not in set(stored["model"])  # the finished job's row is kept
    vae_row = _row_of(stored, "vae")
    done = mgbench("run", "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 2 jobs already finished" in done.stderr  # only dcgan ran, from its checkpoint
    resumed = pd.read_csv(run_dir / "results.csv")
    assert _row_of(resumed, "vae") == vae_row  # untouched, timings included
    assert_same_results(run_dir, reference)


@pytest.mark.slow
def test_kill_9_at_several_moments_then_resume_gives_the_same_results(reference, tmp_path):
    """kill -9 of the whole run while it scores the calibration rows, and while dcgan scores its
    samples after its last checkpoint; the resume ends as the uninterrupted run (the kill after
    a mid-training checkpoint is tests/test_reliability.py's)."""
    run_dir = tmp_path / "smoke"
    moments = [
        (lambda: (run_dir / "manifest.json").exists(), "calibration"),
        (_checkpoint_at(run_dir, "dcgan-seed0", 60), "dcgan's last checkpoint"),
    ]
    for ready, what in moments:
        proc = subprocess.Popen([sys.executable, "-m", "mgbench", "run", "--config", str(_config(tmp_path)),
                                 "--out", str(tmp_path)], env=env_with_tests(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait(ready, proc, what)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "dcgan" not in (run_dir / "results.csv").read_text()
    done = mgbench("run", "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_results(run_dir, reference)


def _copy(reference: Path, to: Path) -> Path:
    shutil.copytree(reference, to, ignore=shutil.ignore_patterns("report", ".lock"))
    return to


@pytest.mark.slow
def test_a_copied_run_resumes_where_it_lies_taking_back_rows_and_retraining_a_damaged_checkpoint(
        reference, tmp_path):
    """A run copied elsewhere, resumed by a relative path from another working directory: results.csv
    lost dcgan's and vae's rows; vae's comes back from jobs/vae-seed0.json, dcgan (no job row, its
    checkpoint with 4,000 zero bytes in the weights) trains again from scratch, there and only there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = _copy(reference, elsewhere / "copy")
    before = (reference / "results.csv").read_bytes()
    results = pd.read_csv(run_dir / "results.csv")
    results[~results["model"].isin(["vae", "dcgan"])].to_csv(run_dir / "results.csv", index=False)
    (run_dir / "jobs" / "dcgan-seed0.json").unlink()
    _zero_bytes(run_dir / "checkpoints" / "dcgan-seed0.pt")
    done = mgbench("run", "--resume", "copy", cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "took back the rows of 1 finished job(s)" in done.stderr and "vae-seed0" in done.stderr
    assert "dcgan-seed0.pt is damaged" in done.stderr and "trains again from the start" in done.stderr
    assert "1 of 2 jobs already finished" in done.stderr
    assert (reference / "results.csv").read_bytes() == before  # the original is untouched
    assert (run_dir / "checkpoints" / "dcgan-seed0.pt.damaged").exists()
    assert_same_results(run_dir, reference)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["command"].startswith("mgbench run --config")  # the original command, kept
    assert manifest["resumed_with"] == ["mgbench run --resume copy"]


DAMAGED_RESULTS = [  # (id, how results.csv is damaged)
    ("random bytes", lambda p: p.write_bytes(os.urandom(3000))),
    ("a row cut mid-way and a seed written as text", lambda p: p.write_text(
        _damage_row(_damage_row(p.read_text(), "dcgan", 0, lambda line: line[:40]),
                    "vae", 0, lambda line: _cell(line, 3, "zero")))),
]


@pytest.mark.slow
@pytest.mark.parametrize("damage", [c[1] for c in DAMAGED_RESULTS], ids=[c[0] for c in DAMAGED_RESULTS])
def test_resume_rebuilds_a_damaged_results_file_from_the_jobs_rows(damage, reference, tmp_path):
    run_dir = _copy(reference, tmp_path / "smoke")
    original = run_dir / "results.csv"
    damage(original)
    damaged = original.read_bytes()
    report = mgbench("report", str(run_dir))
    one_message(report.stderr)
    done = mgbench("run", "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "took back the rows of 2 finished job(s)" in done.stderr
    assert "2 of 2 jobs already finished" in done.stderr  # nothing trained again
    assert (run_dir / "results.csv.damaged").read_bytes() == damaged
    assert_same_results(run_dir, reference)


@pytest.mark.slow
def test_a_full_out_disk_fails_the_job_in_one_line_and_the_run_resumes_elsewhere(small_disk, reference, tmp_path):
    """--out on a 256 KiB tmpfs: dcgan's checkpoint does not fit. The job ends failed with the file
    and the room left (or, when even results.csv cannot be written, the run stops with one line);
    copied to a disk with room, the run resumes to the uninterrupted results."""
    done = mgbench("run", "--config", str(_config(tmp_path)), "--out", str(small_disk))
    assert done.returncode in (1, 2), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"disk full at {small_disk / 'smoke'}" in done.stderr
    if done.returncode == 1:
        line = [c for c in done.stderr.splitlines() if "dcgan-seed0" in c and "failed" in c]
        assert line and "disk full at" in line[0]
    run_dir = _copy(small_disk / "smoke", tmp_path / "roomy" / "smoke")
    again = mgbench("run", "--resume", str(run_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_results(run_dir, reference)


@pytest.mark.slow
def test_a_full_cache_disk_stops_the_run_in_one_line(small_disk, tmp_path):
    done = mgbench("run", "--preset", "smoke", "--models", "vae", "--steps", "10", "--out", str(tmp_path),
                   env=env_with_tests(MGBENCH_CACHE=str(small_disk)))
    assert done.returncode == 2, done.stderr[-3000:]
    one_message(done.stderr)
    assert f"mgbench: error: disk full at {small_disk}" in done.stderr
    assert "MGBENCH_CACHE" in done.stderr


SCORE_INPUTS = [  # (id, FAKE, REFERENCE): against the shapes dataset's domain extractor
    ("folder vs folder", "fake_dir", "ref_dir"),
    ("folder vs npz", "fake_dir", "ref.npz"),
    ("npz vs npz", "fake.npz", "ref.npz"),
    ("reference at another resolution", "fake.npz", "ref32.npz"),
]


@pytest.mark.slow
@pytest.mark.parametrize("fake, ref", [c[1:] for c in SCORE_INPUTS], ids=[c[0] for c in SCORE_INPUTS])
def test_score_with_a_datasets_extractor_takes_any_two_inputs(fake, ref, tmp_path_factory, capsys):
    tmp = tmp_path_factory.getbasetemp() / "score-inputs"
    if not tmp.exists():
        rng = np.random.default_rng(0)
        tmp.mkdir()
        for name, side in (("fake", 16), ("ref", 16), ("ref32", 32)):
            images = rng.integers(0, 256, (40, side, side, 3), dtype=np.uint8)
            np.savez(tmp / f"{name}.npz", images)
            folder = tmp / f"{name}_dir"
            folder.mkdir()
            for i, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{i}.png")
    out = tmp / f"{fake}-{ref}.json"
    assert main(["score", str(tmp / fake), str(tmp / ref), "--dataset", "shapes", "--feature-extractor", "domain",
                 "--metrics", "fid", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["num_samples"] == 40 and scores["num_reference"] == 40 and scores["fid"] >= 0
    assert "domain-" in scores["feature_extractor"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_flag_column_stays_true_or_false_when_rows_are_added_to_calibration_rows(tmp_path):
    """A file holding only calibration rows reads its empty ``deterministic`` column as floats; the
    job rows added later must still write False, not 0.0 (a resumed run then equals the original)."""
    from mgbench.results import ResultsStore

    store = ResultsStore(tmp_path / "results.csv")
    store.add({"model": "noise", "seed": 0, "status": "ok", "fid": 1.5})
    store.add({"model": "vae", "seed": 0, "status": "ok", "fid": 2.5, "deterministic": False})
    store.add({"model": "dcgan", "seed": 0, "status": "ok", "fid": 3.5, "deterministic": True})
    store.add({"model": "real-data", "seed": 0, "status": "ok", "fid": 0.5})  # read back as Int64 with NA
    lines = (tmp_path / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("deterministic")
    assert [line.split(",")[column] for line in lines[1:]] == ["True", "", "", "False"]  # dcgan, noise, real-data, vae
