"""One active-learning cycle through a real Label Studio server, on the toy VOC set.

    python tools/labelstudio_roundtrip.py --work-dir DIR [--record tests/fixtures/labelstudio]

1. installs Label Studio (pinned, LABEL_STUDIO_VERSION) into its own virtualenv, ``.venv-labelstudio/``
   beside the repository's ``.venv`` (its dependencies never touch mmal's), unless it is there;
2. writes the toy VOC set, starts an mmal project with 8 seed images, trains, selects 6 images and
   exports them (tools/al_project.py, as a user would);
3. starts Label Studio on 127.0.0.1 (a free port, sqlite in a temporary data folder, local files
   served from the project's image folder), creates a project with mmal's labeling config and
   imports mmal's tasks with their pre-annotations, over its HTTP API;
4. answers as a simulated annotator: the toy set's ground truth, the first task by correcting the
   model's pre-annotations, the last task skipped;
5. exports the labels (Label Studio JSON, and COCO), stops the server, imports them into mmal
   (``--skipped pool``), trains the next cycle and selects again.

With ``--record`` it also writes what the server returned, as fixtures for the default test suite.
Everything runs on this machine; nothing but the package registry (for the install) is reached.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.cookiejar import CookieJar
from typing import Any, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LABEL_STUDIO_VERSION = '1.23.2'
LS_VENV = osp.join(ROOT, '.venv-labelstudio')
USER, PASSWORD, TOKEN = 'annotator@example.com', 'mmal-roundtrip-1', 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9'


def say(text: str) -> None:
    print(f'[roundtrip] {text}', flush=True)


def run(*args: str, cwd: str = ROOT) -> str:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f'{" ".join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc.stdout


def label_studio_executable() -> str:
    exe = osp.join(LS_VENV, 'bin', 'label-studio')
    if osp.isfile(exe):
        return exe
    say(f'installing label-studio=={LABEL_STUDIO_VERSION} into {LS_VENV} (its own virtualenv)')
    run('python3', '-m', 'venv', LS_VENV)
    run(osp.join(LS_VENV, 'bin', 'python'), '-m', 'pip', 'install', '--quiet', f'label-studio=={LABEL_STUDIO_VERSION}')
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class LabelStudio:
    """A Label Studio server of this run, spoken to over HTTP (standard library only)."""

    def __init__(self, exe: str, data_dir: str, document_root: str) -> None:
        self.port = free_port()
        self.base = f'http://127.0.0.1:{self.port}'
        env = dict(os.environ, LABEL_STUDIO_BASE_DATA_DIR=data_dir, DJANGO_DB='sqlite',
                   LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED='true',
                   LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=document_root,
                   LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK='true', SENTRY_DSN='', LOG_LEVEL='WARNING')
        self.log = open(osp.join(data_dir, 'server.log'), 'w')
        self.proc = subprocess.Popen([exe, 'start', '--no-browser', '--host', '127.0.0.1', '--port', str(self.port),
                                      '--data-dir', data_dir, '--username', USER, '--password', PASSWORD,
                                      '--user-token', TOKEN], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.wait()
        self.enable_token()

    def wait(self, timeout: float = 300) -> None:
        start = time.time()
        while time.time() - start < timeout:
            if self.proc.poll() is not None:
                sys.exit(f'Label Studio stopped (exit {self.proc.returncode}); see {self.log.name}')
            try:
                with urllib.request.urlopen(self.base + '/health', timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        sys.exit(f'Label Studio did not answer within {timeout:.0f} s; see {self.log.name}')

    def enable_token(self) -> None:
        """Label Studio >= 1.17 disables the legacy token by default: log in once and enable it."""
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(self.base + '/user/login/').read()
        csrf = next(c.value for c in jar if c.name == 'csrftoken')
        form = urllib.parse.urlencode(dict(email=USER, password=PASSWORD, csrfmiddlewaretoken=csrf)).encode()
        opener.open(urllib.request.Request(self.base + '/user/login/', data=form,
                                           headers={'Referer': self.base + '/user/login/'})).read()
        csrf = next(c.value for c in jar if c.name == 'csrftoken')
        body = json.dumps(dict(api_tokens_enabled=True, legacy_api_tokens_enabled=True)).encode()
        opener.open(urllib.request.Request(self.base + '/api/jwt/settings', data=body, method='POST', headers={
            'X-CSRFToken': csrf, 'Content-Type': 'application/json', 'Referer': self.base})).read()

    def api(self, method: str, path: str, body: Any = None, query: Optional[Dict[str, Any]] = None) -> bytes:
        url = self.base + path + ('?' + urllib.parse.urlencode(query) if query else '')
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            'Authorization': f'Token {TOKEN}', 'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                return r.read()
        except urllib.error.HTTPError as err:
            sys.exit(f'Label Studio {method} {path}: {err.code} {err.read()[:2000]!r}')

    def json(self, method: str, path: str, body: Any = None, query: Optional[Dict[str, Any]] = None) -> Any:
        return json.loads(self.api(method, path, body, query))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def iou(a: List[float], b: List[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def region(label: str, box: List[float], width: int, height: int) -> Dict[str, Any]:
    x1, y1, x2, y2 = box
    return dict(from_name='label', to_name='image', type='rectanglelabels', original_width=width,
                original_height=height, image_rotation=0,
                value=dict(x=100 * x1 / width, y=100 * y1 / height, width=100 * (x2 - x1) / width,
                           height=100 * (y2 - y1) / height, rotation=0, rectanglelabels=[label]))


def annotator(task: Dict[str, Any], truth: List[Dict[str, Any]], width: int, height: int,
              correct_predictions: bool) -> List[Dict[str, Any]]:
    """The ground truth as Label Studio results. With ``correct_predictions`` the annotator starts
    from the model's pre-annotations: for each true box, the predicted box that overlaps it most (the
    surest one where none does) is dragged onto it and given its class; predicted boxes left over
    are deleted; true boxes with no prediction left are drawn."""
    predicted = list(task['predictions'][0]['result']) if correct_predictions and task.get('predictions') else []
    results = []
    for true in truth:
        if not predicted:
            results.append(region(true['label'], true['box'], width, height))
            continue

        def overlap(pred: Dict[str, Any]) -> tuple:
            v = pred['value']
            box = [v['x'] * width / 100, v['y'] * height / 100, (v['x'] + v['width']) * width / 100,
                   (v['y'] + v['height']) * height / 100]
            return iou(box, true['box']), pred.get('score', 0.0)

        best = max(predicted, key=overlap)
        predicted.remove(best)
        corrected = {k: v for k, v in best.items() if k != 'score'}
        corrected['value'] = region(true['label'], true['box'], width, height)['value']
        results.append(corrected)
    return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', required=True, help='a new folder for the toy data, the project and the server')
    parser.add_argument('--record', help='write what the server returned here, as test fixtures')
    args = parser.parse_args(argv)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    exe = label_studio_executable()
    python, tool = sys.executable, osp.join(ROOT, 'tools', 'al_project.py')

    # -- an mmal project with a batch out for labeling ----------------------------------------------
    say('toy data, seed labels and the project')
    run(python, '-c', f'''
import json, os
from mmal.datasets import TOY_CLASSES, ToyVOCSpec, generate_toy_voc
from mmal.labeling.formats import voc_to_coco
root = generate_toy_voc({osp.join(work, "toy")!r}, ToyVOCSpec(num_trainval=40, num_test=16, seed=1))
voc = os.path.join(root, 'ToyVOC')
ids = [line.strip() for split in ('trainval', 'test')
       for line in open(os.path.join(voc, 'ImageSets', 'Main', split + '.txt'))]
json.dump(voc_to_coco(voc, ids[:8], TOY_CLASSES), open({osp.join(work, "seed.json")!r}, 'w'))
json.dump(voc_to_coco(voc, ids, TOY_CLASSES), open({osp.join(work, "truth.json")!r}, 'w'))
''')
    images = osp.join(work, 'toy', 'VOCdevkit', 'ToyVOC', 'JPEGImages')
    config = osp.join(work, 'ssd_toy.py')
    with open(config, 'w') as f:
        f.write(f"_base_ = {osp.join(ROOT, 'configs', 'demo', 'ssd_toyvoc.py')!r}\n"
                "train_dataloader = dict(batch_size=4)\ntrain_cfg = dict(max_epochs=2, val_interval=2)\n"
                "log_level = 'WARNING'\n")
    project = osp.join(work, 'project')
    run(python, tool, 'init', project, '--images', images, '--config', config, '--seed-labels',
        osp.join(work, 'seed.json'))
    run(python, tool, 'train', project, '--no-progress')
    run(python, tool, 'select', project, '--budget', '6', '--scorer', 'Entropy', '--no-progress')
    run(python, tool, 'export', project, '--pre-threshold', '0.22')  # the few boxes a 2-epoch model is surest of
    export_dir = osp.join(project, 'cycle_0', 'export')
    with open(osp.join(export_dir, 'labelstudio_tasks.json')) as f:
        tasks = json.load(f)
    with open(osp.join(export_dir, 'labeling_config.xml')) as f:
        label_config = f.read()
    with open(osp.join(work, 'truth.json')) as f:
        truth_coco = json.load(f)
    names = {c['id']: c['name'] for c in truth_coco['categories']}
    truth = {im['file_name']: (im, [dict(label=names[a['category_id']],
                                         box=[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                              a['bbox'][1] + a['bbox'][3]])
                                    for a in truth_coco['annotations'] if a['image_id'] == im['id']])
             for im in truth_coco['images']}

    # -- Label Studio ---------------------------------------------------------------------------------
    data_dir = tempfile.mkdtemp(prefix='label-studio-', dir=work)
    say(f'starting Label Studio {LABEL_STUDIO_VERSION} on 127.0.0.1 (data in {data_dir})')
    server = LabelStudio(exe, data_dir, images)
    try:
        ls_project = server.json('POST', '/api/projects', dict(title='mmal cycle 0', label_config=label_config))
        pid = ls_project['id']
        server.json('POST', f'/api/projects/{pid}/import', tasks)
        listed = server.json('GET', '/api/tasks', query=dict(project=pid, page_size=100))['tasks']
        listed.sort(key=lambda t: t['id'])
        with_predictions = [server.json('GET', f'/api/tasks/{t["id"]}') for t in listed]
        for n, task in enumerate(with_predictions):
            image, boxes = truth[task['data']['mmal_file']]
            if n == len(with_predictions) - 1:
                body = dict(result=[], was_cancelled=True)  # the annotator skips the last task
            else:
                body = dict(result=annotator(task, boxes, image['width'], image['height'], correct_predictions=n == 0),
                            was_cancelled=False, lead_time=3.0)
            server.json('POST', f'/api/tasks/{task["id"]}/annotations', body)
        exported = server.json('GET', f'/api/projects/{pid}/export', query=dict(exportType='JSON'))
        coco_zip = server.api('GET', f'/api/projects/{pid}/export', query=dict(exportType='COCO'))
    finally:
        server.stop()
        say('Label Studio stopped')
    with zipfile.ZipFile(io.BytesIO(coco_zip)) as z:
        coco = json.loads(z.read('result.json'))
    returned = osp.join(work, 'labelstudio_export.json')
    with open(returned, 'w') as f:
        json.dump(exported, f)

    # -- back into mmal: import, train, select again ----------------------------------------------
    say(run(python, tool, 'import', project, returned, '--skipped', 'pool').strip().splitlines()[-1])
    run(python, tool, 'train', project, '--no-progress')
    say(run(python, tool, 'select', project, '--budget', '6', '--scorer', 'Entropy', '--no-progress')
        .strip().splitlines()[-1])
    status = json.loads(run(python, tool, 'status', project))
    say(f'status: {status}')
    if args.record:
        os.makedirs(args.record, exist_ok=True)
        shutil.copy(osp.join(project, 'cycle_0', 'selected.json'), osp.join(args.record, 'selected.json'))
        shutil.copy(osp.join(project, 'pool.json'), osp.join(args.record, 'pool.json'))
        for name, obj in (('tasks_sent.json', tasks), ('labelstudio_export.json', exported),
                          ('labelstudio_coco.json', coco)):
            with open(osp.join(args.record, name), 'w') as f:
                json.dump(obj, f, indent=1)
        with open(osp.join(args.record, 'README.md'), 'w') as f:
            f.write(f'# Recorded from a real Label Studio {LABEL_STUDIO_VERSION} server\n\n'
                    'Written by `python tools/labelstudio_roundtrip.py --work-dir DIR --record '
                    'tests/fixtures/labelstudio` (the slow test `tests/test_labelstudio_live.py` runs the same '
                    'cycle). Nothing here is hand-written:\n\n'
                    '- `pool.json`, `selected.json`: the mmal project\'s pool and the batch it picked (cycle 0);\n'
                    '- `tasks_sent.json`: the tasks mmal exported and imported into Label Studio;\n'
                    '- `labelstudio_export.json`: Label Studio\'s JSON export after a simulated annotator answered '
                    '(ground truth; the first task corrected from the pre-annotations; the last task skipped);\n'
                    '- `labelstudio_coco.json`: `result.json` of Label Studio\'s COCO export of the same project.\n')
        say(f'fixtures written to {args.record}')
    print(json.dumps(dict(imported=status['labeled_images'], boxes=status['labeled_boxes'], cycle=status['cycle'],
                          next_step=status['next_step'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
