"""The README's demo: a fresh run agrees with the README's table within the spread of its seeds."""
import json
import math
import os.path as osp
import re
import subprocess
import sys

import pytest
from conftest import REPO

ROW = re.compile(r'^\| (\d+) \| ([0-9.]+) ± ([0-9.]+) \| ([0-9.]+) ± ([0-9.]+) \| ([+-][0-9.]+) ± ([0-9.]+) \| '
                 r'(\d+)/(\d+) \|$', re.M)


def readme_demo_table():
    """``{labeled: {'random': (mean, std), 'entropy': (mean, std), 'diff': (mean, std), 'seeds': n}}``."""
    with open(osp.join(REPO, 'README.md')) as f:
        text = f.read()
    table = {}
    for n, rm, rs, em, es, dm, ds, _, seeds in ROW.findall(text):
        table[int(n)] = dict(random=(float(rm), float(rs)), entropy=(float(em), float(es)),
                             diff=(float(dm), float(ds)), seeds=int(seeds))
    return table


def tolerance(std: float, seeds: int) -> float:
    """How far a fresh run's mean over ``seeds`` seeds may fall from the table's: two standard errors of
    the difference of two such means, plus one mAP point for another CPU's float kernels."""
    return 2 * math.sqrt(2) * std / math.sqrt(seeds) + 1.0


def test_the_readme_table_parses():
    table = readme_demo_table()
    assert sorted(table) == [100, 200, 300, 400] and all(row['seeds'] == 3 for row in table.values())


@pytest.mark.slow
def test_a_fresh_demo_run_agrees_with_the_readme_within_its_spread(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/demo.py', '--work-dir', str(tmp_path / 'wd'),
                           '--toy-root', str(tmp_path / 'toy_voc')],
                          cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])['table']
    for n, row in readme_demo_table().items():
        for key in ('random', 'entropy', 'diff'):
            mean, std = row[key]
            assert abs(got[str(n)][key][0] - mean) <= tolerance(std, row['seeds']), (n, key, got[str(n)][key], row)
