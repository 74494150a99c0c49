"""Mean ± std over trials per method and labeled count, budget-curve areas, differences to random.

Pure Python and numpy: works on ``results.csv`` files (``trial,cycle,num_labeled,metric,value``)
and on the study's reference CSVs (``labeled,method,mean,std``). A NaN metric is kept as NaN: it
is left out of the mean and counted, never a crash.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os.path as osp
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..schema import read_csv, read_json

#: The study's Tables 2-13 as CSV, shipped inside the package (see reference/README.md).
REFERENCE_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'reference')
PREFERRED_METRICS = ('pascal_voc/mAP', 'accuracy/top1', 'coco/bbox_mAP')


@dataclass
class Point:
    """One cell of a results table: a method at a labeled count.

    Attributes:
        method: Method name.
        labeled: Number of labeled samples.
        mean: Mean of the finite values (NaN when there is none).
        std: Sample standard deviation of the finite values (NaN with fewer than two).
        n: Finite values (trials) behind the mean.
        nan: Trials whose metric is NaN.
    """

    method: str
    labeled: int
    mean: float
    std: float
    n: int
    nan: int = 0


@dataclass
class Run:
    """The rows of one work dir's ``results.csv`` under a method name."""

    name: str
    work_dir: str
    rows: List[dict]
    metric: Optional[str] = None  # the metric the run's config names, when recorded
    #: Per acquisition: ``dict(trial, num_labeled, acted_by, coverage)``, the selector that picked after
    #: the cycle trained on ``num_labeled`` images and the coverage a switch measured (or None), from
    #: each cycle's ``selected.json``.
    acquisitions: List[dict] = field(default_factory=list)


def read_run(work_dir: str, name: Optional[str] = None, x: str = 'images') -> Run:
    """Read ``work_dir/results.csv``; the name defaults to the run's config file name.

    Args:
        work_dir: The run's folder.
        name: The method's name.
        x: What the curves run over: ``'images'`` (labeled images) or ``'boxes'`` (labeled boxes,
            detection runs): the rows' ``num_labeled`` is then the box count.

    Raises:
        UserError: When the work dir has no ``results.csv``, or no box counts for ``x='boxes'``.
    """
    path = osp.join(work_dir, 'results.csv')
    if not osp.isfile(path):
        raise UserError(f'{work_dir} has no results.csv; pass the work dir of an al_train.py run '
                        '(it writes results.csv after its first evaluated cycle).')
    rows = read_csv(path, [('trial', int), ('cycle', int), ('num_labeled', int), ('metric', str), ('value', float)],
                    [('num_boxes', int)], fix='it is written by al_train.py: rerun al_train.py with --resume on '
                    'that work dir to write it again.')
    if x == 'boxes':
        if any(r['num_boxes'] is None for r in rows):
            raise UserError(f'{path} has no box counts (a classification run, or one written by an older mmal); '
                            'report it over labeled images.')
        for r in rows:
            r['num_labeled'] = r['num_boxes']
    recorded = {}
    if osp.isfile(osp.join(work_dir, 'al_config.json')):
        recorded = read_json(osp.join(work_dir, 'al_config.json'), 'restore it or rerun al_train.py with --resume.')
        if not isinstance(recorded, dict):
            raise UserError(f'{osp.join(work_dir, "al_config.json")} is not an object; restore it or rerun '
                            'al_train.py with --resume.')
    if name is None:
        config = str(recorded.get('config') or osp.abspath(work_dir))
        name = osp.splitext(osp.basename(config.rstrip('/')))[0]
    return Run(name=name, work_dir=work_dir, rows=rows, metric=recorded.get('metric'),
               acquisitions=read_acquisitions(work_dir))


