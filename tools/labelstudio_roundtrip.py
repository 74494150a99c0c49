"""Two active-learning cycles through a real Label Studio server and its API, on the toy VOC set.

    python tools/labelstudio_roundtrip.py --work-dir DIR [--record tests/fixtures/labelstudio]

1. installs Label Studio (pinned, LABEL_STUDIO_VERSION) into its own virtualenv, ``.venv-labelstudio/``
   beside the repository's ``.venv`` (its dependencies never touch mmal's), unless it is there, and
   the SDK (the ``labelstudio`` extra, LABEL_STUDIO_SDK) into this interpreter's environment;
2. writes the toy VOC set, starts an mmal project with 8 seed images, trains and selects 6 images
   (tools/al_project.py, as a user would);
3. starts Label Studio on 127.0.0.1 (a free port, sqlite in a temporary data folder, local files
   served from the folder above the images) and runs ``al_project.py push``: a Label Studio project
   with mmal's labeling config, the image folder connected as local-files storage, the batch's tasks
   with their pre-annotations;
4. fetches every task's image through Label Studio and checks it is the image file, byte for byte;
5. answers as a simulated annotator over the HTTP API: the toy set's ground truth, the first task by
   correcting the model's pre-annotations, one box drawn at whole pixels, the last task skipped;
6. ``al_project.py pull --skipped pool``, checks the drawn box arrived in ``labeled.json`` as exactly
   its pixels; trains, selects and pushes cycle 1 into the same Label Studio project, answers, pulls
   (cycle 0's tasks recognised and ignored), and stops the server.

With ``--record`` it also writes what the server returned in cycle 0, as test fixtures. Everything
runs on this machine; nothing but the package registry (for the installs) is reached.
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
LABEL_STUDIO_SDK = 'label-studio-sdk==2.1.2'  # the one Label Studio 1.23.2 ships with
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


def ensure_sdk() -> None:
    """The Label Studio SDK in this environment (the ``labelstudio`` extra), for push and pull."""
    try:
        import label_studio_sdk  # noqa: F401
    except ImportError:
        say(f'installing {LABEL_STUDIO_SDK} (the labelstudio extra) into {sys.prefix}')
        run(sys.executable, '-m', 'pip', 'install', '--quiet', LABEL_STUDIO_SDK)


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


def answer_tasks(server: 'LabelStudio', pid: int, cycle: int, truth: Dict[str, Any],
                 drawn: Optional[List[float]] = None) -> Dict[str, Any]:
    """Answer the project's tasks of ``cycle`` as the simulated annotator (see the module docstring);
    returns the exact pixel box drawn on the second task, if ``drawn``."""
    listed = server.json('GET', '/api/tasks', query=dict(project=pid, page_size=100))['tasks']
    tasks = sorted((server.json('GET', f'/api/tasks/{t["id"]}') for t in listed), key=lambda t: t['id'])
    tasks = [t for t in tasks if t['data'].get('mmal_cycle') == cycle]
    out: Dict[str, Any] = {}
    for n, task in enumerate(tasks):
        image, boxes = truth[task['data']['mmal_file']]
        if n == len(tasks) - 1:
            body = dict(result=[], was_cancelled=True)  # the annotator skips the last task
        else:
            result = annotator(task, boxes, image['width'], image['height'], correct_predictions=n == 0)
            if n == 1 and drawn:
                result.append(region('cross', drawn, image['width'], image['height']))
                out = dict(file=task['data']['mmal_file'], box=drawn)
            body = dict(result=result, was_cancelled=False, lead_time=3.0)
        server.json('POST', f'/api/tasks/{task["id"]}/annotations', body)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', required=True, help='a new folder for the toy data, the project and the server')
    parser.add_argument('--record', help='write what the server returned here, as test fixtures')
    args = parser.parse_args(argv)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    exe = label_studio_executable()
    ensure_sdk()
    python, tool = sys.executable, osp.join(ROOT, 'tools', 'al_project.py')

    # -- an mmal project with a batch selected --------------------------------------------------------------
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
    with open(osp.join(work, 'truth.json')) as f:
        truth_coco = json.load(f)
    names = {c['id']: c['name'] for c in truth_coco['categories']}
    truth = {im['file_name']: (im, [dict(label=names[a['category_id']],
                                         box=[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                              a['bbox'][1] + a['bbox'][3]])
                                    for a in truth_coco['annotations'] if a['image_id'] == im['id']])
             for im in truth_coco['images']}

    # -- Label Studio, through mmal's push and pull ---------------------------------------------------------
    data_dir = tempfile.mkdtemp(prefix='label-studio-', dir=work)
    say(f'starting Label Studio {LABEL_STUDIO_VERSION} on 127.0.0.1 (data in {data_dir})')
    server = LabelStudio(exe, data_dir, osp.dirname(images))
    access = ['--token', TOKEN]
    try:
        say(run(python, tool, 'push', project, '--url', server.base, *access, '--pre-threshold', '0.22')
            .strip().splitlines()[-1])
        with open(osp.join(project, 'project.json')) as f:
            pid = json.load(f)['labelstudio']['project']
        listed = server.json('GET', '/api/tasks', query=dict(project=pid, page_size=100))['tasks']
        served = 0
        for task in listed:  # what the annotator's browser loads: each task's image, through Label Studio
            body = server.api('GET', task['data']['image'].split('?', 1)[0], query=dict(
                urllib.parse.parse_qsl(task['data']['image'].split('?', 1)[1])))
            with open(osp.join(images, task['data']['mmal_file']), 'rb') as f:
                if body != f.read():
                    sys.exit(f'Label Studio served other bytes for {task["data"]["image"]}')
            served += 1
        say(f'{served} task images fetched through Label Studio, each the image file byte for byte')
        drawn = answer_tasks(server, pid, 0, truth, drawn=[17.0, 9.0, 61.0, 50.0])
        exported = server.json('GET', f'/api/projects/{pid}/export', query=dict(exportType='JSON'))
        coco_zip = server.api('GET', f'/api/projects/{pid}/export', query=dict(exportType='COCO'))
        with open(osp.join(project, 'cycle_0', 'export', 'labelstudio_tasks.json')) as f:
            tasks = json.load(f)
        say(run(python, tool, 'pull', project, *access, '--skipped', 'pool').strip().replace('\n', '; '))
        with open(osp.join(project, 'labeled.json')) as f:
            labeled = json.load(f)
        image_id = next(im['id'] for im in labeled['images'] if im['file_name'] == drawn['file'])
        x1, y1, x2, y2 = drawn['box']
        if [x1, y1, x2 - x1, y2 - y1] not in [a['bbox'] for a in labeled['annotations'] if a['image_id'] == image_id]:
            sys.exit(f'the box drawn at {drawn["box"]} on {drawn["file"]} did not arrive as its pixels')
        say(f'the box drawn at {drawn["box"]} on {drawn["file"]} is in labeled.json as exactly its pixels')

        run(python, tool, 'train', project, '--no-progress')
        run(python, tool, 'select', project, '--budget', '6', '--scorer', 'Entropy', '--no-progress')
        say(run(python, tool, 'push', project, *access).strip().splitlines()[-1])  # the same Label Studio project
        answer_tasks(server, pid, 1, truth)
        pulled = run(python, tool, 'pull', project, *access, '--skipped', 'pool')
        say(pulled.strip().replace('\n', '; '))
        if '6 tasks of earlier cycles ignored' not in pulled:
            sys.exit('cycle 0\'s tasks were not recognised in the reused Label Studio project')
    finally:
        server.stop()
        say('Label Studio stopped')
    with zipfile.ZipFile(io.BytesIO(coco_zip)) as z:
        coco = json.loads(z.read('result.json'))
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
        say(f'fixtures written to {args.record}')
    print(json.dumps(dict(imported=status['labeled_images'], boxes=status['labeled_boxes'], cycle=status['cycle'],
                          next_step=status['next_step'], served=served, project=pid)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
