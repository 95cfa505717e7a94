"""peak_mem_mb on the CPU is the job process's own peak, not one inherited from the runner."""

import subprocess
import sys

from mgbench.job import process_peak_rss_mb

CHILD = "from mgbench.job import process_peak_rss_mb; print(process_peak_rss_mb())"


def test_a_child_process_reports_its_own_peak_not_its_parents():
    ballast = bytearray(1024 * 2**20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touch every page: 1 GiB resident in this process
    parent = process_peak_rss_mb()
    child = float(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                                 check=True).stdout)
    # ru_maxrss would give the child at least the parent's peak (kept across fork and exec).
    assert parent > 1024
    assert child < parent - 512, (child, parent)
    del ballast
