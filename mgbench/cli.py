"""The `mgbench` command line. Bad input exits with code 2 and one message, no traceback
(``--debug`` shows it); `mgbench run` exits 1 when some jobs did not finish ok.

Every sub-command imports what it needs when it runs, so `mgbench list --metrics` or
`mgbench report` start without training machinery.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from mgbench import config, console, presets
from mgbench.config import RunConfig
from mgbench.errors import UsageError
from mgbench.files import is_disk_full

EXIT_USAGE = 2


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(part) for part in text.split(",") if part]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def _steps(text: str) -> int | list[int]:
    """``--eval-every``: a number of steps, or a comma-separated list of steps."""
    if "," not in text:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of steps or a list such as 100,500, "
                                             f"got {text!r}") from None
    return _csv(int)(text)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The run flags given on the command line, as a TOML-shaped dict (absent flags left out)."""
    flags: dict[str, Any] = {
        "models": args.models, "seeds": args.seeds, "device": args.device, "out": args.out,
        "name": args.name, "plugins": args.plugin or None, "precision": args.precision, "threads": args.threads,
        "deterministic": True if args.deterministic else None,
        "data": {"name": args.dataset, "root": args.data_root, "resolution": args.resolution},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "budget_gflops": args.budget_gflops,
                  "budget_images": args.budget_images, "tensorboard": True if args.tensorboard else None},
        "eval": {"num_samples": args.num_samples, "feature_extractor": args.feature_extractor,
                 "weights": args.weights, "metrics": args.metrics, "every": args.eval_every,
                 "every_metrics": args.every_metrics, "every_samples": args.every_samples,
                 "sampling_seeds": args.sampling_seeds},
        "execution": {"executor": args.executor, "workers": args.workers, "address": args.address},
    }
    return _drop_none(flags)


def build_config(args: argparse.Namespace) -> RunConfig:
    """Preset ← TOML file ← command-line flags (:func:`mgbench.config.resolve`), or the saved
    configuration of ``--resume RUN_DIR`` with other execution settings (:func:`mgbench.config.resume`)."""
    if args.resume:
        if args.config or args.preset:
            raise UsageError("--resume takes the run's own configuration",
                             "drop --config / --preset (the run directory's config.json is used)")
        return config.resume(args.resume, _flags(args))
    return config.resolve(args.preset, args.config, _flags(args))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
        if v is not None and v != {}:
            out[k] = v
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from mgbench.report.commands import build_report
    from mgbench.runner import check_determinism, execute

    cfg = build_config(args)
    if args.check_determinism:
        return check_determinism(cfg)
    print(f"mgbench run: {len(cfg.models)} models × {len(cfg.seeds)} seeds on "
          f"{cfg.data.name} {cfg.data.resolution}px, {cfg.precision}, {cfg.threads} thread(s) per job "
          f"→ {cfg.run_dir}", file=sys.stderr)
    code = execute(cfg)
    print(build_report(cfg.run_dir), end="")  # failed jobs show on the page too
    return code


def cmd_list(args: argparse.Namespace) -> int:
    from mgbench import registry
    from mgbench.listing import list_datasets, list_metrics, list_models

    registry.import_plugins(args.plugin or [])
    if args.metrics:
        print(list_metrics())
    elif args.datasets:
        print(list_datasets())
    else:
        print(list_models(args.dataset, args.resolution, args.data_root))
    return 0


