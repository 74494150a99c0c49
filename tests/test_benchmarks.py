"""The benchmarks run end to end (at toy sizes) and end with their JSON figures."""
import json
import subprocess
import sys

from conftest import REPO


def test_bench_selection_quick():
    proc = subprocess.run([sys.executable, 'tools/benchmarks/bench_selection.py', '--quick'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures['bench'] == 'selection' and figures['quick']
    for key in ('top_k_speedup_vs_sort', 'kcenter_speedup_vs_sklearn', 'badge_s', 'typiclust_s', 'probcover_s',
                'batchbald_s', 'power_sampling_ms'):
        assert figures[key] > 0, key
