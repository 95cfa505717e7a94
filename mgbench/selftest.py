"""`mgbench selftest --gpu`: one command that checks and measures mgbench on a CUDA machine.

It runs, each part in its own process under its own time limit (a crash, a hang or an error in
one part is a row of the table, and the others still run), within about 8 minutes in all:

* environment: torch, CUDA, cuDNN, the GPU;
* determinism: the first job of a smoke run twice with deterministic algorithms
  (:func:`mgbench.runner.check_determinism`): identical result columns and sample grids, bit for bit;
* precision: DCGAN at 64 px trained in float32 and with bfloat16 autocast from the same seed and
  batches: images per second of each, and how far the losses drift apart;
* dcgan-vs-plain: the DCGAN baseline's training step at 64 px against a plain PyTorch loop of the
  same network (tests/benchmarks/yardsticks.py, pytorch/examples style), images per second and
  achieved TFLOP/s (FLOPs counted by ``torch.utils.flop_counter``);
* scoring-pass: mgbench's Inception pass in images per second against torch-fidelity's forward,
  TF32 off (and, as a stated option, on), with their agreement. Without the real weights file it
  runs random weights of the same layout, and says so: the speed is the real network's;
* smoke and quick: ``mgbench run --preset smoke`` and a short ``--preset quick`` (one seed, fewer
  steps) on the GPU, wall time and job status.

The table goes to stdout and, as ``selftest.csv`` and ``selftest.md``, to ``--out``. Without CUDA
it says so and exits 0 having run nothing; ``--dry-run`` runs the same parts on the CPU at tiny
sizes (a check of the code path, not of a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mgbench import registry

TOTAL_SECONDS = 480  # the whole self-test: 8 minutes
# Each part's limit, in seconds (the time it may take is also cut to what is left of the total).
PARTS: dict[str, int] = {
    "environment": 15,
    "determinism": 80,
    "precision": 40,
    "dcgan-vs-plain": 40,
    "scoring-pass": 60,
    "smoke": 90,
    "quick": 150,
}
MIN_PART_SECONDS = 10  # a part is skipped when less than this is left
DRY_RUN_SLOWDOWN = 3  # the CPU dry run gets 3× the limits: its processes start slower than a GPU machine's
BASELINES = {"dcgan": "dcgan:DCGAN", "vae": "vae:VAE", "cgan": "cgan:CGAN", "lapgan": "lapgan:LAPGAN"}
BASELINE_PACKAGES = ("baselines", "mgbench_baselines")  # the folder in a checkout; its installed name
REPO = Path(__file__).resolve().parents[1]


def register_baselines() -> None:
    """Register the built-in baselines when their entry points are absent (a checkout on PYTHONPATH
    that was never pip-installed, as on a lent GPU machine). ``--plugin mgbench.selftest`` gives the
    job processes of ``mgbench run`` the same."""
    import importlib

    known = registry.list_models()
    for name, target in BASELINES.items():
        if name in known:
            continue
        module, cls = target.split(":")
        for package in BASELINE_PACKAGES:
            with contextlib.suppress(ModuleNotFoundError):
                registry.register_model(name)(getattr(importlib.import_module(f"{package}.{module}"), cls))
                break


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each part runs: on a GPU for real, on the CPU (``--dry-run``) tiny."""

    device: str
    train_px: int = 64  # DCGAN resolution for the speed parts
    width: int = 64  # DCGAN ngf = ndf (the paper's 64 at 64 px)
    batch: int = 128
    warmup_steps: int = 5
    timed_steps: int = 30
    score_images: int = 2000  # images through the Inception pass
    score_batch: int = 200
    run_flags: tuple[str, ...] = ()  # extra `mgbench run` flags for smoke and quick
    quick_flags: tuple[str, ...] = ("--seeds", "0", "--steps", "200", "--workers", "1")
    determinism: dict[str, Any] = dataclasses.field(default_factory=lambda: {"models": ["dcgan"]})

    @classmethod
    def tiny(cls) -> Sizes:
        """CPU, seconds per part: the same code, sizes that only prove it runs."""
        small_run = {"models": ["dcgan"], "data": {"train_size": 32, "reference_size": 10},
                     "train": {"steps": 2, "batch_size": 8, "checkpoint_every": 2, "log_every": 1},
                     "eval": {"num_samples": 10, "lpips_pairs": 5, "swd_images": 10}}
        flags = ("--models", "dcgan", "--steps", "2", "--batch-size", "8", "--num-samples", "10")
        return cls(device="cpu", train_px=16, width=8, batch=4, warmup_steps=1, timed_steps=2, score_images=4,
                   score_batch=2, run_flags=flags, quick_flags=("--seeds", "0", "--workers", "1"),
                   determinism=small_run)

    @property
    def dry(self) -> bool:
        return self.device == "cpu"


