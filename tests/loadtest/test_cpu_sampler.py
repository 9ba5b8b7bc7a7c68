"""ProcessCpuSampler: the service's CPU includes its worker processes, also after one has exited."""

from __future__ import annotations

import subprocess
import sys

from loadtest.load.samplers import ProcessCpuSampler

CHILD_CPU_S = 0.3
# The pi worker stand-in: burns CPU, says so, exits when its parent closes its stdin.
CHILD = f"""
import sys, time
end = time.process_time() + {CHILD_CPU_S}
while time.process_time() < end:
    pass
print("burnt", flush=True)
sys.stdin.readline()
"""
# The service stand-in: starts the child; on the test's word lets it exit and reaps it.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE)
sys.stdin.readline()
child.stdin.close()
child.wait()
print("reaped", flush=True)
sys.stdin.readline()
"""


def test_cpu_of_a_child_counts_also_after_it_exited() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdin is not None and parent.stdout is not None
    try:
        assert parent.stdout.readline().strip() == "burnt"
        sampler = ProcessCpuSampler(parent.pid)
        while_running = sampler.cpu_seconds()
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "reaped"
        after_exit = sampler.cpu_seconds()
    finally:
        parent.kill()
        parent.wait()

    assert while_running >= CHILD_CPU_S * 0.8, "the child's CPU is counted while it runs"
    assert after_exit >= while_running, "the child's CPU is still counted once it has exited"
