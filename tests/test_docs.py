"""The docs pages as a newcomer reads them: every command of a ``bash`` block is one the project
accepts as written (the tool exists, its argument parser takes the arguments, every config and
script it names exists and every config loads), links between pages resolve, and no page shows a
path of the machine it was written on.

Commands that can run here run in their own tests: the labeling walk-through
(``tests/test_labeling_project.py``), the demo (``tests/test_demo.py``), the zoo sweep and the
support table (``tests/test_zoo_sweep.py``). Training on PASCAL VOC or on 8 GPUs cannot run here:
for those this test checks everything up to the run.
"""
import glob
import os.path as osp
import re
import shlex
from importlib import import_module

import pytest
from conftest import REPO

from mmal.apps.main import COMMANDS

PAGES = sorted(glob.glob(osp.join(REPO, 'docs', '*.md'))) + [osp.join(REPO, 'README.md')]
#: tools/<name>.py -> (module of mmal.apps, arguments the wrapper adds)
WRAPPERS = {'al_train': ('al_train', []), 'al_select': ('al_select', []), 'al_project': ('al_project', []),
            'al_report': ('al_report', []), 'train': ('train', []), 'zoo_sweep': ('sweep', []),
            'support_matrix': ('sweep', ['--matrix'])}
#: Commands of other programs the docs name (each checked where it runs: Label Studio in the live test).
EXTERNAL = {'label-studio', 'export'}


def commands(page):
    """``(line, argv)`` of every command in the page's ``bash`` blocks, variables of the block expanded."""
    with open(page) as f:
        text = f.read()
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        variables = {}
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split(' #')[0].strip()
            if not line or line.startswith('#'):
                continue
            line = line.replace('$(pwd)', REPO)
            line = re.sub(r'\$(\w+)', lambda m: variables.get(m.group(1), m.group(0)), line)
            argv = shlex.split(line)
            while argv and re.fullmatch(r'[A-Z_]+=.*', argv[0]):  # NAME=value: a variable, or the command's env
                name, value = argv.pop(0).split('=', 1)
                if not argv:
                    variables[name] = value
            if argv:
                yield line, argv


def all_commands():
    return [pytest.param(argv, id=f'{osp.basename(page)}: {line[:70]}')
            for page in PAGES for line, argv in commands(page)]


def parses(module, args):
    """The tool's own parser takes ``args`` (argparse exits on anything it refuses)."""
    try:
        import_module(f'mmal.apps.{module}').parse_args(args)
    except SystemExit as err:
        pytest.fail(f'mmal.apps.{module} refuses {args}: exit {err.code}')


def check_paths(argv):
    """Every config and script the command names exists; every config loads (its _base_ too)."""
    from mmengine.config import Config
    for arg in argv:
        for value in arg.split('=')[-1:]:
            if value.startswith(('configs/', 'tools/')):
                assert osp.exists(osp.join(REPO, value)), f'{value} does not exist'
                if value.startswith('configs/') and value.endswith('.py'):
                    Config.fromfile(osp.join(REPO, value))


def shell_cases(script):
    """The words a bash script's ``case`` accepts (``a|b|c)``)."""
    with open(osp.join(REPO, script)) as f:
        return {word for arm in re.findall(r'^\s*(?:case "\$\w+" in )?([\w|]+)\)', f.read(), re.M)
                for word in arm.split('|')}


@pytest.mark.parametrize('argv', all_commands())
def test_every_command_of_the_docs_is_accepted_as_written(argv):
    check_paths(argv)
    program, args = argv[0], argv[1:]
    if program in EXTERNAL:
        return
    if program == '.venv/bin/mmal':
        assert args and args[0] in COMMANDS, f'mmal has no command {args[:1]}'
        parses(COMMANDS[args[0]][0], args[1:])
    elif program == '.venv/bin/python':
        if args[:2] == ['-m', 'torch.distributed.run']:
            args = args[next(i for i, a in enumerate(args) if a.startswith('tools/')):]
        if args[0] == '-m':
            module = import_module(args[1])
            assert hasattr(module, 'main'), f'{args[1]} has no main()'
            return
        name = osp.splitext(osp.basename(args[0]))[0]
        assert args[0] == f'tools/{name}.py' and name in WRAPPERS, f'{args[0]} is not one of the tools'
        module, added = WRAPPERS[name]
        parses(module, added + args[1:])
    elif program == 'bash':
        script, rest = args[0], args[1:]
        if script == 'tools/run.sh':
            assert rest[0] in shell_cases(script), f'tools/run.sh has no command {rest[0]}'
        elif script == 'tools/download_data.sh':
            assert rest[0] in shell_cases(script), f'tools/download_data.sh cannot fetch {rest[0]}'
        elif script == 'tools/dist_train.sh':  # CONFIG NPROC [al_train.py arguments]
            assert int(rest[1]) > 0
            parses('al_train', [rest[0], *rest[2:]])
        elif script == 'tools/slurm_train.sh':  # PARTITION JOB_NAME CONFIG WORK_DIR [al_train.py arguments]
            parses('al_train', [rest[2], '--work-dir', rest[3], *rest[4:]])
        else:
            pytest.fail(f'the docs run {script}, which this test does not know')
    else:
        pytest.fail(f'the docs run {program}, which this test does not know')


def test_the_pages_link_to_pages_that_exist_and_show_no_machine_paths():
    for page in PAGES:
        with open(page) as f:
            text = f.read()
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
            if not target.startswith(('http://', 'https://')):
                assert osp.exists(osp.join(osp.dirname(page), target)), f'{page}: the link {target} is broken'
        found = re.findall(r'(?:/work/|/root/|/home/\w+|/tmp/\w+|site-packages/)', text)
        assert not found, f'{osp.relpath(page, REPO)} shows paths of a machine: {sorted(set(found))}'
