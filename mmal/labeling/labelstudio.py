"""A labeling project connected to a Label Studio server through its SDK (``label-studio-sdk``, the
``labelstudio`` extra): ``push`` sends a batch, ``pull`` brings its labels back.

``push`` creates a Label Studio project with mmal's labeling config (or reuses the one pushed to
before, so every cycle runs in one project), connects the project's image folder as local-files
storage (so Label Studio serves the images; nothing is synced), imports the batch's tasks with the
model's boxes as predictions (the acquisition score as the prediction's score), and fetches the first
task's image through Label Studio to check that the annotator will see it. ``pull`` exports the
project as JSON and reads it with the same checks as ``import``; tasks of earlier cycles are
recognised by their ``mmal_cycle`` and ignored.

The server must serve local files: start it with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``
and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to a folder above the image folder (Label Studio
refuses a storage at its document root itself); ``document_root`` is that folder, by default the
image folder's parent.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import UserError
from .project import LabelingProject
from .readers import ImportContext, Returned, read_labelstudio

TOKEN_ENV = 'LABEL_STUDIO_API_KEY'


def _client(url: str, token: Optional[str]) -> Any:
    try:
        from label_studio_sdk import LabelStudio
    except ImportError:
        raise UserError('push and pull need the Label Studio SDK: pip install "mmdet-active-learning[labelstudio]" '
                        '(label-studio-sdk==2.1.2).') from None
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise UserError(f'Label Studio needs an API token: pass --token or set {TOKEN_ENV} (Label Studio: Account & '
                        'Settings -> Access Token).')
    return LabelStudio(base_url=url.rstrip('/'), api_key=token)


def _call(what: str, url: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """An SDK call, its failures one sentence."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        return fn(*args, **kwargs)
    except ApiError as err:
        body = err.body if isinstance(err.body, str) else json.dumps(err.body)[:300]
        fix = ' (check --token)' if err.status_code in (401, 403) else ''
        raise UserError(f'Label Studio at {url} refused to {what} (HTTP {err.status_code}: {body}){fix}.') from None
    except httpx.HTTPError as err:
        raise UserError(f'cannot reach Label Studio at {url} to {what} ({type(err).__name__}: {err}); start it or '
                        'pass its --url.') from None


def _image_served(client: Any, url: str, image_url: str, expected: str) -> Optional[str]:
    """Why Label Studio does not serve an image to annotators (None: it does, byte for byte)."""
    import httpx

    headers = client._client_wrapper.get_headers()  # the SDK's authorisation, whatever kind of token
    try:
        response = httpx.get(url.rstrip('/') + image_url, headers=headers, follow_redirects=True, timeout=60)
    except Exception as err:  # noqa: BLE001 - any failure to fetch is the answer
        return f'fetching {image_url} failed ({type(err).__name__})'
    with open(expected, 'rb') as f:
        if response.status_code == 200 and response.content == f.read():
            return None
    return f'{image_url} answered HTTP {response.status_code} without the image\'s bytes'


