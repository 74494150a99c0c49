import json
import os.path as osp
import re
import subprocess
import sys

import pytest
from conftest import REPO


def readme_demo_table():
    """``{labeled: (random, entropy)}`` of the README's demo table."""
    with open(osp.join(REPO, 'README.md')) as f:
        text = f.read()
    section = text[text.index('### The demo'):text.index('### Tests')]
    rows = re.findall(r'^\| (\d+) \| ([0-9.]+) \| ([0-9.]+) \| [+-][0-9.]+ \|$', section, flags=re.M)
    return {int(n): (float(r), float(e)) for n, r, e in rows}


@pytest.mark.slow
def test_a_fresh_demo_run_prints_the_readme_table(tmp_path):
    """The README's demo, from a fresh toy set and work dir: the numbers are a function of the commit."""
    proc = subprocess.run([sys.executable, 'tools/demo.py', '--work-dir', str(tmp_path / 'wd'),
                           '--toy-root', str(tmp_path / 'toy_voc')],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    got = {int(n): (round(result['curves']['random'][n], 3), round(result['curves']['entropy'][n], 3))
           for n in result['curves']['random']}
    assert got == readme_demo_table()
