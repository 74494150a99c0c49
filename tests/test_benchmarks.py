"""The benchmarks run end to end (at toy sizes) and end with their JSON figures."""
import json
import subprocess
import sys

from conftest import REPO


def test_bench_selection_small():
    proc = subprocess.run([sys.executable, 'tools/benchmarks/bench_selection.py', '--n', '3000', '--d', '32',
                           '--labeled', '50', '--budget', '40', '--repeats', '1'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures['bench'] == 'k_center_greedy' and figures['budget'] == 40
    assert figures['bound_s'] > 0 and figures['wall_s'] > 0 and figures['ratio_to_bound'] > 0
