"""The `mgbench` command line. Bad input exits with code 2 and one message, no traceback
(``--debug`` shows it); `mgbench run` exits 1 when some jobs did not finish ok."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mgbench import presets, registry, score
from mgbench.config import RunConfig, load_toml, merge
from mgbench.contract import DataSpec
from mgbench.errors import UsageError
from mgbench.report.commands import add_commands as add_report_commands
from mgbench.report.commands import build_report

EXIT_USAGE = 2


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(part) for part in text.split(",") if part]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def build_config(args: argparse.Namespace) -> RunConfig:
    """Preset ← TOML file ← command-line flags, each overriding the one before."""
    if args.resume:
        saved = Path(args.resume) / "config.json"
        if not saved.exists():
            raise UsageError(f"{args.resume} is not a run directory (no config.json)",
                             "give the folder that `mgbench run` wrote, e.g. runs/quick")
        return _resume_with(RunConfig.from_dict(json.loads(saved.read_text())), args)
    file_cfg = load_toml(args.config) if args.config else {}
    base = dict(presets.preset(args.preset or file_cfg.pop("preset", None) or "quick"))
    file_cfg.pop("preset", None)
    # The preset's hyper-parameters apply to the models that run; a file's are checked by name.
    models = args.models or file_cfg.get("models") or base["models"]
    base["model_overrides"] = {k: v for k, v in base.get("model_overrides", {}).items() if k in models}
    flags: dict[str, Any] = {
        "models": args.models, "seeds": args.seeds, "device": args.device, "out": args.out,
        "name": args.name, "plugins": args.plugin or None,
        "deterministic": True if args.deterministic else None,
        "data": {"name": args.dataset, "root": args.data_root, "resolution": args.resolution},
        "train": {"steps": args.steps, "batch_size": args.batch_size},
        "eval": {"num_samples": args.num_samples, "feature_extractor": args.feature_extractor,
                 "weights": args.weights},
        "executor": args.executor, "workers": args.workers, "address": args.address,
    }
    raw = merge(merge(base, file_cfg), _drop_none(flags))
    if raw.get("executor") == "ray" and args.workers is None and "workers" not in file_cfg:
        raw["workers"] = 1  # a preset's local workers do not apply: the cluster schedules the jobs
    return RunConfig.from_dict(raw)


def _resume_with(saved: RunConfig, args: argparse.Namespace) -> RunConfig:
    """A resumed run may run its jobs another way: --executor / --workers / --address replace
    the saved values; switching executor drops the other executor's workers / address."""
    given = {k: v for k, v in {"executor": args.executor, "workers": args.workers,
                               "address": args.address}.items() if v is not None}
    if given.get("executor", saved.executor) != saved.executor:
        given = {"workers": 1, "address": None, **given}
    return dataclasses.replace(saved, **given) if given else saved


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
        if v is not None and v != {}:
            out[k] = v
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from mgbench.runner import check_determinism, execute

    config = build_config(args)
    if args.check_determinism:
        return check_determinism(config)
    print(f"mgbench run: {len(config.models)} models × {len(config.seeds)} seeds on "
          f"{config.data.name} {config.data.resolution}px → {config.run_dir}", file=sys.stderr)
    code = execute(config)
    print(build_report(config.run_dir), end="")  # failed jobs show on the page too
    return code


def cmd_list(args: argparse.Namespace) -> int:
    registry.import_plugins(args.plugin or [])
    spec = DataSpec(channels=3, resolution=32, num_classes=16)  # shapes at 32 px
    print(f"{'model':<12} {'conditional':<12} {'params (32px)':>14}  description")
    for name in registry.list_models():
        cls = registry.get_model_class(name)
        model = registry.create_model(name, spec)
        params = sum(model.num_parameters().values())
        print(f"{name:<12} {'yes' if cls.conditional else 'no':<12} {params:>14,}  {cls.description}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mgbench", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train, sample and score a grid of models × seeds")
    run.add_argument("--preset", help=f"one of {', '.join(presets.PRESETS)} (default: quick)")
    run.add_argument("--config", help="TOML file with the run's settings")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish the unfinished jobs of a run directory")
    run.add_argument("--models", type=_csv(str), help="comma-separated model names")
    run.add_argument("--seeds", type=_csv(int), help="comma-separated seeds, e.g. 0,1,2")
    run.add_argument("--dataset", help="shapes, mnist, cifar10 or folder")
    run.add_argument("--data-root", help="folder of the dataset's files (real datasets)")
    run.add_argument("--resolution", type=int)
    run.add_argument("--steps", type=int, help="training steps per job")
    run.add_argument("--batch-size", type=int)
    run.add_argument("--num-samples", type=int, help="samples scored per job")
    run.add_argument("--feature-extractor", help="auto (default), inception or domain")
    run.add_argument("--weights", help="Inception weights file for --feature-extractor inception")
    run.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (GPU)")
    run.add_argument("--out", help="parent folder of run directories (default: runs)")
    run.add_argument("--name", help="run directory name (default: the preset's)")
    run.add_argument("--plugin", action="append", help="module that registers models (repeatable)")
    run.add_argument("--executor", choices=["local", "ray"],
                     help="local (default): job processes on this machine; ray: tasks on a Ray cluster")
    run.add_argument("--workers", type=int, help="local: jobs at once (default 1), each with its own GPU "
                     "if there are GPUs and an equal share of the CPU cores")
    run.add_argument("--address", help="ray: the cluster's address, e.g. HEAD:6379 "
                     "(default: $RAY_ADDRESS, or a new one-machine cluster)")
    run.add_argument("--check-determinism", action="store_true",
                     help="run the first job twice and report any difference (exit 1 if any)")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="the registered models")
    lst.add_argument("--plugin", action="append", help="module that registers models (repeatable)")
    lst.set_defaults(func=cmd_list)

    score.add_command(sub)
    add_report_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="mgbench: %(message)s")
    try:
        return args.func(args)
    except UsageError as err:
        if args.debug:
            raise
        print(f"mgbench: error: {err.problem}", file=sys.stderr)
        if err.fix:
            print(f"mgbench: fix: {err.fix}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mgbench: interrupted; finished jobs are kept (resume with --resume RUN_DIR)", file=sys.stderr)
        return 130
