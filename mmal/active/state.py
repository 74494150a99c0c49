"""What an active-learning run keeps on disk, and how it is found again on resume.

    <work_dir>/al_config.json                  the config the run was started with: fingerprint, file,
                                               scorer, metric, and the flattened config (for resume diffs)
    <work_dir>/results.csv                     trial,cycle,num_labeled,num_boxes,metric,value (rebuilt atomically)
    <work_dir>/trial_<t>/cycle_<k>/labeled.json   the labeled set cycle k trains on
    <work_dir>/trial_<t>/cycle_<k>/model.pth      the trained model (written when training completed)
    <work_dir>/trial_<t>/cycle_<k>/metrics.json   test metrics of that model
    <work_dir>/trial_<t>/cycle_<k>/selected.json  what cycle k's acquisition adds, with scores
    <work_dir>/trial_<t>/cycle_<k>/train/         mmengine's logs and checkpoints of the training

A step is done when its file exists; every file is written atomically under a unique temporary
name, so a file is complete or absent, never half-written. One run holds an exclusive lock on the
work dir while it runs.
"""
from __future__ import annotations

import csv
import fcntl
import glob
import hashlib
import io
import json
import os
import os.path as osp
from typing import Dict, List, Optional

from ..errors import UserError
from ..fileio import TEMP_SUFFIX, atomic_write_json, atomic_write_text, check_output_folder
from ..records import CycleMetrics, LabeledSet, RunConfig, Selection

IGNORED_KEYS = ('work_dir', 'resume', 'launcher', 'log_level', 'experiment_name', 'filename')
#: Keys a resumed run may change, and how: more cycles extend the run.
EXTENDABLE = {'active_learning.num_cycles': lambda old, new: isinstance(new, int) and isinstance(old, int)
              and new >= old}
CONFIG_FILE = 'al_config.json'


def _kept(cfg_dict: dict) -> dict:
    return {k: v for k, v in cfg_dict.items() if k not in IGNORED_KEYS}


def config_fingerprint(cfg_dict: dict) -> str:
    """A hash of everything in the config that decides the experiment (not where it is written)."""
    return hashlib.sha256(json.dumps(_kept(cfg_dict), sort_keys=True, default=str).encode()).hexdigest()[:16]


def flatten(cfg_dict: dict, prefix: str = '') -> Dict[str, str]:
    """``{'a.b.c': json text}`` of every leaf of the config that decides the experiment."""
    out: Dict[str, str] = {}
    for key, value in (_kept(cfg_dict) if not prefix else cfg_dict).items():
        name = f'{prefix}{key}'
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + '.'))
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str)
    return out


