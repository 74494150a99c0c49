"""Reports of AL runs on synthetic results.csv files: tables, areas, plots, awkward inputs."""
import csv
import json
import math
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from mmal.errors import UserError
from mmal.report import (
    Run,
    comparison,
    find_reference,
    markdown_table,
    plot_curves,
    read_reference,
    read_run,
    short_names,
    summarise,
    write_report,
)

AL_REPORT = osp.join(REPO, 'tools', 'al_report.py')
METRIC = 'accuracy/top1'


def make_run(root, config, curves, metric=METRIC):
    """A work dir with ``results.csv`` from ``{trial: [(labeled, value), ...]}`` and ``al_config.json``."""
    root.mkdir(parents=True)
    with open(root / 'results.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['trial', 'cycle', 'num_labeled', 'metric', 'value'])
        for trial, points in curves.items():
            for cycle, (labeled, value) in enumerate(points):
                writer.writerow([trial, cycle, labeled, metric, value])
                writer.writerow([trial, cycle, labeled, 'loss', 1.0])  # another metric, ignored
    (root / 'al_config.json').write_text(json.dumps(dict(fingerprint='x', config=f'configs/{config}.py',
                                                        scorer='Entropy', metric=metric)))
    return str(root)


@pytest.fixture
def runs(tmp_path):
    random = make_run(tmp_path / 'r', 'cifar10_random', {
        0: [(1000, 50.0), (2000, 60.0), (3000, 70.0)],
        1: [(1000, 52.0), (2000, 62.0), (3000, 72.0)]})
    entropy = make_run(tmp_path / 'e', 'cifar10_entropy', {
        0: [(1000, 50.0), (2000, 64.0), (3000, 76.0)],
        1: [(1000, 52.0), (2000, float('nan')), (3000, 78.0)]})  # a NaN metric
    coreset = make_run(tmp_path / 'c', 'cifar10_coreset', {
        0: [(1000, 51.0), (2000, 61.0)],  # fewer cycles than the others
        1: [(1000, 51.0)]})  # a missing trial at 2000
    return [random, entropy, coreset]


def loaded(paths):
    found = [read_run(p) for p in paths]
    for run, name in zip(found, short_names([r.name for r in found])):
        run.name = name
    return found


def test_names_metric_and_statistics(runs):
    found = loaded(runs)
    assert [r.name for r in found] == ['random', 'entropy', 'coreset']
    points = {(p.method, p.labeled): p for p in summarise(found, METRIC)}
    r = points[('random', 2000)]
    assert (r.mean, r.n, r.nan) == (61.0, 2, 0) and r.std == pytest.approx(math.sqrt(2))
    e = points[('entropy', 2000)]  # the NaN trial is counted, not averaged
    assert (e.mean, e.n, e.nan) == (64.0, 1, 1) and math.isnan(e.std)
    assert ('coreset', 3000) not in points and points[('coreset', 2000)].n == 1


def test_markdown_table_marks_nan_missing_and_absent_cells(runs):
    table = markdown_table(summarise(loaded(runs), METRIC), METRIC, 'random')
    lines = table.splitlines()
    assert lines[2] == '| # labeled | random | entropy | coreset |'
    assert lines[4] == '| 1000 | 51.00 ± 1.41 | 51.00 ± 1.41 | 51.00 ± 0.00 |'
    assert lines[5] == '| 2000 | 61.00 ± 1.41 | 64.00 (1 NaN) | 61.00 (1/2 trials) |'
    assert lines[6] == '| 3000 | 71.00 ± 1.41 | 77.00 ± 1.41 | — |'


def test_budget_area_and_differences_to_random(runs):
    text = comparison(summarise(loaded(runs), METRIC), 'random')
    # Shared range is 1000-2000 (coreset stops there): random (51+61)/2 = 56, entropy (51+64)/2 = 57.5.
    assert 'every method has (1000–2000 labeled)' in text
    assert '| random | 56.00 | +0.00 |' in text and '| entropy | 57.50 | +1.50 |' in text
    assert '| coreset | 56.00 | +0.00 |' in text
    assert '| 2000 | +3.00 | +0.00 |' in text and '| 3000 | +6.00 | — |' in text


def test_fraction_metrics_are_reported_in_percentage_points(tmp_path):
    a = make_run(tmp_path / 'a', 'voc_random', {0: [(100, 0.10), (200, 0.20)]}, metric='pascal_voc/mAP')
    b = make_run(tmp_path / 'b', 'voc_entropy', {0: [(100, 0.10), (200, 0.30)]}, metric='pascal_voc/mAP')
    points = summarise(loaded([a, b]), 'pascal_voc/mAP')
    assert markdown_table(points, 'pascal_voc/mAP').startswith('pascal_voc/mAP (×100)')
    assert '| 200 | +10.00 |' in comparison(points, 'random')


def test_plot_has_one_line_per_method_and_reference(runs, tmp_path):
    points = summarise(loaded(runs), METRIC)
    reference = read_reference(find_reference('cifar10_main'))
    fig = plot_curves(points, METRIC, 'random', reference)
    labels = {line.get_label(): line for line in fig.axes[0].get_lines()}
    ours = [k for k in labels if not k.endswith('(paper)')]
    assert sorted(ours) == ['coreset', 'entropy', 'random']
    assert labels['random'].get_linestyle() == ':' and labels['entropy'].get_linestyle() == '-'
    assert {'random (paper)', 'entropy (paper)', 'coreset (paper)'} <= set(labels)
    # The band is drawn with the mean line, in its colour; NaN std (one trial) draws no band.
    assert len(fig.axes[0].collections) == 3


def test_cli_writes_every_file_and_pools_work_dirs_of_one_name(runs, tmp_path):
    out = tmp_path / 'report'
    second = shutil.copytree(runs[0], tmp_path / 'r2')  # two more trials of random, in another work dir
    proc = subprocess.run([sys.executable, AL_REPORT, *runs, str(second), runs[0], '--out', str(out), '--names',
                           'random', 'entropy', 'coreset', 'random', 'random', '--reference', 'table02_cifar10_main'],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # 4 random trials: both work dirs pool, the one passed twice counts once
    assert '| 1000 | 51.00 ± 1.15 | 51.00 ± 1.41 | 51.00 ± 0.00 |' in proc.stdout
    assert (out / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    rows = list(csv.DictReader(open(out / 'summary.csv')))
    assert rows[0] == dict(labeled='1000', method='random', mean='51.0', std=rows[0]['std'], n='4', nan='0')
    assert next(r for r in rows if r['method'] == 'entropy' and r['labeled'] == '2000')['nan'] == '1'
    assert not [p for p in out.iterdir() if p.name.startswith('.')]  # no temporary file left


@pytest.mark.parametrize('args, message', [
    (['--names', 'a'], '--names has 1 names for 3 work dirs'),
    (['--reference', 'table99'], "unknown reference table 'table99'; pass a CSV path or one of: table02"),
    (['--metric', 'nope'], "no run has the metric 'nope'; available: accuracy/top1, loss."),
])
def test_cli_errors_are_one_sentence_and_write_nothing(runs, tmp_path, args, message):
    out = tmp_path / 'report'
    proc = subprocess.run([sys.executable, AL_REPORT, *runs, '--out', str(out), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr and 'Traceback' not in proc.stderr, proc.stderr
    assert not out.exists()


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match='has no results.csv; pass the work dir of an al_train.py run'):
        read_run(str(tmp_path))


def test_write_report_with_only_nan_values_does_not_crash(tmp_path):
    run = Run('random', str(tmp_path), [dict(trial=0, cycle=0, num_labeled=10, metric=METRIC, value=float('nan'))])
    paths = write_report([run], str(tmp_path / 'out'))
    text = open(paths['markdown']).read()
    assert '| 10 | NaN |' in text and '| random | NaN | NaN |' in text
    assert osp.getsize(paths['plot']) > 0


def test_short_names_keep_the_method_word():
    assert short_names(['cifar10_random', 'cifar10_entropy']) == ['random', 'entropy']
    assert short_names(['cifar10_entropy_budget500', 'cifar10_entropy_budget2000']) == [
        'entropy_budget500', 'entropy_budget2000']
    assert short_names(['ssd_voc_random', 'ssd_voc_var_ratio']) == ['random', 'var_ratio']
    assert short_names(['only_one']) == ['only_one']


def test_selection_table_names_the_acting_selector_and_the_coverage_measured():
    from mmal.report.summary import Run, selection_table
    switch = Run('switch', 'w', [], acquisitions=[
        dict(trial=0, num_labeled=20, acted_by='TypiClust', coverage=0.4),
        dict(trial=1, num_labeled=20, acted_by='TypiClust', coverage=0.5),
        dict(trial=0, num_labeled=40, acted_by='TopK', coverage=0.8),
        dict(trial=1, num_labeled=40, acted_by='TypiClust', coverage=0.7)])
    plain = Run('typiclust', 'w', [], acquisitions=[dict(trial=0, num_labeled=20, acted_by='TypiClust', coverage=None)])
    table = selection_table([switch, plain]).splitlines()
    assert table[-2] == '| 20 | TypiClust (coverage 0.45) | TypiClust |'
    assert table[-1] == '| 40 | TopK 1, TypiClust 1 (coverage 0.75) |  |'
