"""The shell commands of README.md and the manual (docs/**/*.md) stay true.

Every fenced shell block (bash, sh, shell, console) has a marker, an HTML comment on the line before it:

    <!-- run: exit N, prints "KEY LINE" -->   run in a scratch directory (no data, empty weight caches,
                                              HF_HUB_OFFLINE=1); its exit code must be N and its output
                                              must contain KEY LINE (slow tier: tools start in seconds)
    <!-- not run: WHY -->                     too long, needs a GPU, COCO or the internet, or a synopsis
                                              with placeholders; listed by test_shell_blocks_are_marked

A shell block without a marker, a fenced block without a language, or a command in an indented code
block fails. The commands of every shell block, run or not, and every inline code span that is a
command (`python tools/...`) are also handed to the tool's own argparse parser in this process, so a
documented option that a tool no longer has, or a tool or config that is gone, fails the fast tier.
"""
import argparse
import contextlib
import importlib.util
import io
import os
import re
import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional
from unittest import mock

import pytest
from markdown_it import MarkdownIt
from myst_parser.mdit_to_docutils.base import default_slugify

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = ('bash', 'sh', 'shell', 'console')
MARKER = re.compile(r'<!--\s*(run|not run)\b')
RUN = re.compile(r'<!--\s*run:\s*exit (\d+), prints "(.+)"\s*-->$')
NOT_RUN = re.compile(r'<!--\s*not run:\s*(\S.*?)\s*-->$')
# A command: optional VAR=value assignments, then one of the programs the docs run or a variable that a
# shell block of the same page defines (docs/reproduce.md: `$STUDY CONFIG --seeds 0 1 2`).
COMMAND = re.compile(r'^\s*(\w+=\S*\s+)*(python3?|bash|sh|\.venv/bin/python|pip|torchrun|srun|\$[A-Z_]+)\s')
RECORDED = ('python', 'python3', 'bash', 'sh', 'pip')  # the programs the dry evaluation records instead of running
RECORDER = '#!/bin/bash\n{ printf "%s\\0" "$0" "$@"; printf "\\1\\0"; } >> "$DOCS_CALLS"\n'


@dataclass
class ShellBlock:
    where: str  # 'docs/get_started.md:12'
    code: str
    exit_code: Optional[int] = None  # run blocks: expected exit code and key line of output
    prints: Optional[str] = None
    not_run: Optional[str] = None  # not-run blocks: why


def markdown_files() -> List[Path]:
    return [ROOT / 'README.md'] + sorted(p for p in (ROOT / 'docs').rglob('*.md') if '_build' not in p.parts)


def scan(path: Path):
    """(shell blocks, inline commands as (where, text), problems) of one Markdown file."""
    rel = path.relative_to(ROOT).as_posix()
    tokens = MarkdownIt('commonmark').parse(path.read_text(encoding='utf-8'))
    blocks, inline, problems = [], [], []
    for i, token in enumerate(tokens):
        where = f'{rel}:{token.map[0] + 1}' if token.map else rel
        if token.type == 'html_block' and MARKER.match(token.content):
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is None or following.type != 'fence' or following.info.split()[:1] not in (
                    [language] for language in SHELL_LANGUAGES):
                problems.append(f'{where}: a run / not-run marker must stand right before a shell block')
        elif token.type == 'fence':
            language = token.info.split()[0] if token.info.strip() else ''
            if not language:
                problems.append(f'{where}: fenced block without a language (bash for commands, text for output)')
            elif language in SHELL_LANGUAGES:
                marker = tokens[i - 1].content.strip() if i and tokens[i - 1].type == 'html_block' else ''
                run, not_run = RUN.match(marker), NOT_RUN.match(marker)
                if run:
                    blocks.append(ShellBlock(where, token.content, exit_code=int(run[1]), prints=run[2]))
                elif not_run:
                    blocks.append(ShellBlock(where, token.content, not_run=not_run[1]))
                else:
                    problems.append(f'{where}: shell block without a valid marker ({marker or "none"}): put '
                                    '<!-- run: exit N, prints "KEY LINE" --> or <!-- not run: WHY --> '
                                    'on the line before it')
        elif token.type == 'code_block' and any(COMMAND.match(line) for line in token.content.splitlines()):
            problems.append(f'{where}: command in an indented code block: use a fenced bash block with a marker')
        elif token.type == 'inline':
            inline += [(where, child.content) for child in token.children or ()
                       if child.type == 'code_inline' and COMMAND.match(child.content + ' ')]
    return blocks, inline, problems


BLOCKS, INLINE, PROBLEMS = [], [], []
for _path in markdown_files():
    _blocks, _inline, _problems = scan(_path)
    BLOCKS += _blocks
    INLINE += _inline
    PROBLEMS += _problems


