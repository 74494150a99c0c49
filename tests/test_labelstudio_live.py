"""One active-learning cycle through a real Label Studio server on localhost (slow: the first run
installs Label Studio into its own virtualenv, .venv-labelstudio/, from PyPI)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_a_cycle_through_a_real_label_studio(tmp_path):
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'labelstudio_roundtrip.py'), '--work-dir',
                           str(tmp_path / 'work'), '--record', str(tmp_path / 'fixtures')], cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # 8 seed images + 5 of the 6 sent (the sixth was skipped and went back to the pool); cycle 1 selected
    assert result == dict(imported=13, boxes=result['boxes'], cycle=1, next_step='export') and result['boxes'] > 13
    export = json.loads((tmp_path / 'fixtures' / 'labelstudio_export.json').read_text())
    assert [a['was_cancelled'] for t in export for a in t['annotations']] == [False] * 5 + [True]
    assert export[0]['annotations'][0]['result'][0]['id'].startswith('mmal')  # a corrected pre-annotation
