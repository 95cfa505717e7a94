"""Heavy performance figures that do not belong in CI, printed as tables.

    python tests/benchmarks/whole_run.py train     # training step: each baseline against its plain loop
    python tests/benchmarks/whole_run.py adam      # the Adam step alone: for-loop, foreach, fused
    python tests/benchmarks/whole_run.py harness   # mgbench.train.train against a bare loop of train_step
    python tests/benchmarks/whole_run.py suite     # the whole metric suite against torch-fidelity's FID alone
    python tests/benchmarks/whole_run.py suite-beyond --n 10000   # the suite's cost beyond the feature pass
    python tests/benchmarks/whole_run.py memory    # peak RSS of prdc (k-NN) at N = 10k, 50k, 2048-d
    python tests/benchmarks/whole_run.py command -- mgbench run   # wall time and peak RSS of a whole command

The machine these run on may be shared: every comparison runs its contenders interleaved
(A, B, A, B, ...) so that a change of background load hits all of them alike, and reports the
median and the minimum over rounds. ``--threads`` sets torch's intra-op threads (default 1: on
a loaded 2-core machine one thread gives far steadier timings than two).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench_setup, and the tests' fake_weights


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, calls: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``rounds`` times, the contenders taking turns."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def _ms(seconds: list[float]) -> tuple[float, float]:
    return statistics.median(seconds) * 1e3, min(seconds) * 1e3


# --- training step -------------------------------------------------------------------------


def train_table(args: argparse.Namespace) -> None:
    from bench_setup import model_batch, trainer
    from yardsticks import plain_loop

    from mgbench.contract import DataSpec
    from mgbench.registry import create_model

    cases = [("dcgan", 64, {}), ("dcgan", 32, {}), ("cgan", 32, {}), ("vae", 32, {}), ("lapgan", 32, {})]
    if args.models:
        cases = [c for c in cases if c[0] in args.models.split(",")]
    print(f"| model | px | plain ms/step (median / min) | ours ms/step (median / min) | ratio median | ratio min |"
          f"{' ours fp32 ms (median) | ratio |' if args.fp32 else ''}")
    print(f"|---|---|---|---|---|---|{'---|---|' if args.fp32 else ''}")
    for name, res, overrides in cases:
        images, labels = model_batch(res, 64)
        torch.manual_seed(0)
        ours = create_model(name, DataSpec(3, res, 16), overrides, "cpu")
        plain = plain_loop(name, res, overrides)
        contenders = {"plain": trainer(plain.step, images, labels if name == "cgan" else None),
                      "ours": trainer(ours.train_step, images, labels if ours.conditional else None)}
        if args.fp32:
            torch.manual_seed(0)
            full = create_model(name, DataSpec(3, res, 16), {**overrides, "bf16": False}, "cpu")
            contenders["fp32"] = trainer(full.train_step, images, labels if full.conditional else None)
        for fn in contenders.values():  # warm-up: allocation, kernel choice
            fn()
            fn()
        t = interleaved(contenders, args.rounds, args.calls)
        (pm, pn), (om, on) = _ms(t["plain"]), _ms(t["ours"])
        row = f"| {name} | {res} | {pm:.0f} / {pn:.0f} | {om:.0f} / {on:.0f} | {pm / om:.2f} | {pn / on:.2f} |"
        if args.fp32:
            bm, _ = _ms(t["fp32"])
            row += f" {bm:.0f} | {pm / bm:.2f} |"
        print(row, flush=True)


# --- optimiser step ---------------------------------------------------------------------------


def adam_table(args: argparse.Namespace) -> None:
    """The Adam step alone on each baseline's parameters: for-loop, foreach and fused kernels."""
    from bench_setup import our_model

    kinds = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    print("| model | px | parameters (tensors) | " + " | ".join(f"{k} ms (median / min)" for k in kinds) + " |")
    print("|---|---|---|" + "---|" * len(kinds))
    for name, res in (("dcgan", 64), ("dcgan", 32), ("vae", 32), ("lapgan", 32)):
        model = our_model(name, res)
        groups = [list(net.parameters()) for net in model.networks.values()]  # one optimiser per network
        for params in groups:
            for p in params:
                p.grad = torch.randn_like(p)
        contenders = {}
        for kind, flags in kinds.items():
            opts = [torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **flags) for params in groups]
            contenders[kind] = lambda opts=opts: [o.step() for o in opts]
        for fn in contenders.values():
            fn()
        t = interleaved(contenders, args.rounds, args.calls)
        count = sum(p.numel() for params in groups for p in params)
        tensors = sum(len(params) for params in groups)
        cells = " | ".join("{:.1f} / {:.1f}".format(*_ms(t[k])) for k in kinds)
        print(f"| {name} | {res} | {count:,} ({tensors}) | {cells} |", flush=True)