Row = dict[str, Any]


def _row(part: str, measure: str, value: Any, note: str = "") -> Row:
    return {"part": part, "measure": measure, "value": value, "note": note}


def run_bounded(cmd: list[str], timeout: float, env: dict[str, str]) -> tuple[int | None, str, str]:
    """Run ``cmd``; at ``timeout`` kill it with all its descendants (e.g. the job processes of
    `mgbench run`, which may sit in sessions of their own). Returns (exit code or None on
    time-out, stdout, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = proc.communicate()
        return None, out, err


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and every process below it, found through /proc (Linux) before any dies,
    so that none is orphaned first and missed."""
    import signal

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    todo, tree = [root], []
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- the parts ---------------------------------------------------------------------------------------


def part_environment(sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    rows = [_row("environment", "torch", torch.__version__), _row("environment", "python", platform.python_version())]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        rows += [_row("environment", "gpu", props.name, f"{props.total_memory / 2**30:.0f} GiB, "
                      f"compute {props.major}.{props.minor}, {props.multi_processor_count} SMs"),
                 _row("environment", "cuda / cudnn", f"{torch.version.cuda} / {torch.backends.cudnn.version()}")]
    else:
        rows.append(_row("environment", "gpu", "none", "dry run on the CPU" if sizes.dry else ""))
    from importlib.metadata import PackageNotFoundError, version

    for module, dist in (("torch_fidelity", "torch-fidelity"), ("lpips", "lpips"), ("torchvision", "torchvision")):
        try:
            __import__(module)
            found = getattr(sys.modules[module], "__version__", None)
            with contextlib.suppress(PackageNotFoundError):
                found = found or version(dist)
        except ImportError as err:
            found = f"missing ({err})"
        rows.append(_row("environment", module, found or "?"))
    return rows


def _run_config(sizes: Sizes, workdir: Path, name: str, extra: dict[str, Any]) -> Any:
    from mgbench import presets
    from mgbench.config import RunConfig, merge

    raw = merge(dict(presets.preset("smoke")), {"device": sizes.device, "out": str(workdir / "runs"), "name": name,
                                               "plugins": ["mgbench.selftest"], **extra})
    # the preset's hyper-parameters of the models that run only (as `mgbench run --models` does)
    raw["model_overrides"] = {k: v for k, v in raw.get("model_overrides", {}).items() if k in raw["models"]}
    if sizes.dry:
        raw = merge(raw, {"eval": {"feature_extractor": "inception", "weights": str(random_weights(workdir))}})
    return RunConfig.from_dict(raw)


def part_determinism(sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    import io

    from mgbench.runner import check_determinism

    config = _run_config(sizes, workdir, "determinism", {"deterministic": True, **sizes.determinism})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = check_determinism(config)
    text = " ".join(out.getvalue().split())[:300]
    return [_row("determinism", "two deterministic runs identical", "yes" if code == 0 else "NO", text)]


def _dcgan(sizes: Sizes, device: torch.device) -> Any:
    """The DCGAN baseline in float32 (a model-level ``bf16`` switch, where the baseline has one, off:
    precision is applied from outside, as the harness's run-level ``precision`` does)."""
    from mgbench.contract import DataSpec

    overrides: dict[str, Any] = {"ngf": sizes.width, "ndf": sizes.width}
    if "bf16" in {f.name for f in dataclasses.fields(registry.get_model_class("dcgan").Config)}:
        overrides["bf16"] = False
    torch.manual_seed(0)
    return registry.create_model("dcgan", DataSpec(3, sizes.train_px, 16), overrides, device)


def _batch(sizes: Sizes, device: torch.device) -> torch.Tensor:
    from mgbench.data import load_dataset, to_float

    data = load_dataset("shapes", "train", resolution=sizes.train_px, train_size=sizes.batch, seed=0)
    return to_float(data.images).to(device)


def _images_per_second(step: Callable[[], Any], sizes: Sizes, device: torch.device) -> float:
    for _ in range(sizes.warmup_steps):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(sizes.timed_steps):
        step()
    _sync(device)
    return sizes.timed_steps * sizes.batch / (time.perf_counter() - start)


def part_precision(sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    device = torch.device(sizes.device)
    batch = _batch(sizes, device)
    rows, losses = [], {}
    for label, bf16 in (("float32", False), ("bf16 autocast", True)):
        model = _dcgan(sizes, device)
        model.train()
        record: list[tuple[float, float]] = []

        def step(model: Any = model, record: list = record, bf16: bool = bf16) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):  # as mgbench.train applies it
                out = model.train_step(batch, None)
            record.append((out["d_loss"], out["g_loss"]))

        rate = _images_per_second(step, sizes, device)
        losses[label] = torch.tensor([[float(d), float(g)] for d, g in record])
        rows.append(_row("precision", f"DCGAN {sizes.train_px}px train img/s, {label}", round(rate, 1),
                         f"batch {sizes.batch}, width {sizes.width}"))
    a, b = losses["float32"], losses["bf16 autocast"]
    tail = max(1, len(a) // 3)
    rows.append(_row("precision", "speed-up bf16 / float32", round(rows[1]["value"] / rows[0]["value"], 2)))
    rows.append(_row("precision", "loss drift bf16 vs float32: max abs Δ d_loss, g_loss",
                     f"{(a[:, 0] - b[:, 0]).abs().max():.4f}, {(a[:, 1] - b[:, 1]).abs().max():.4f}",
                     f"same seed and batch, {len(a)} steps; last third mean d_loss {a[-tail:, 0].mean():.4f} "
                     f"vs {b[-tail:, 0].mean():.4f}"))
    return rows


def _yardsticks() -> Any:
    """tests/benchmarks/yardsticks.py of this checkout (not part of an installed package)."""
    folder = REPO / "tests" / "benchmarks"
    if not (folder / "yardsticks.py").exists():
        raise FileNotFoundError(f"{folder / 'yardsticks.py'} not found: run the self-test from a checkout")
    sys.path.insert(0, str(folder))
    import yardsticks

    return yardsticks


def part_dcgan_vs_plain(sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    from mgbench.evaluate import cost

    device = torch.device(sizes.device)
    batch = _batch(sizes, device)
    ours = _dcgan(sizes, device)
    ours.train()
    yardsticks = _yardsticks()
    previous = torch.get_default_device()
    torch.set_default_device(device)  # the plain loop makes its tensors with factory defaults, as the example
    try:
        plain = yardsticks.PlainDCGAN(sizes.train_px, ngf=sizes.width, ndf=sizes.width)
        rates: dict[str, list[float]] = {"mgbench DCGAN": [], "plain PyTorch loop": []}
        steps = {"mgbench DCGAN": lambda: ours.train_step(batch, None), "plain PyTorch loop": lambda: plain.step(batch)}
        for _ in range(2):  # interleaved rounds
            for name, step in steps.items():
                rates[name].append(_images_per_second(step, sizes, device))
    finally:
        torch.set_default_device(previous)
    flops = cost(ours, batch, None)["train_gflops_per_img"] * 1e9
    rows = []
    for name, values in rates.items():
        rate = max(values)
        rows.append(_row("dcgan-vs-plain", f"{name} train img/s", round(rate, 1),
                         f"{sizes.train_px}px, batch {sizes.batch}, float32; {rate * flops / 1e12:.3g} TFLOP/s"))
    rows.append(_row("dcgan-vs-plain", "ratio mgbench / plain", round(rows[0]["value"] / rows[1]["value"], 2),
                     f"{flops / 1e9:.3g} GFLOP per training image"))
    return rows


def random_weights(workdir: Path) -> Path:
    """An Inception weight file of torch-fidelity's layout with PyTorch's default initial values:
    the real network's cost, meaningless scores. Written once per work folder."""
    from unittest import mock

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from mgbench.features.inception import WEIGHTS_FILE, _as_buffer

    path = workdir / "random-inception" / WEIGHTS_FILE
    if not path.exists():
        with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, strict=True: None):
            net = FeatureExtractorInceptionV3("layout", ["2048"], feature_extractor_weights_path=_as_buffer({}))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    return path


def part_scoring_pass(sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    from mgbench.data import load_dataset
    from mgbench.errors import UsageError
    from mgbench.features.extract import extract_features
    from mgbench.features.inception import InceptionExtractor, find_inception_weights

    try:
        weights, label = find_inception_weights(None), "the real weights"
    except UsageError:
        weights, label = random_weights(workdir), "RANDOM weights of the real layout (timing only)"
    device = torch.device(sizes.device)
    images = load_dataset("shapes", "train", resolution=32, train_size=sizes.score_images, seed=0).images
    fast = InceptionExtractor(weights, device)
    contenders = {"mgbench pass, TF32 off": (fast, False),
                  "torch-fidelity forward, TF32 off": (InceptionExtractor(weights, device, fast=False), False),
                  "mgbench pass, TF32 on (option)": (fast, True)}
    rows, features = [], {}
    for name, (extractor, tf32) in contenders.items():
        extractor.tf32 = tf32
        extract_features(extractor, images[: sizes.score_batch], sizes.score_batch)  # warm-up, cuDNN's choice
        _sync(device)
        start = time.perf_counter()
        features[name] = extract_features(extractor, images, sizes.score_batch)["pool"]
        _sync(device)
        rate = len(images) / (time.perf_counter() - start)
        rows.append(_row("scoring-pass", f"{name} img/s", round(rate, 1),
                         f"{len(images)} images 32px→299, batch {sizes.score_batch}; {label}"))
    reference = features["torch-fidelity forward, TF32 off"]
    for name in ("mgbench pass, TF32 off", "mgbench pass, TF32 on (option)"):
        err = float((features[name] - reference).abs().max() / reference.abs().max())
        rows.append(_row("scoring-pass", f"{name}: pool vs torch-fidelity", f"{err:.1e}",
                         "max |Δ| / max |ref|; bound 1e-5 with TF32 off"))
    rows.append(_row("scoring-pass", "speed-up mgbench / torch-fidelity",
                     round(rows[0]["value"] / rows[1]["value"], 2), "TF32 off"))
    return rows


def _mgbench_run(sizes: Sizes, workdir: Path, name: str, flags: list[str], timeout: float) -> list[Row]:
    cmd = [sys.executable, "-m", "mgbench", "run", *flags, "--device", sizes.device, "--out", str(workdir / "runs"),
           "--name", name, "--plugin", "mgbench.selftest", *sizes.run_flags]
    if sizes.dry:
        config = workdir / f"{name}.toml"
        config.write_text(_dry_run_toml(workdir))
        cmd += ["--config", str(config)]
    start = time.perf_counter()
    code, _, stderr = run_bounded(cmd, timeout, _child_env(workdir))
    wall = time.perf_counter() - start
    results = workdir / "runs" / name / "results.csv"
    jobs = list(csv.DictReader(results.open())) if results.exists() else []
    ok = sum(row.get("status") == "ok" for row in jobs)
    fids = ", ".join(f"{r.get('model')} {float(r['fid']):.1f}" for r in jobs if r.get("fid") not in (None, ""))
    tail = " ".join(stderr.strip().splitlines()[-1:])[:200]
    status = "ok" if code == 0 else "timeout" if code is None else "failed"
    return [{**_row(name, f"mgbench run {' '.join(flags)}: wall s", round(wall, 1),
                    ("TIMED OUT; " if code is None else f"exit {code}; ") + f"jobs ok {ok}/{len(jobs)}"
                    + (f"; FID {fids}" if fids else "") + (f"; {tail}" if code else "")), "status": status}]


def _dry_run_toml(workdir: Path) -> str:
    """The dry run's `mgbench run` settings beyond its flags: tiny data and metrics, random Inception."""
    return ("[data]\ntrain_size = 32\nreference_size = 10\n[eval]\nlpips_pairs = 5\nswd_images = 10\n"
            f"feature_extractor = \"inception\"\nweights = \"{random_weights(workdir)}\"\n")


def part_smoke(sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    return _mgbench_run(sizes, workdir, "smoke", ["--preset", "smoke"], timeout)


def part_quick(sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    return _mgbench_run(sizes, workdir, "quick", ["--preset", "quick", *sizes.quick_flags], timeout)


# Each part: (sizes, work folder, seconds it may take) → rows. Only smoke and quick need the limit
# themselves (to stop their `mgbench run` and still report); the others are stopped from outside.
PART_FUNCTIONS: dict[str, Callable[[Sizes, Path, float], list[Row]]] = {
    "environment": part_environment, "determinism": part_determinism, "precision": part_precision,
    "dcgan-vs-plain": part_dcgan_vs_plain, "scoring-pass": part_scoring_pass, "smoke": part_smoke,
    "quick": part_quick,
}


# --- running the parts ---------------------------------------------------------------------------------


def _child_env(workdir: Path) -> dict[str, str]:
    """The parts' processes: this checkout first on the path, caches in the work folder."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, "MGBENCH_CACHE": str(workdir / "cache"), "PYTHONUNBUFFERED": "1"}


def run_part(name: str, sizes: Sizes, workdir: Path, timeout: float) -> list[Row]:
    """One part in a child process (``python -m mgbench.selftest --part NAME``), its rows from
    the child's last line of output; a failure or a time-out becomes a row."""
    # The child is told the wall-clock time its limit ends (its own start-up, seconds under load,
    # counts): smoke and quick stop their `mgbench run` before it and still report.
    cmd = [sys.executable, "-m", "mgbench.selftest", "--part", name, "--workdir", str(workdir),
           "--deadline", str(time.time() + timeout)]
    if sizes.dry:
        cmd.append("--dry-run")
    start = time.perf_counter()
    code, stdout, stderr = run_bounded(cmd, timeout, _child_env(workdir))
    seconds = round(time.perf_counter() - start, 1)
    if code is None:
        return [{**_row(name, "(part)", "TIMED OUT", f"stopped after {timeout:.0f} s"), "status": "timeout",
                 "seconds": seconds}]
    lines = stdout.strip().splitlines()
    try:
        rows = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        rows = None
    if code != 0 or not isinstance(rows, list):
        error = (stderr or stdout).strip().splitlines()[-1:] or [f"exit {code}"]
        return [{**_row(name, "(part)", "FAILED", error[0][:300]), "status": "failed", "seconds": seconds}]
    return [{**row, "status": row.pop("status", "ok"), "seconds": seconds} for row in rows]


def part_main(name: str, sizes: Sizes, workdir: Path, deadline: float) -> int:
    """In the child: run one part, print its rows as one JSON line (a Python error: a FAILED row)."""
    register_baselines()
    try:
        function = PART_FUNCTIONS[name]
        rows = function(sizes, workdir, max(1.0, deadline - time.time() - 10))  # room to report before the kill
    except Exception as err:  # any failure of a part is a row of the table, never the end of the self-test
        where = traceback.extract_tb(err.__traceback__)[-1]
        rows = [{**_row(name, "(part)", "FAILED", f"{type(err).__name__}: {err} "
                        f"({Path(where.filename).name}:{where.lineno})"[:300]), "status": "failed"}]
    print(json.dumps(rows, default=str))
    return 0


def run_selftest(sizes: Sizes, out: Path | None, parts: list[str] | None = None,
                 total_seconds: float = TOTAL_SECONDS) -> list[Row]:
    """Every part (or ``parts``) in order within ``total_seconds``; writes the table to ``out``."""
    rows: list[Row] = []
    deadline = time.monotonic() + total_seconds
    with tempfile.TemporaryDirectory(prefix="mgbench-selftest-") as tmp:
        workdir = Path(tmp)
        print(format_rows([]), flush=True)  # the header; each part's rows follow as they come
        for name in parts or list(PARTS):
            left = deadline - time.monotonic()
            if left < MIN_PART_SECONDS:
                rows.append({**_row(name, "(part)", "SKIPPED", f"{left:.0f} s of the {total_seconds:.0f} s left"),
                             "status": "skipped", "seconds": 0.0})
                print(format_rows(rows[-1:], header=False), flush=True)
                continue
            limit = min(PARTS[name] * (DRY_RUN_SLOWDOWN if sizes.dry else 1), left)
            part_rows = run_part(name, sizes, workdir, limit)
            rows += part_rows
            print(format_rows(part_rows, header=False), flush=True)
    if out is not None:
        write_table(rows, out)
    return rows


COLUMNS = ("part", "measure", "value", "note", "status", "seconds")


def format_rows(rows: list[Row], header: bool = True) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] if header else []
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")).replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines)


def write_table(rows: list[Row], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "selftest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "selftest.md").write_text(format_rows(rows) + "\n")


def selftest_command(args: argparse.Namespace) -> int:
    if args.part:  # a child of run_part
        sizes = Sizes.tiny() if args.dry_run else Sizes(device="cuda")
        return part_main(args.part, sizes, Path(args.workdir), args.deadline)
    dry = args.dry_run or args.device == "cpu"
    if not dry and not torch.cuda.is_available():
        print("mgbench selftest: no CUDA device here: nothing run (use --dry-run to check the code path on the CPU)")
        return 0
    sizes = Sizes.tiny() if dry else Sizes(device="cuda")
    started = time.perf_counter()
    total = TOTAL_SECONDS * (DRY_RUN_SLOWDOWN if dry else 1)
    rows = run_selftest(sizes, Path(args.out) if args.out else None, args.parts or None, total)
    bad = [r for r in rows if r["status"] != "ok"]
    print(f"mgbench selftest: {len(rows)} rows in {time.perf_counter() - started:.0f} s, "
          f"{len(bad)} not ok" + (f"; table written to {args.out}" if args.out else ""))
    return 0


def add_command(subparsers: Any) -> None:
    p = subparsers.add_parser("selftest", help="check and measure mgbench on this machine's GPU (about 8 minutes)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=selftest_command)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", action="store_true", help="run on the GPU (the default; kept for the documented command)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: the same as --dry-run")
    p.add_argument("--dry-run", action="store_true", help="the same parts on the CPU at tiny sizes")
    p.add_argument("--out", help="folder for selftest.csv and selftest.md")
    p.add_argument("--parts", nargs="*", choices=list(PARTS), help="only these parts (default: all)")
    p.add_argument("--part", help=argparse.SUPPRESS)  # internal: one part, in a child process
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)  # time.time() at the limit


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m mgbench.selftest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(selftest_command(parser.parse_args()))
else:
    # Imported as a --plugin by the job processes of `mgbench run`: the baselines without entry points.
    with contextlib.suppress(Exception):
        register_baselines()