class RunState:
    """Paths, files and the lock of one AL run.

    Args:
        work_dir: The run's folder.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self._lock_fd: Optional[int] = None

    def cycle_dir(self, trial: int, cycle: int) -> str:
        return osp.join(self.work_dir, f'trial_{trial}', f'cycle_{cycle}')

    def path(self, trial: int, cycle: int, name: str) -> str:
        return osp.join(self.cycle_dir(trial, cycle), name)

    def read(self, trial: int, cycle: int, name: str) -> Optional[dict]:
        """A state file, or None when the step has not been done.

        Raises:
            UserError: The file exists but is not valid JSON (the work dir was damaged).
        """
        return read_json(self.path(trial, cycle, name))

    def write(self, trial: int, cycle: int, name: str, obj: dict) -> None:
        atomic_write_json(self.path(trial, cycle, name), obj)

    def labeled(self, trial: int, cycle: int, pool_size: Optional[int] = None) -> Optional[LabeledSet]:
        """The cycle's ``labeled.json``, checked (indices below ``pool_size``), or None."""
        obj = self.read(trial, cycle, 'labeled.json')
        return None if obj is None else LabeledSet.from_json(obj, self.path(trial, cycle, 'labeled.json'), pool_size)

    def metrics(self, trial: int, cycle: int) -> Optional[CycleMetrics]:
        """The cycle's ``metrics.json``, checked, or None."""
        obj = self.read(trial, cycle, 'metrics.json')
        return None if obj is None else CycleMetrics.from_json(obj, self.path(trial, cycle, 'metrics.json'))

    def selection(self, trial: int, cycle: int, pool_size: Optional[int] = None) -> Optional[Selection]:
        """The cycle's ``selected.json``, checked (picks below ``pool_size``), or None."""
        obj = self.read(trial, cycle, 'selected.json')
        return None if obj is None else Selection.from_json(obj, self.path(trial, cycle, 'selected.json'), pool_size)

    # -- the run's folder -----------------------------------------------------------------------------
    def lock(self) -> None:
        """Create the work dir if needed and hold an exclusive lock on it until :meth:`unlock`.

        Raises:
            UserError: Another run holds the lock.
        """
        check_output_folder(self.work_dir, 'the work dir')
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.work_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f'another run is using {self.work_dir} right now; wait for it to finish or choose '
                            'another --work-dir.') from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def claim(self, cfg_dict: dict, resume: bool, config_name: str, metric: Optional[str] = None,
              scorer: Optional[str] = None) -> List[str]:
        """Lock the work dir, check that this run may use it, delete what interrupted writes left, and
        record the config. Nothing is written unless every check passed.

        Args:
            cfg_dict: The run's config.
            resume: Whether ``--resume`` was passed.
            config_name: The config's file name.
            metric: The metric of the report.
            scorer: The method's name.

        Returns:
            The stale temporary files that were deleted.

        Raises:
            UserError: As :meth:`lock` and :meth:`check_work_dir`; the lock is released and a folder
                this call created is removed again.
        """
        existed = osp.isdir(self.work_dir)
        self.lock()
        try:
            self.check_work_dir(cfg_dict, resume)
        except BaseException:
            self.unlock()
            if not existed:
                os.rmdir(self.work_dir)
            raise
        removed = self.remove_stale_temp_files()
        self.record_config(cfg_dict, config_name, metric=metric, scorer=scorer)
        return removed

    def check_work_dir(self, cfg_dict: dict, resume: bool) -> Optional[RunConfig]:
        """Check that this run may use the work dir; nothing is written.

        Args:
            cfg_dict: The run's config.
            resume: Whether ``--resume`` was passed.

        Returns:
            The recorded ``al_config.json`` when resuming, else None.

        Raises:
            UserError: The folder holds another tool's files, a run without ``--resume``, or a run of
                another config (the message names the keys that differ).
        """
        if not osp.isdir(self.work_dir):
            if osp.exists(self.work_dir):
                raise UserError(f'--work-dir {self.work_dir} is a file; choose a folder.')
            return None
        path = osp.join(self.work_dir, CONFIG_FILE)
        obj = read_json(path)
        if obj is None:
            if os.listdir(self.work_dir):
                raise UserError(f'{self.work_dir} is not empty and holds no mmal run; choose an empty or new '
                                '--work-dir so nothing in it is overwritten.')
            return None
        if not resume:
            raise UserError(f'{self.work_dir} already holds an active-learning run; pass --resume to '
                            'continue it or choose another --work-dir.')
        recorded = RunConfig.from_json(obj, path)
        if recorded.fingerprint == config_fingerprint(cfg_dict):
            return recorded
        old = recorded.flat_config
        new = flatten(cfg_dict)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        refused = [k for k in changed if not (k in EXTENDABLE and k in old and k in new
                                              and EXTENDABLE[k](json.loads(old[k]), json.loads(new[k])))]
        if refused:
            shown = ', '.join(refused[:6]) + (f' and {len(refused) - 6} more' if len(refused) > 6 else '')
            raise UserError(f'{self.work_dir} was started with another config: {shown} differ; resume with the '
                            'same settings (only a larger active_learning.num_cycles may extend a run) or choose '
                            'another --work-dir.')
        return recorded

    def record_config(self, cfg_dict: dict, config_name: str, metric: Optional[str] = None,
                      scorer: Optional[str] = None) -> None:
        """Record the run's config (again, when a resume extended it) as :class:`~mmal.records.RunConfig`.

        Args:
            cfg_dict: The run's config.
            config_name: The config's file name.
            metric: The metric of the report.
            scorer: The method's name, for readers of the run.
        """
        atomic_write_json(osp.join(self.work_dir, CONFIG_FILE), RunConfig(
            fingerprint=config_fingerprint(cfg_dict), config=config_name, flat_config=flatten(cfg_dict),
            metric=metric, scorer=scorer).to_json())

    def remove_stale_temp_files(self) -> List[str]:
        """Delete the temporary files of writes that were interrupted (only ours: ``*.mmal.tmp``)."""
        stale = glob.glob(osp.join(self.work_dir, '**', f'*{TEMP_SUFFIX}'), recursive=True)
        stale += glob.glob(osp.join(self.work_dir, '**', f'.*{TEMP_SUFFIX}'), recursive=True)
        for path in set(stale):
            os.unlink(path)
        return sorted(set(stale))

    def all_metrics(self) -> List[CycleMetrics]:
        """Every cycle's ``metrics.json``, checked, by trial and cycle."""
        records = [CycleMetrics.from_json(read_json(path), path)
                   for path in glob.glob(osp.join(self.work_dir, 'trial_*', 'cycle_*', 'metrics.json'))]
        return sorted(records, key=lambda r: (r.trial, r.cycle))

    def write_results(self) -> List[Dict]:
        """Rebuild ``results.csv`` from every cycle's ``metrics.json`` (so no row is ever doubled)."""
        rows = []
        for record in self.all_metrics():
            for metric, value in sorted(record.metrics.items()):
                rows.append(dict(trial=record.trial, cycle=record.cycle, num_labeled=record.num_labeled,
                                 num_boxes='' if record.num_boxes is None else record.num_boxes,
                                 metric=metric, value=value))
        rows.sort(key=lambda r: (r['trial'], r['cycle'], r['metric']))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=['trial', 'cycle', 'num_labeled', 'num_boxes', 'metric', 'value'],
                                lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(osp.join(self.work_dir, 'results.csv'), buffer.getvalue())
        return rows


def read_json(path: str) -> Optional[dict]:
    """A JSON file, None when it does not exist.

    Raises:
        UserError: It exists but cannot be parsed (names the file and the fix).
    """
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f'{path} is damaged ({err}); restore it, or delete it and the steps after it and run again '
                        'with --resume.') from None