def read_acquisitions(work_dir: str) -> List[dict]:
    """``dict(trial, num_labeled, acted_by, coverage)`` of every acquisition of a run (empty for runs
    written before ``selected.json`` recorded them; coverage None where no switch measured one)."""
    out = []
    for path in sorted(glob.glob(osp.join(work_dir, 'trial_*', 'cycle_*', 'selected.json'))):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get('num_labeled'), int) and record.get('acted_by'):
            coverage = record.get('coverage')
            out.append(dict(trial=record.get('trial', 0), num_labeled=record['num_labeled'],
                            acted_by=str(record['acted_by']),
                            coverage=float(coverage) if isinstance(coverage, (int, float)) else None))
    return out


def selection_table(runs: Sequence[Run]) -> str:
    """Which selector picked at each labeled count, per method (``'TypiClust'``, or
    ``'TypiClust 2, TopK 1'`` when trials differ), with the mean coverage a switch measured there
    (``'TypiClust (coverage 0.42)'``); empty when no run recorded it."""
    cells: Dict[Tuple[str, int], Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    coverages: Dict[Tuple[str, int], List[float]] = defaultdict(list)
    for run in runs:
        for a in run.acquisitions:
            cells[run.name, a['num_labeled']][a['acted_by']] += 1
            if a.get('coverage') is not None:
                coverages[run.name, a['num_labeled']].append(a['coverage'])
    if not cells:
        return ''
    methods = list(dict.fromkeys(name for name, _ in cells))
    counts = sorted({labeled for _, labeled in cells})
    lines = ['Selector that picked the next images, per labeled count:', '',
             '| labeled | ' + ' | '.join(methods) + ' |', '|---:|' + '---|' * len(methods)]
    for labeled in counts:
        row = []
        for method in methods:
            acted = cells.get((method, labeled), {})
            cell = next(iter(acted)) if len(acted) == 1 else ', '.join(f'{k} {v}' for k, v in acted.items())
            measured = coverages.get((method, labeled))
            row.append(f'{cell} (coverage {sum(measured) / len(measured):.2f})' if measured else cell)
        lines.append(f'| {labeled} | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


METHOD_WORDS = {'random', 'entropy', 'var', 'margin', 'bald', 'coreset', 'llal', 'consistency', 'inconsistency',
                'badge', 'typiclust', 'probcover', 'batchbald', 'power'}


def short_names(names: Sequence[str]) -> List[str]:
    """Drop the ``_``-separated prefix all names share up to the method's word (``cifar10_random``,
    ``cifar10_entropy_budget500`` -> ``random``, ``entropy_budget500``), so that names match the
    reference tables' method keys."""
    if len(set(names)) < 2:
        return list(names)
    parts = [n.split('_') for n in names]
    common = 0
    while (all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1
           and parts[0][common] not in METHOD_WORDS):
        common += 1
    return ['_'.join(p[common:]) for p in parts]


def choose_metric(runs: Sequence[Run], metric: Optional[str] = None) -> str:
    """The metric to report: the one asked for, the one the configs name, or the only/preferred one.

    Raises:
        UserError: When the asked metric is in no run.
    """
    available = sorted({r['metric'] for run in runs for r in run.rows})
    if metric is not None:
        if metric not in available:
            raise UserError(f'no run has the metric {metric!r}; available: {", ".join(available) or "none"}.')
        return metric
    named = {run.metric for run in runs if run.metric is not None and run.metric in available}
    if len(named) == 1:
        return named.pop()
    for preferred in PREFERRED_METRICS:
        if preferred in available:
            return preferred
    if not available:
        raise UserError('the results.csv files hold no rows yet; report a run after its first evaluated cycle.')
    return available[0]


def summarise(runs: Sequence[Run], metric: str) -> List[Point]:
    """Mean ± std over trials per (method, labeled count); runs of the same name pool their trials.

    A trial counts once per labeled count: if it has two cycles at the same count (a run whose
    pool ran out before the driver stopped acquiring), its last cycle's value is the one kept.
    """
    values: Dict[Tuple[str, int], Dict[Tuple[str, int], float]] = defaultdict(dict)
    for run in runs:
        for row in sorted(run.rows, key=lambda r: r['cycle']):
            if row['metric'] == metric:
                values[(run.name, row['num_labeled'])][(run.work_dir, row['trial'])] = row['value']
    return [point(method, labeled, trials.values()) for (method, labeled), trials in values.items()]


def point(method: str, labeled: int, vals: Iterable[float]) -> Point:
    """Summarise the values of one cell."""
    vals = list(vals)
    finite = [v for v in vals if math.isfinite(v)]
    mean = float(np.mean(finite)) if finite else float('nan')
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else float('nan')
    return Point(method, labeled, mean, std, len(finite), len(vals) - len(finite))


def methods_of(points: Iterable[Point], baseline: Optional[str] = None) -> List[str]:
    """Method names in first-seen order, the baseline first."""
    names = list(dict.fromkeys(p.method for p in points))
    if baseline in names:
        names.remove(baseline)
        names.insert(0, baseline)
    return names


def curve(points: Iterable[Point], method: str) -> Dict[int, Point]:
    """``{labeled: Point}`` of one method."""
    return {p.labeled: p for p in points if p.method == method}


def percent_scale(points: Iterable[Point]) -> float:
    """100 when the metric is a fraction (mmdet's mAP in [0, 1]), 1 when it is already in percent."""
    finite = [p.mean for p in points if math.isfinite(p.mean)]
    return 100.0 if finite and all(0.0 <= v <= 1.0 for v in finite) else 1.0


def budget_area(points: Sequence[Point], method: str, labeled: Sequence[int]) -> float:
    """Normalised area under a method's mean curve over the given labeled counts.

    The trapezoid area divided by the width of the range: the curve's average height, in the
    metric's units. NaN with fewer than two counts, or when the method misses one of them.
    """
    c = curve(points, method)
    if len(labeled) < 2 or any(n not in c or not math.isfinite(c[n].mean) for n in labeled):
        return float('nan')
    x = np.asarray(labeled, dtype=float)
    y = np.asarray([c[n].mean for n in labeled])
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / (x[-1] - x[0]))


def shared_counts(points: Sequence[Point], methods: Sequence[str]) -> List[int]:
    """The labeled counts every method has a finite mean at."""
    counts = None
    for method in methods:
        mine = {n for n, p in curve(points, method).items() if math.isfinite(p.mean)}
        counts = mine if counts is None else counts & mine
    return sorted(counts or ())


# -- reference tables ------------------------------------------------------------------------------
def reference_tables() -> List[str]:
    """Stems of the shipped reference CSVs."""
    return sorted(osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(REFERENCE_DIR, '*.csv')))