def push(project: LabelingProject, url: Optional[str], token: Optional[str], ls_project: Optional[int],
         pre_threshold: float = 0.3, options: Optional[dict] = None, document_root: Optional[str] = None) -> str:
    """Send the selected batch to Label Studio (see the module docstring); the batch is then out.

    Args:
        project: The project (its lock held), a batch selected.
        url: The server (default: the one pushed to before).
        token: An API token (default: ``$LABEL_STUDIO_API_KEY``).
        ls_project: A Label Studio project id (default: the one pushed to before, else a new one).
        pre_threshold: Score of the model's boxes kept as pre-annotations.
        options: ``--cfg-options`` for the model that draws them.
        document_root: The server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (default: the one
            pushed with before, else the image folder's parent).

    Returns:
        What was done, to print.

    Raises:
        UserError: Out of order, no server, refused by the server, or images the server does not serve.
    """
    from . import commands

    project.expect('push', ('export', 'import'))
    before = project.state.labelstudio
    url = url or before.get('url')
    if not url:
        raise UserError('push needs the Label Studio server: pass --url (e.g. http://localhost:8080).')
    images = osp.abspath(project.state.image_root)
    root = osp.abspath(document_root or before.get('document_root') or osp.dirname(images))
    if root == images or osp.commonpath([root, images]) != root:
        raise UserError(f'the image folder {images} is not inside Label Studio\'s document root {root}; pass '
                        '--document-root with the folder LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT names (a folder above '
                        'the images).')
    client = _client(url, token)
    relative = osp.relpath(images, root)
    prefix = '/data/local-files/?d=' + relative.replace(os.sep, '/') + '/'
    commands.export(project, prefix, pre_threshold, options=options)
    with open(project.cycle_path('export', 'labeling_config.xml')) as f:
        label_config = f.read()
    with open(project.cycle_path('export', 'labelstudio_tasks.json')) as f:
        tasks = json.load(f)

    pid = ls_project or (before.get('project') if before.get('url') == url else None)
    if pid is None:
        created = _call('create a project', url, client.projects.create, title=f'mmal: {osp.basename(project.root)}',
                        label_config=label_config)
        pid = created.id
    else:
        found = _call(f'open project {pid}', url, client.projects.get, id=pid)
        if (found.label_config or '').strip() != label_config.strip():
            _call(f'set project {pid}\'s labeling config', url, client.projects.update, id=pid,
                  label_config=label_config)
    storages = _call('list its storages', url, client.import_storage.local.list, project=pid)
    if not any(osp.abspath(s.path or '') == images for s in storages):
        _call(f'connect {images} as local-files storage (start it with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true '
              f'and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} or a folder above)', url,
              client.import_storage.local.create, project=pid, path=images, use_blob_urls=True,
              title='mmal images')
    already = {t.data.get('mmal_id') for t in _call('list its tasks', url, lambda: list(
        client.tasks.list(project=pid, fields='all'))) if (t.data or {}).get('mmal_cycle') == project.state.cycle}
    fresh = [t for t in tasks if t['data']['mmal_id'] not in already]
    if fresh:
        _call('import the tasks', url, client.projects.import_tasks, id=pid, request=fresh)
    why = _image_served(client, url, tasks[0]['data']['image'], project.image_file(
        next(im for im in project.pool if im['id'] == tasks[0]['data']['mmal_id'])))
    if why:
        raise UserError(f'Label Studio does not show the images to annotators: {why}; start it with '
                        'LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and '
                        f'LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} (or pass --document-root), then push again.')
    project.state.labelstudio = dict(url=url, project=pid, document_root=root)
    project.save()
    return (f'{len(fresh)} tasks sent to Label Studio project {pid} ({len(tasks) - len(fresh)} were there already): '
            f'{url.rstrip("/")}/projects/{pid}/data; label them, then: al_project.py pull {project.root}')


def pull(project: LabelingProject, ctx: ImportContext, token: Optional[str]) -> Tuple[Returned, str]:
    """This batch's labels from the Label Studio project it was pushed to, checked as ``import`` checks
    a file.

    Returns:
        ``(the labels, a name of where they came from)``.
    """
    project.expect('pull', ('import',))
    linked: Dict[str, Any] = project.state.labelstudio
    if not linked.get('url'):
        raise UserError('this batch was not pushed to Label Studio; push it first, or import the file its labeling '
                        'tool exported.')
    url, pid = linked['url'], linked['project']
    client = _client(url, token)
    data = _call(f'export project {pid}', url, client.projects.exports.as_binary, pid, export_type='JSON')
    source = f'Label Studio project {pid} at {url}'
    try:
        tasks = json.loads(data)
    except (ValueError, RecursionError):
        raise UserError(f'{source} exported something that is not JSON; export it by hand and import the file.') \
            from None
    return read_labelstudio(tasks, source, ctx), source