# --- harness loop ---------------------------------------------------------------------------


def harness_table(args: argparse.Namespace) -> None:
    from bench_setup import NullModel, bare_loop, harness_loop, harness_model

    steps = args.steps
    with tempfile.TemporaryDirectory() as tmp:
        model, data, sampler = harness_model()
        contenders = {"bare": lambda: bare_loop(model, data, sampler, steps),
                      "harness": lambda: harness_loop(model, data, sampler, steps, Path(tmp))}
        for fn in contenders.values():
            fn()
        t = interleaved(contenders, args.rounds)
        # The same two loops around a model that does nothing: the loop's own cost per step.
        null, null_steps = NullModel(data.spec()), 2000
        nulls = {"bare": lambda: bare_loop(null, data, sampler, null_steps),
                 "harness": lambda: harness_loop(null, data, sampler, null_steps, Path(tmp))}
        n = interleaved(nulls, args.rounds)
    (bm, bn), (hm, hn) = _ms(t["bare"]), _ms(t["harness"])
    (nbm, nbn), (nhm, nhn) = (tuple(v * 1e3 / null_steps for v in _ms(n[k])) for k in ("bare", "harness"))
    print(f"| loop | ms per {steps} DCGAN steps (median / min) | µs per no-op step (median / min) |")
    print("|---|---|---|")
    print(f"| bare train_step loop | {bm:.0f} / {bn:.0f} | {nbm:.0f} / {nbn:.0f} |")
    print(f"| mgbench.train.train | {hm:.0f} / {hn:.0f} | {nhm:.0f} / {nhn:.0f} |")
    overhead_ms = (nhm - nbm) / 1e3  # medians
    step_ms = bm / steps
    print(f"ratio bare/harness: median {bm / hm:.3f}, min {bn / hn:.3f} (target ≥ 0.97)")
    print(f"harness bookkeeping {overhead_ms * 1e3:.0f} µs/step (no-op medians) beside a {step_ms:.0f} ms step: "
          f"ratio {step_ms / (step_ms + overhead_ms):.4f}")


# --- metric suite against torch-fidelity ------------------------------------------------------


def suite_table(args: argparse.Namespace) -> None:
    for kind, n in (("domain", args.n_domain), ("inception", args.n_inception)):
        if n > 0:
            with tempfile.TemporaryDirectory() as tmp:
                suite_row(kind, n, Path(args.workdir or tmp), args)  # a workdir keeps the reference cached