def find_reference(table: str) -> str:
    """Path of a reference table: a CSV path, a shipped stem (``table02_cifar10_main``) or its
    setting part (``cifar10_main``).

    Raises:
        UserError: When nothing matches; the shipped tables are listed.
    """
    if osp.isfile(table):
        return table
    stem = osp.splitext(osp.basename(table))[0]
    matches = [s for s in reference_tables() if s == stem or s.split('_', 1)[-1] == stem]
    if len(matches) != 1:
        raise UserError(f'unknown reference table {table!r}; pass a CSV path or one of: '
                        f'{", ".join(reference_tables())}.')
    return osp.join(REFERENCE_DIR, matches[0] + '.csv')


def read_reference(path: str) -> List[Point]:
    """The points of a ``labeled,method,mean,std`` CSV (the study's numbers, in percent)."""
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        if not {'labeled', 'method', 'mean', 'std'} <= set(reader.fieldnames or ()):
            raise UserError(f'{path} is not a reference table; it needs the columns labeled,method,mean,std.')
        return [Point(r['method'], int(r['labeled']), float(r['mean']), float(r['std'] or 'nan'), 5)
                for r in reader]


# -- text -------------------------------------------------------------------------------------------
def cell(p: Optional[Point], scale: float = 1.0, trials: Optional[int] = None) -> str:
    """``mean ± std`` with the trial count when it is short of ``trials`` and NaNs named."""
    if p is None:
        return '—'
    if not math.isfinite(p.mean):
        return 'NaN'
    text = f'{p.mean * scale:.2f}' + (f' ± {p.std * scale:.2f}' if math.isfinite(p.std) else '')
    notes = []
    if trials is not None and p.n + p.nan < trials:
        notes.append(f'{p.n + p.nan}/{trials} trials')
    if p.nan:
        notes.append(f'{p.nan} NaN')
    return text + (f' ({", ".join(notes)})' if notes else '')


