"""Executors: several local workers, and a Ray cluster of two nodes on this machine, give the
results of a sequential run; a Ray worker killed mid-job is retried from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mgbench import presets
from mgbench.cli import build_config, main, make_parser
from mgbench.errors import UsageError
from mgbench.executors.local import LocalExecutor, auto_workers
from mgbench.schema import timing_columns

TESTS = Path(__file__).parent
RUN_TIMEOUT_S = 600  # one `mgbench run` of the grid below takes about a minute on 2 busy cores

# Two baselines and two jobs that fail (an exception; a process that dies), so that every
# executor is seen to record failures as the sequential run does. One torch thread per job in
# every run: float sums split over another number of threads round differently.
GRID = """
preset = "smoke"
models = ["dcgan", "vae", "test-raises", "test-dies"]
plugins = ["plugin_models"]
threads = 1
[train]
steps = 100
checkpoint_every = 20
log_every = 10
"""
KILLED_JOB = "dcgan-seed0"


def _env(cache: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, MGBENCH_CACHE=str(cache), PYTHONUNBUFFERED="1", **extra)


def _run(config: Path, out: Path, cache: Path, *flags: str) -> Path:
    """`mgbench run` of ``config`` in a fresh process (bounded in time); returns the run directory."""
    done = subprocess.run([sys.executable, "-m", "mgbench", "run", "--config", str(config), "--out", str(out),
                           *flags], env=_env(cache), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == 1, done.stderr[-3000:]  # 1: the two failing jobs
    return out / "smoke"


def _results(run_dir: Path) -> pd.DataFrame:
    """Every non-timing column, in a fixed column order (a run's order follows its first rows)."""
    df = pd.read_csv(run_dir / "results.csv")
    df = df.drop(columns=timing_columns(df.columns))
    df["message"] = df["message"].str.replace(str(run_dir.resolve()), "<run>").str.replace(str(run_dir), "<run>")
    return df[sorted(df.columns)]


def assert_same_run(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(_results(a), _results(b))
    for model in ("dcgan", "vae"):
        for item in (f"samples/{model}-seed0.png", f"losses/{model}-seed0.csv"):
            assert (a / item).read_bytes() == (b / item).read_bytes(), item


def _processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            yield int(entry.name), ppid, cmdline


def _descends_from(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    while pid > 1:
        pid = parents.get(pid, 0)
        if pid == ancestor:
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "mgbench-cache"  # the folder conftest gives other tests


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "grid.toml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def sequential(grid, cache, tmp_path_factory) -> Path:
    """The reference: the grid run one job at a time by the local executor."""
    run_dir = _run(grid, tmp_path_factory.mktemp("sequential"), cache, "--workers", "1")
    rows = pd.read_csv(run_dir / "results.csv").set_index("model")
    assert list(rows.loc[["dcgan", "vae", "real-data", "noise"], "status"]) == ["ok"] * 4
    assert rows.loc["test-raises", "status"] == "failed" and "boom in train_step" in rows.loc["test-raises", "message"]
    assert rows.loc["test-dies", "status"] == "crashed"
    return run_dir


# ---- the local executor --------------------------------------------------------------------


@pytest.mark.parametrize("cores, threads, gpus, workers", [(2, 1, 0, 2), (16, 1, 0, 16), (16, 4, 0, 4),
                                                          (3, 2, 0, 1), (1, 4, 0, 1), (16, 1, 2, 2)])
def test_auto_workers_fill_the_cores_or_the_gpus(cores, threads, gpus, workers):
    assert auto_workers(cores, threads, gpus) == workers


def test_the_workers_never_change_the_threads_of_a_job():
    """The threads are the protocol's: a bigger machine runs more jobs at once with the same bits."""
    for workers in (1, 2, 7):
        assert LocalExecutor(workers=workers, threads=1, device="cpu").threads == 1
    assert LocalExecutor(workers=None, threads=3, device="cpu").describe()["threads_per_job"] == 3


def test_each_worker_gets_its_own_gpu_within_the_visible_ones(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # as a scheduler restricts a job
    executor = LocalExecutor(workers=3, device="auto")
    assert [executor.settings(s).env["CUDA_VISIBLE_DEVICES"] for s in range(3)] == ["3", "5", "3"]
    assert "CUDA_VISIBLE_DEVICES" not in LocalExecutor(workers=2, device="cuda:1").settings(0).env
    assert "CUDA_VISIBLE_DEVICES" not in LocalExecutor(workers=2, device="cpu").settings(1).env


@pytest.mark.parametrize("flags, words", [
    (["--address", "head:6379"], ["address", "--executor ray"]),
    (["--executor", "ray", "--workers", "2"], ["workers", "local executor"]),
    (["--workers", "0"], ["workers", "at least 1"]),
])
def test_inconsistent_executor_flags_exit_2(flags, words, tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--out", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err
    assert not (tmp_path / "smoke").exists()


def test_the_ray_executor_takes_no_local_workers():
    args = make_parser().parse_args(["run", "--executor", "ray"])
    assert "workers" not in presets.preset("quick").get("execution", {})
    assert build_config(args).execution.workers is None
    args = make_parser().parse_args(["run", "--executor", "ray", "--workers", "2"])
    with pytest.raises(UsageError, match="workers is for the local executor"):
        build_config(args)


def test_missing_ray_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["run", "--preset", "smoke", "--executor", "ray", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Ray is not installed" in err and "pip install 'mgbench[ray]'" in err
    assert not (tmp_path / "smoke").exists()  # nothing written


@pytest.mark.slow
def test_two_workers_give_the_sequential_results_and_resume_with_one(grid, cache, sequential, tmp_path):
    run_dir = _run(grid, tmp_path, cache, "--workers", "2")
    assert_same_run(run_dir, sequential)
    execution = json.loads((run_dir / "manifest.json").read_text())["execution"]
    assert execution["workers"] == 2 and execution["threads_per_job"] == 1

    # Resumed one job at a time: the finished jobs are kept as they are (timings included), the
    # two failed ones run again and fail alike.
    before = pd.read_csv(run_dir / "results.csv").set_index("model")
    done = subprocess.run([sys.executable, "-m", "mgbench", "run", "--resume", str(run_dir), "--workers", "1"],
                          env=_env(cache), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 1, done.stderr[-3000:]
    after = pd.read_csv(run_dir / "results.csv").set_index("model")
    pd.testing.assert_frame_equal(after.loc[["dcgan", "vae"]], before.loc[["dcgan", "vae"]])
    assert_same_run(run_dir, sequential)
    assert json.loads((run_dir / "manifest.json").read_text())["execution"]["workers"] == 1


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes through /proc")
def test_killed_runner_takes_its_job_process_along(grid, cache, tmp_path):
    """No orphan job keeps training (and writing into the run) once its runner is gone."""
    checkpoint = tmp_path / "smoke" / "checkpoints" / f"{KILLED_JOB}.json"
    runner = subprocess.Popen([sys.executable, "-m", "mgbench", "run", "--config", str(grid), "--out", str(tmp_path),
                               "--models", "dcgan"], env=_env(cache),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (checkpoint.exists() and '"step": 20' in checkpoint.read_text()):
            assert runner.poll() is None and time.monotonic() < deadline, "the job never reached step 20"
            time.sleep(0.02)
        job_processes = [pid for pid, ppid, _ in _processes() if ppid == runner.pid]
        assert job_processes
        runner.kill()  # the runner alone, not its process group
        runner.wait(timeout=60)
        time.sleep(1)
        assert not any(_alive(p) for p in job_processes)
    finally:
        runner.kill()


# ---- the Ray executor ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A head node and a second node, one CPU each, on 127.0.0.1 only; stopped afterwards."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mgbench[ray]')")
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        # On Linux Ray swaps 127.0.0.1 for the address other machines see, and listens there;
        # this (documented) switch keeps every node, server and client on the loopback.
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        # The nodes' workers import the test models, as they would an installed plugin.
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p))
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"})
        try:
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            yield cluster.address
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the Ray worker through /proc")
def test_ray_cluster_gives_the_sequential_results_though_a_worker_is_killed(
        grid, cache, sequential, ray_cluster, tmp_path):
    """Kill -9 the Ray worker running dcgan after its step-20 checkpoint: Ray retries the task,
    which resumes from the checkpoint, and the run ends as the sequential run did."""
    run_dir = tmp_path / "smoke"
    checkpoint = run_dir / "checkpoints" / f"{KILLED_JOB}.json"
    env = _env(cache, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    driver = subprocess.Popen([sys.executable, "-m", "mgbench", "run", "--config", str(grid), "--out", str(tmp_path),
                               "--executor", "ray", "--address", ray_cluster], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (checkpoint.exists() and '"step": 20' in checkpoint.read_text()):
            if driver.poll() is not None:
                pytest.fail(f"the run ended (exit {driver.returncode}) before step 20: {driver.stderr.read()[-3000:]}")
            assert time.monotonic() < deadline, "the job never reached step 20"
            time.sleep(0.02)
        # Ray names a worker's process after the task it runs: ray::mgbench:<job id>. Only this
        # test's cluster counts (its raylets descend from this process): another Ray on the machine
        # may run a task of the same name.
        parents = {pid: ppid for pid, ppid, _ in _processes()}
        workers = [pid for pid, _, cmd in _processes()
                   if cmd.startswith(f"ray::mgbench:{KILLED_JOB}") and _descends_from(pid, os.getpid(), parents)]
        assert len(workers) == 1, workers
        job_processes = [pid for pid, ppid, _ in _processes() if ppid == workers[0]]
        assert job_processes, "the worker runs the job in a child process"
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = driver.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        driver.kill()
    time.sleep(1)
    assert not any(_alive(p) for p in [*workers, *job_processes]), "the job's process outlived its worker"
    assert driver.returncode == 1, stderr[-3000:]  # 1: the two failing jobs
    assert_same_run(run_dir, sequential)
    execution = json.loads((run_dir / "manifest.json").read_text())["execution"]
    assert execution["executor"] == "ray" and execution["nodes"] == 2