def suite_row(kind: str, n: int, folder: Path, args: argparse.Namespace) -> None:
    from bench_setup import SuiteSetup

    start = time.perf_counter()
    setup = SuiteSetup(kind, n, folder)
    print(f"{kind} extractor, N = {n}: setup (the reference pass unless cached) "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    if args.rounds <= 0:
        return
    fid: dict[str, float] = {}  # each contender's FID: the two must agree
    contenders = {"mgbench suite": lambda: fid.update(ours=setup.suite()["fid"]),
                  "torch-fidelity FID": lambda: fid.update(theirs=setup.fidelity_fid()["frechet_inception_distance"])}
    t = interleaved(contenders, args.rounds)
    (sm, sn), (fm, fn) = _ms(t["mgbench suite"]), _ms(t["torch-fidelity FID"])
    print(f"{kind} extractor, N = {n}: mgbench suite {sm / 1e3:.2f} s (min {sn / 1e3:.2f}), "
          f"torch-fidelity FID alone {fm / 1e3:.2f} s (min {fn / 1e3:.2f}); "
          f"ratio {sm / fm:.2f} (min/min {sn / fn:.2f}), target ≤ 1.5; "
          f"FID ours {fid['ours']:.6g}, torch-fidelity's {fid['theirs']:.6g}", flush=True)
    if args.breakdown:
        for part, seconds in setup.breakdown().items():
            print(f"    {part:28s} {seconds:8.2f} s")


def suite_beyond_table(args: argparse.Namespace) -> None:
    """What the suite costs beyond its feature pass, at N samples with Inception-sized features.

    A quick estimate, taking the feature pass as the same work for the suite and for
    torch-fidelity's FID, so that the ratio at N is (F·N + ours) / (F·N + theirs), F the pass's
    seconds per image. This times "ours" (Evaluator.score with the pass replaced by random 2048-d
    pool and 1008-d logit features) and "theirs" (torch-fidelity's FID from the same features) at
    N; F comes from ``--feature-s-per-img``. It underestimates: at N = 10k it gave 1.02 where the
    whole measurement (``suite --n-inception 10000 --workdir DIR``) gave 1.14, the two passes
    differing in batch size and in the layers they keep.
    """
    from unittest import mock

    import torch_fidelity.metric_fid as tf_fid
    from bench_setup import SuiteSetup

    from mgbench.metrics.frechet import feature_statistics

    n, g = args.n, torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        setup = SuiteSetup("domain", n, Path(tmp))
        ev = setup.evaluator
        real = torch.randn(n, 2048, generator=g)
        fake = {"pool": torch.randn(n, 2048, generator=g).mul_(1.1), "logits": torch.randn(n, 1008, generator=g)}
        ev.reference_features, ev.reference_stats = {"pool": real}, feature_statistics(real)
        with mock.patch("mgbench.evaluate.extract_features", lambda extractor, images: fake):
            ours = interleaved({"suite beyond features": lambda: ev.score(setup.samples, seed=0)}, args.rounds)
        ref_stats = tf_fid.fid_features_to_statistics(real)
        theirs = interleaved({"fid": lambda: tf_fid.fid_statistics_to_metric(
            tf_fid.fid_features_to_statistics(fake["pool"]), ref_stats, verbose=False)}, args.rounds)
    o, t = statistics.median(ours["suite beyond features"]), statistics.median(theirs["fid"])
    print(f"N = {n}, 2048-d: the suite beyond its feature pass {o:.1f} s; torch-fidelity's FID from "
          f"the same features {t:.1f} s (medians of {args.rounds})")
    if args.feature_s_per_img:
        f = args.feature_s_per_img * n
        print(f"with a feature pass of {args.feature_s_per_img} s/img ({f:.0f} s at N): "
              f"ratio ({f:.0f} + {o:.1f}) / ({f:.0f} + {t:.1f}) = {(f + o) / (f + t):.3f}, target ≤ 1.5")


# --- prdc memory -----------------------------------------------------------------------------


def _rss_mib() -> float:
    from mgbench.job import process_peak_rss_mb  # not ru_maxrss: that inherits the parent's peak

    return process_peak_rss_mb()


def memory_child(n: int, d: int, dtype: str) -> None:
    """Run prdc once on N×d random features (real and fake); print peak RSS before and after (MiB)."""
    from mgbench.metrics.knn import prdc

    g = torch.Generator().manual_seed(0)
    real = torch.randn(n, d, generator=g, dtype=getattr(torch, dtype))
    fake = torch.randn(n, d, generator=g, dtype=getattr(torch, dtype)).mul_(1.1)  # in place: no temporary
    before = _rss_mib()
    start = time.perf_counter()
    prdc(real=real, fake=fake)
    print(json.dumps({"n": n, "d": d, "dtype": dtype, "rss_with_inputs_mib": round(before, 1),
                      "rss_peak_mib": round(_rss_mib(), 1), "seconds": round(time.perf_counter() - start, 1)}))


def memory_table(args: argparse.Namespace) -> None:
    baseline = subprocess.run([sys.executable, "-c", "import resource, torch, mgbench.metrics.knn;"
                               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                              capture_output=True, text=True, check=True)
    base = float(baseline.stdout)
    print(f"interpreter + torch + mgbench: {base:.0f} MiB peak RSS")
    print("| N | d | dtype | inputs 2·N·d MiB | RSS with inputs MiB | peak RSS MiB | prdc's own peak MiB "
          "| prdc's own / (N·d·bytes) | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for d in args.dims:
            for dtype in args.dtypes:
                cmd = [sys.executable, __file__, "--threads", str(args.threads), "memory-child", str(n), str(d), dtype]
                child = subprocess.run(cmd, capture_output=True, text=True, check=True)
                out = json.loads(child.stdout.splitlines()[-1])
                inputs = 2 * n * d * torch.tensor([], dtype=getattr(torch, dtype)).element_size() / 2**20
                own = out["rss_peak_mib"] - out["rss_with_inputs_mib"]  # what prdc adds on top of its inputs
                print(f"| {n} | {d} | {dtype} | {inputs:.0f} | {out['rss_with_inputs_mib']:.0f} | "
                      f"{out['rss_peak_mib']:.0f} | {own:.0f} | {own / (inputs / 2):.2f} | {out['seconds']} |",
                      flush=True)


# --- a whole command -------------------------------------------------------------------------


def _pss_mib(pid: int) -> float:
    """Proportional set size: shared pages (torch's libraries) divided among the processes that map them."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _tree_memory_mib(root: int) -> tuple[float, float, float]:
    """(sum of RSS, largest single RSS, sum of PSS) over ``root`` and its descendants, in MiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(pid)  # field 4: parent pid
            rss[pid] = int(fields[21]) * resource.getpagesize() / 2**20  # field 24: resident pages
    todo, tree = [root], []
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    sizes = [rss.get(pid, 0.0) for pid in tree]
    return sum(sizes), max(sizes), sum(_pss_mib(pid) for pid in tree)


def command_figures(args: argparse.Namespace) -> None:
    """Wall time and peak memory of one command's whole process tree, sampled every 0.2 s: the
    sum of RSS (counts torch's shared libraries once per process) and the sum of PSS (once)."""
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak_rss = peak_single = peak_pss = 0.0
    while proc.poll() is None:
        total, single, pss = _tree_memory_mib(proc.pid)
        peak_rss, peak_single, peak_pss = max(peak_rss, total), max(peak_single, single), max(peak_pss, pss)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    print(f"{' '.join(cmd)}: exit {proc.returncode}, wall {wall:.0f} s; peak memory of the process tree: "
          f"RSS summed {peak_rss:.0f} MiB, PSS summed {peak_pss:.0f} MiB, largest single process {peak_single:.0f} MiB")
    sys.exit(proc.returncode)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2, help="steps per contender per round")
    p.add_argument("--models", default="", help="comma-separated subset, e.g. dcgan,vae")
    p.add_argument("--fp32", action="store_true", help="add each baseline with bf16=False (the default is native bf16)")
    p = sub.add_parser("adam")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--calls", type=int, default=3)
    p = sub.add_parser("harness")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    p = sub.add_parser("suite")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n-domain", type=int, default=2_000, help="samples scored with the domain extractor (0: skip)")
    p.add_argument("--n-inception", type=int, default=0,
                   help="samples scored with Inception-v3 (random weights; 0.12-0.14 s per image per pass on 2 cores)")
    p.add_argument("--breakdown", action="store_true", help="time each metric of the suite once")
    p.add_argument("--workdir", default="", help="keep caches here (the reference pass then runs once); "
                   "--rounds 0 only fills them")
    p = sub.add_parser("suite-beyond")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--feature-s-per-img", type=float, default=0.0, help="the feature pass's s/img, measured")
    p = sub.add_parser("memory")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    p.add_argument("--dims", type=int, nargs="+", default=[2048])
    p.add_argument("--dtypes", nargs="+", default=["float32"])
    p = sub.add_parser("command")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    p = sub.add_parser("memory-child")
    p.add_argument("n", type=int)
    p.add_argument("d", type=int)
    p.add_argument("dtype")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with contextlib.suppress(BrokenPipeError):
        commands = {"train": train_table, "adam": adam_table, "harness": harness_table, "suite": suite_table,
                    "suite-beyond": suite_beyond_table, "memory": memory_table, "command": command_figures,
                    "memory-child": lambda a: memory_child(a.n, a.d, a.dtype)}
        commands[args.command](args)


if __name__ == "__main__":
    main()