def markdown_table(points: Sequence[Point], metric: str, baseline: Optional[str] = None,
                   unit: str = 'labeled') -> str:
    """Rows = labeled counts, columns = methods, cells ``mean ± std`` (the study's Tables 2-13)."""
    scale = percent_scale(points)
    methods = methods_of(points, baseline)
    trials = {m: max(p.n + p.nan for p in points if p.method == m) for m in methods}
    shown = ' (×100)' if scale == 100 else ''
    lines = [f'| # {unit} | ' + ' | '.join(methods) + ' |', '|---:|' + '---:|' * len(methods)]
    for labeled in sorted({p.labeled for p in points}):
        cells = [cell(curve(points, m).get(labeled), scale, trials[m]) for m in methods]
        lines.append(f'| {labeled} | ' + ' | '.join(cells) + ' |')
    return f'{metric}{shown}, mean ± std over trials\n\n' + '\n'.join(lines)


def comparison(points: Sequence[Point], baseline: str, unit: str = 'labeled') -> str:
    """Per method: normalised budget-curve area and the difference to ``baseline`` in percentage
    points at every labeled count both have."""
    scale = percent_scale(points)
    methods = methods_of(points, baseline)
    counts = shared_counts(points, methods)
    span = f'{counts[0]}–{counts[-1]} {unit}' if len(counts) >= 2 else 'no shared range'
    lines = [f'Normalised area under the budget curve over the {unit} counts every method has ({span}), '
             'in percent:', '']
    lines += ['| method | area | vs ' + baseline + ' (pp) |', '|---|---:|---:|']
    base_area = budget_area(points, baseline, counts) if baseline in methods else float('nan')
    for m in methods:
        area = budget_area(points, m, counts)
        lines.append(f'| {m} | {fmt(area * scale)} | {fmt((area - base_area) * scale, signed=True)} |')
    if baseline not in methods:
        return '\n'.join(lines + ['', f'No run is named {baseline!r}: differences to it are left out.'])
    base = curve(points, baseline)
    others = [m for m in methods if m != baseline]
    lines += ['', f'Difference to {baseline} at every cycle, in percentage points:', '',
              f'| # {unit} | ' + ' | '.join(others) + ' |', '|---:|' + '---:|' * len(others)]
    for labeled in sorted({p.labeled for p in points}):
        row = []
        for m in others:
            p, b = curve(points, m).get(labeled), base.get(labeled)
            row.append('—' if p is None or b is None else fmt((p.mean - b.mean) * scale, signed=True))
        lines.append(f'| {labeled} | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def fmt(value: float, signed: bool = False) -> str:
    if not math.isfinite(value):
        return 'NaN'
    return f'{value:+.2f}' if signed else f'{value:.2f}'


def summary_csv(points: Sequence[Point], baseline: Optional[str] = None) -> str:
    """``labeled,method,mean,std,n,nan`` (the reference tables' columns plus the counts)."""
    lines = ['labeled,method,mean,std,n,nan']
    order = {m: i for i, m in enumerate(methods_of(points, baseline))}
    for p in sorted(points, key=lambda p: (p.labeled, order[p.method])):
        lines.append(f'{p.labeled},{p.method},{p.mean!r},{p.std!r},{p.n},{p.nan}')
    return '\n'.join(lines) + '\n'