def test_shell_blocks_are_marked():
    not_run = [b for b in BLOCKS if b.not_run]
    print(f'\n{len(BLOCKS) - len(not_run)} documented shell blocks run (slow tier), {len(not_run)} not run:')
    for block in not_run:
        print(f'  {block.where}: {block.not_run}: {block.code.splitlines()[0]}')
    assert not PROBLEMS, 'Markdown shell blocks:\n' + '\n'.join(PROBLEMS)
    assert any(b.exit_code is not None for b in BLOCKS) and not_run


def test_markers_are_checked():
    """The scan itself: an unmarked block, a fence without a language, an indented command and a
    malformed marker are problems; marked blocks are read with their expectations."""
    text = ('<!-- run: exit 2, prints "cannot start" -->\n```bash\npython tools/train.py x.py\n```\n\n'
            '<!-- not run: needs a GPU -->\n```sh\nbash tools/check_gpu.sh\n```\n\n'
            '```bash\npython tools/test.py --help\n```\n\n'
            '```\nplain\n```\n\n'
            'Text:\n\n    python tools/train.py x.py\n\n'
            '<!-- run: exit two -->\n```bash\nls\n```\n\n'
            '<!-- not run: orphan -->\n\nText with `python tools/test.py --help` in it.\n')
    with mock.patch.object(Path, 'read_text', return_value=text):
        blocks, inline, problems = scan(ROOT / 'docs' / 'x.md')
    assert [(b.where, b.exit_code, b.prints, b.not_run) for b in blocks] == [
        ('docs/x.md:2', 2, 'cannot start', None), ('docs/x.md:7', None, None, 'needs a GPU')]
    assert inline == [('docs/x.md:30', 'python tools/test.py --help')]
    expected = [('11', 'shell block without a valid marker (none)'), ('15', 'fenced block without a language'),
                ('21', 'command in an indented code block'),
                ('24', 'shell block without a valid marker (<!-- run: exit two -->)'),
                ('28', 'a run / not-run marker must stand right before a shell block')]
    assert len(problems) == len(expected)
    for problem, (line, what) in zip(problems, expected):
        assert problem.startswith(f'docs/x.md:{line}: {what}'), problem


@pytest.fixture(scope='module')
def recorder(tmp_path_factory):
    """A scratch directory where python and bash record their arguments instead of running."""
    sandbox = tmp_path_factory.mktemp('docs_dry')
    for name in ('tools', 'configs', 'docs'):
        (sandbox / name).symlink_to(ROOT / name)
    bins = [sandbox / 'bin', sandbox / '.venv' / 'bin']
    for directory in bins:
        directory.mkdir(parents=True)
    shim = bins[0] / 'record'
    shim.write_text(RECORDER)
    shim.chmod(0o755)
    for name in RECORDED:
        (bins[0] / name).symlink_to(shim)
    (bins[1] / 'python').symlink_to(shim)
    return sandbox


def recorded_calls(code: str, sandbox: Path) -> List[List[str]]:
    """The commands a snippet runs (variables, loops, globs and braces expanded by bash), as argument lists."""
    log = sandbox / 'calls'
    log.write_bytes(b'')
    result = subprocess.run(['/bin/bash', '--noprofile', '--norc', '-c', code], cwd=sandbox, capture_output=True,
                            text=True, env={'PATH': str(sandbox / 'bin'), 'DOCS_CALLS': str(log), 'HOME': str(sandbox)})
    assert result.returncode == 0 and not result.stderr, f'{code}\n-> {result.returncode}: {result.stderr}'
    fields = log.read_bytes().decode().split('\0')[:-1]
    calls, call = [], []
    for field in fields:
        if field == '\1':
            calls.append(call)
            call = []
        else:
            call.append(field)
    return calls


def as_given(words: List[str]) -> List[str]:
    """Synopses write optional parts in brackets ('[--work-dir DIR]', '[--resume [CKPT]]'): parse them as given."""
    given = []
    for word in words:
        while word.startswith('[') and word.count('[') > word.count(']'):
            word = word[1:]
        while word.endswith(']') and word.count(']') > word.count('['):
            word = word[:-1]
        if word.startswith('[') and word.endswith(']'):
            word = word[1:-1]
        given.append(word)
    return given


class _Parsed(Exception):
    pass


def tool_parse_error(script: Path, args: List[str]) -> Optional[str]:
    """argparse's complaint about ``args`` of a tool, or None: the tool runs in this process until its
    ``parse_args`` returns, and stops there."""
    parse_args = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise _Parsed

    stderr = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, 'parse_args', parse_and_stop), \
            mock.patch.object(sys, 'argv', [str(script), *args]), \
            mock.patch.object(sys, 'path', [str(script.parent), *sys.path]), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(str(script), run_name='__main__')
        except _Parsed:
            return None
        except SystemExit as e:  # argparse: 0 after --help, 2 with a message on stderr
            return None if e.code == 0 else stderr.getvalue().strip() or f'exit {e.code}'
    return 'the tool returned without parsing its arguments'