def make_parser() -> argparse.ArgumentParser:
    from mgbench import score_command, selftest
    from mgbench.report.commands import add_commands as add_report_commands

    parser = argparse.ArgumentParser(prog="mgbench", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train, sample and score a grid of models × seeds")
    run.add_argument("--preset", help=f"one of {', '.join(presets.PRESETS)} (default: {presets.DEFAULT})")
    run.add_argument("--config", help="TOML file with the run's settings")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish the unfinished jobs of a run directory")
    run.add_argument("--models", type=_csv(str), help="comma-separated model names")
    run.add_argument("--seeds", type=_csv(int), help="comma-separated seeds, e.g. 0,1,2")
    run.add_argument("--dataset", help="a registered dataset: shapes, mnist, cifar10, folder, ...")
    run.add_argument("--data-root", help="folder of the dataset's files (real datasets)")
    run.add_argument("--resolution", type=int)
    run.add_argument("--steps", type=int, help="training steps per job")
    run.add_argument("--batch-size", type=int)
    run.add_argument("--budget-gflops", type=float, metavar="GFLOPS",
                     help="instead of --steps: the same training compute for every model (its steps follow from "
                          "its counted FLOPs per training image)")
    run.add_argument("--budget-images", type=int, metavar="N", help="instead of --steps: training images per job")
    run.add_argument("--eval-every", type=_steps, metavar="STEPS",
                     help="metrics during training every STEPS steps, or at a comma-separated list of steps; 0: "
                          "never (default: ten times a job)")
    run.add_argument("--every-metrics", type=_csv(str), help="the metrics during training (default: fid,swd,modes "
                     "among the run's)")
    run.add_argument("--every-samples", type=int, help="samples per evaluation during training (default 500)")
    run.add_argument("--sampling-seeds", type=int, metavar="K", help="score each trained model with K sample "
                     "draws (the extra ones in RUN_DIR/sampling/; default 1)")
    run.add_argument("--tensorboard", action="store_true", help="TensorBoard event files of the losses and the "
                     "curves in RUN_DIR/tensorboard/ (needs the tensorboard package)")
    run.add_argument("--num-samples", type=int, help="samples scored per job")
    run.add_argument("--metrics", type=_csv(str), help="comma-separated metrics (default: all; see mgbench list "
                     "--metrics)")
    run.add_argument("--feature-extractor", help="auto (default), inception or domain")
    run.add_argument("--weights", help="Inception weights file for --feature-extractor inception")
    run.add_argument("--precision", help="fp32 (default) or bf16: part of the protocol, recorded in every row")
    run.add_argument("--threads", type=int, help="torch threads per job (part of the protocol; default: the preset's)")
    run.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (GPU)")
    run.add_argument("--out", help="parent folder of run directories (default: runs)")
    run.add_argument("--name", help="run directory name (default: the preset's)")
    run.add_argument("--plugin", action="append", help="module that registers models, metrics or datasets "
                     "(repeatable)")
    run.add_argument("--executor", choices=["local", "ray"],
                     help="local (default): job processes on this machine; ray: tasks on a Ray cluster")
    run.add_argument("--workers", type=int, help="local: jobs at once (default: one per core, or per GPU), each "
                     "with its own GPU if there are GPUs")
    run.add_argument("--address", help="ray: the cluster's address, e.g. HEAD:6379 "
                     "(default: $RAY_ADDRESS, or a new one-machine cluster)")
    run.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only (and the bars)")
    run.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    run.add_argument("--check-determinism", action="store_true",
                     help="run the first job twice and report any difference (exit 1 if any)")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="the registered models (or --metrics, --datasets)")
    lst.add_argument("--metrics", action="store_true", help="the metrics: columns, directions, needs")
    lst.add_argument("--datasets", action="store_true", help="the datasets and their factors")
    lst.add_argument("--dataset", default="shapes", help="models: parameter counts on this dataset (default shapes)")
    lst.add_argument("--resolution", type=int, default=32, help="models: ... at this resolution (default 32)")
    lst.add_argument("--data-root", help="folder of the dataset's files (real datasets)")
    lst.add_argument("--plugin", action="append", help="module that registers models, metrics or datasets")
    lst.set_defaults(func=cmd_list)

    score_command.add_command(sub)
    add_report_commands(sub)
    selftest.add_command(sub)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the running jobs are ended, the finished ones kept."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    console.configure(console.level_from_argv(words))
    debug = "--debug" in words
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        args = make_parser().parse_args(argv)
        return args.func(args)
    except UsageError as err:
        if debug:
            raise
        _error(err.problem, err.fix)
        return EXIT_USAGE
    except KeyboardInterrupt as err:
        run_dir = getattr(err, "run_dir", None)
        where = f" (resume with `mgbench run --resume {run_dir}`)" if run_dir else ""
        what = "terminated" if isinstance(err, _Terminated) else "interrupted"
        print(f"mgbench: {what}; the running jobs were ended, finished jobs are kept{where}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, _Terminated) else signal.SIGINT)
    except MemoryError as err:  # the driver itself (a job's own is its status, oom)
        if debug:
            raise
        _error(f"out of memory: {err or 'an allocation failed'}", _MEMORY_FIX)
        return EXIT_USAGE
    except OSError as err:
        if debug or not is_disk_full(err):
            raise
        _error(f"disk full at {err.filename or 'a file being written'}: {err.strerror}", _DISK_FIX)
        return EXIT_USAGE
    except RuntimeError as err:
        if debug or "DefaultCPUAllocator" not in str(err):
            raise
        _error(f"out of memory: {str(err).splitlines()[0]}", _MEMORY_FIX)
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_MEMORY_FIX = ("lower data.resolution, data.train_size or eval.num_samples, or run fewer jobs at once "
               "(--workers 1); add --debug for the traceback")
_DISK_FIX = "free some space there (or choose another --out / MGBENCH_CACHE), then resume with --resume RUN_DIR"


def _error(problem: str, fix: str = "") -> None:
    print(f"mgbench: error: {problem}", file=sys.stderr)
    if fix:
        print(f"mgbench: fix: {fix}", file=sys.stderr)
