"""Reports of AL runs: tables, learning curves and budget-curve summaries (see tools/al_report.py)."""
from __future__ import annotations

import io
import os.path as osp
from typing import Dict, Optional, Sequence

from ..fileio import atomic_write_bytes, atomic_write_text
from .plot import close, plot_curves
from .summary import (
    Point,
    Run,
    choose_metric,
    comparison,
    find_reference,
    markdown_table,
    read_reference,
    read_run,
    reference_tables,
    selection_table,
    short_names,
    summarise,
    summary_csv,
)

__all__ = ['Point', 'Run', 'choose_metric', 'comparison', 'find_reference', 'markdown_table', 'plot_curves',
           'read_reference', 'read_run', 'reference_tables', 'selection_table', 'short_names', 'summarise',
           'summary_csv', 'write_report']


def write_report(runs: Sequence[Run], out_dir: str, metric: Optional[str] = None, baseline: str = 'random',
                 reference: Optional[str] = None, title: Optional[str] = None, x: str = 'images') -> Dict[str, str]:
    """Write ``summary.md``, ``summary.csv`` and ``curves.png`` for the runs into ``out_dir``.

    Args:
        runs: The runs; runs sharing a name pool their trials.
        out_dir: Output folder (created); each file is replaced atomically.
        metric: Metric to report (default: see :func:`choose_metric`).
        baseline: The method drawn dotted and compared against.
        reference: A published table to overlay (see :func:`find_reference`).
        title: Plot and markdown title.
        x: ``'images'``, or ``'boxes'`` for runs read with ``read_run(..., x='boxes')``: names the axis.

    Returns:
        ``{'markdown': path, 'csv': path, 'plot': path, 'metric': name}``.
    """
    metric = choose_metric(runs, metric)
    points = summarise(runs, metric)
    ref_points = read_reference(find_reference(reference)) if reference else []
    title = title or ', '.join(dict.fromkeys(r.name for r in runs))
    unit = 'labeled boxes' if x == 'boxes' else 'labeled'
    text = [f'# {title}', '', markdown_table(points, metric, baseline, unit), '', comparison(points, baseline, unit)]
    selectors = selection_table(runs)
    if selectors:
        text += ['', selectors]
    if reference:
        text += ['', f'Published numbers overlaid on the plot: {reference} (in percent).']
    paths = dict(markdown=osp.join(out_dir, 'summary.md'), csv=osp.join(out_dir, 'summary.csv'),
                 plot=osp.join(out_dir, 'curves.png'))
    atomic_write_text(paths['markdown'], '\n'.join(text) + '\n')
    atomic_write_text(paths['csv'], summary_csv(points, baseline))
    fig = plot_curves(points, metric, baseline, ref_points, title,
                      xlabel='labeled boxes' if x == 'boxes' else 'labeled samples')
    png = io.BytesIO()
    try:
        fig.savefig(png, format='png', dpi=120)
    finally:
        close(fig)
    atomic_write_bytes(paths['plot'], png.getvalue())
    return {**paths, 'metric': metric}
