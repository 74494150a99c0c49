"""What an active-learning run keeps on disk, and how it is found again on resume.

    <work_dir>/al_config.json                  the config the run was started with: fingerprint, file, scorer, metric
    <work_dir>/results.csv                     trial,cycle,num_labeled,metric,value (rebuilt atomically)
    <work_dir>/trial_<t>/cycle_<k>/labeled.json   the labeled set cycle k trains on
    <work_dir>/trial_<t>/cycle_<k>/model.pth      the trained model (written when training completed)
    <work_dir>/trial_<t>/cycle_<k>/metrics.json   test metrics of that model
    <work_dir>/trial_<t>/cycle_<k>/selected.json  what cycle k's acquisition adds, with scores
    <work_dir>/trial_<t>/cycle_<k>/train/         mmengine's logs and checkpoints of the training

A step is done when its file exists; every file is written atomically, so a file is complete or
absent, never half-written.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os.path as osp
from typing import Dict, List, Optional

from ..errors import UserError
from ..fileio import atomic_write_json, atomic_write_text

IGNORED_KEYS = ('work_dir', 'resume', 'launcher', 'load_from', 'log_level', 'experiment_name')


def config_fingerprint(cfg_dict: dict) -> str:
    """A hash of everything in the config that decides the experiment (not where it is written)."""
    kept = {k: v for k, v in cfg_dict.items() if k not in IGNORED_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunState:
    """Paths and files of one AL run.

    Args:
        work_dir: The run's folder.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir

    def cycle_dir(self, trial: int, cycle: int) -> str:
        return osp.join(self.work_dir, f'trial_{trial}', f'cycle_{cycle}')

    def path(self, trial: int, cycle: int, name: str) -> str:
        return osp.join(self.cycle_dir(trial, cycle), name)

    def read(self, trial: int, cycle: int, name: str) -> Optional[dict]:
        path = self.path(trial, cycle, name)
        if not osp.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def write(self, trial: int, cycle: int, name: str, obj: dict) -> None:
        atomic_write_json(self.path(trial, cycle, name), obj)

    def has_run(self) -> bool:
        return osp.isfile(osp.join(self.work_dir, 'al_config.json'))

    def check_config(self, fingerprint: str, resume: bool) -> None:
        """Refuse a work dir that holds a run, unless resuming that run with the same config.

        Raises:
            UserError: One sentence naming the problem and the fix.
        """
        path = osp.join(self.work_dir, 'al_config.json')
        if not osp.isfile(path):
            return
        with open(path) as f:
            recorded = json.load(f)
        if not resume:
            raise UserError(f'{self.work_dir} already holds an active-learning run; pass --resume to '
                            'continue it or choose another --work-dir.')
        if recorded['fingerprint'] != fingerprint:
            raise UserError(f'{self.work_dir} was started with another config ({recorded["config"]}); '
                            'resume it with that config or choose another --work-dir.')

    def record_config(self, fingerprint: str, config_name: str, **info) -> None:
        """Record the config of the run (kept as it is when already recorded).

        Args:
            fingerprint: :func:`config_fingerprint` of the config.
            config_name: The config's file name.
            **info: More to record for readers of the run (the scorer, the metric of the report).
        """
        path = osp.join(self.work_dir, 'al_config.json')
        if not osp.isfile(path):
            atomic_write_json(path, dict(fingerprint=fingerprint, config=config_name, **info))

    def write_results(self) -> List[Dict]:
        """Rebuild ``results.csv`` from every cycle's ``metrics.json`` (so no row is ever doubled)."""
        rows = []
        for path in glob.glob(osp.join(self.work_dir, 'trial_*', 'cycle_*', 'metrics.json')):
            with open(path) as f:
                record = json.load(f)
            for metric, value in sorted(record['metrics'].items()):
                rows.append(dict(trial=record['trial'], cycle=record['cycle'], num_labeled=record['num_labeled'],
                                 metric=metric, value=value))
        rows.sort(key=lambda r: (r['trial'], r['cycle'], r['metric']))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=['trial', 'cycle', 'num_labeled', 'metric', 'value'],
                                lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(osp.join(self.work_dir, 'results.csv'), buffer.getvalue())
        return rows