def call_problems(call: List[str]) -> List[str]:
    """What is wrong with one recorded command: a missing tool, config or module, or options its parser refuses."""
    program, args = Path(call[0]).name, as_given(call[1:])
    problems = [f'{word}: no such file' for word in args if word.startswith(('tools/', 'configs/'))
                and not (ROOT / word).exists()]
    if not args or args[0] == '-c' or program == 'pip':  # pip: its own options, nothing of the repository's
        return problems
    if program.startswith('python') and args[0] == '-m':
        return problems + ([] if importlib.util.find_spec(args[1]) else [f'python -m {args[1]}: no such module'])
    script = ROOT / args[0]
    if not script.is_file():
        return sorted(set(problems + [f'{args[0]}: no such file']))
    if program.startswith('python') and 'ArgumentParser' in script.read_text(encoding='utf-8'):
        error = tool_parse_error(script, args[1:])
        if error:
            problems.append(f'{" ".join(call[1:])}\n{error}')
    return problems


@pytest.mark.parametrize('block', BLOCKS, ids=[b.where for b in BLOCKS])
def test_documented_commands_parse(block, recorder):
    problems = [p for call in recorded_calls(block.code, recorder) for p in call_problems(call)]
    assert not problems, f'{block.where}:\n' + '\n'.join(problems)


def test_inline_commands_parse(recorder):
    """Inline commands run after the shell blocks of their page that only define variables."""
    definitions = {}
    for block in BLOCKS:
        if not recorded_calls(block.code, recorder):
            page = block.where.split(':')[0]
            definitions[page] = definitions.get(page, '') + block.code
    problems = [f'{where}: {p}' for where, text in INLINE
                for call in recorded_calls(definitions.get(where.split(':')[0], '') + text, recorder)
                for p in call_problems(call)]
    assert len(INLINE) > 10 and not problems, '\n'.join(problems)


def test_a_changed_option_is_caught(recorder):
    """The check is not vacuous: an option train.py does not have, a missing config or tool fail."""
    assert call_problems(recorded_calls('python tools/train.py configs/dino_swin_rope.py --no-such-option',
                                        recorder)[0])[0].endswith('unrecognized arguments: --no-such-option')
    assert call_problems(recorded_calls('python tools/train.py configs/gone.py', recorder)[0]) == [
        'configs/gone.py: no such file']
    assert call_problems(recorded_calls('bash tools/gone.sh', recorder)[0]) == ['tools/gone.sh: no such file']
    assert call_problems(recorded_calls('python tools/train.py [--work-dir DIR] [--resume [CKPT]] x.py',
                                        recorder)[0]) == []


RUN_BLOCKS = [b for b in BLOCKS if b.exit_code is not None]


@pytest.mark.slow
@pytest.mark.parametrize('block', RUN_BLOCKS, ids=[b.where for b in RUN_BLOCKS])
def test_documented_command_runs(block, tmp_path):
    """The block runs in a directory with the repo's tools and configs but no data, with empty weight
    caches and offline, as on a fresh machine without COCO."""
    for name in ('tools', 'configs'):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / '.venv').symlink_to(sys.prefix)
    env = {k: v for k, v in os.environ.items() if k not in ('HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'PYTHONPATH')}
    env.update(PATH=f'{tmp_path / ".venv" / "bin"}{os.pathsep}{env["PATH"]}', HF_HOME=str(tmp_path / 'hf'),
               TORCH_HOME=str(tmp_path / 'torch'), HF_HUB_OFFLINE='1', MPLBACKEND='Agg')
    result = subprocess.run(['/bin/bash', '-e', '-o', 'pipefail', '-c', block.code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == block.exit_code, f'{block.where}: exit {result.returncode}\n{output[-3000:]}'
    assert block.prints in output, f'{block.where}: {block.prints!r} not in the output:\n{output[-3000:]}'


def test_readme_links_resolve():
    """README.md is read on the repository page, outside the Sphinx build that checks the manual's
    links: its relative links must name existing files and, after '#', a heading of that page."""
    tokens = MarkdownIt('commonmark').parse((ROOT / 'README.md').read_text(encoding='utf-8'))
    targets = [child.attrs.get('href') or child.attrs.get('src') for token in tokens if token.type == 'inline'
               for child in token.children or () if child.type in ('link_open', 'image')]
    local = [t for t in targets if not re.match(r'\w+://', t)]
    problems = []
    for target in local:
        path, _, anchor = target.partition('#')
        if not (ROOT / path).exists():
            problems.append(f'{target}: no such file')
        elif anchor:
            headings = re.findall(r'^#+ (.+)$', (ROOT / path).read_text(encoding='utf-8'), flags=re.M)
            if anchor not in {default_slugify(h) for h in headings}:
                problems.append(f'{target}: no such heading')
    assert len(local) > 10 and not problems, '\n'.join(problems)


def test_compatibility_page_lists_every_fix():
    """mmpe/engine/compat.py sends its readers to the compatibility guide: every fix has its row there."""
    from mmpe.engine import compat

    page = (ROOT / 'docs' / 'user_guides' / 'compatibility.md').read_text(encoding='utf-8')
    assert [f.__name__ for f in compat.FIXES if f'| `{f.__name__}` |' not in page] == []
