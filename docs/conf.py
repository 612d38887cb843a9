"""Sphinx configuration of mmpe's manual (Markdown through MyST, API reference from the docstrings).

Build (what .ci/run does; warnings, broken links and missing references are errors):
    .venv/bin/python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""
import os
import re
import sys

sys.path.insert(0, os.path.abspath('..'))

project = 'mmpe'
copyright = 'mmpe authors'
author = 'mmpe authors'
release = version = '0.1.0'

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
]

source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
templates_path = ['_templates']
exclude_patterns = ["_build"]

# MyST: heading anchors make links such as design.md#1-architecture resolvable (and checked).
myst_heading_anchors = 4
myst_enable_extensions = ['dollarmath']

# API reference: one page per module of the mmpe package, found by walking it (docs/api.md).
autosummary_generate = True
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
# Only mmpe's own docstrings: inherited ones (torch's nn.Module.forward, mmengine's Hook) refer to labels of
# their own manuals.
autodoc_inherit_docstrings = False
autodoc_default_options = {'show-inheritance': True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -n (nitpicky): every reference must resolve. Names of other libraries cannot (no network for
# intersphinx), so only they are exempt; an unresolved mmpe name still fails the build.
nitpicky = True
nitpick_ignore_regex = [
    (r'py:.*', r'(torch|mmengine|mmcv|mmdet|mmseg|timm|numpy|np|scipy|transformers|huggingface_hub|safetensors'
               r'|matplotlib|collections|typing|pathlib|os|argparse|enum|threading|contextlib|abc|subprocess'
               r'|random|rich|numbers)(\..*)?'),
]

html_theme = 'furo'
html_title = 'mmpe'
html_static_path = []


# The tables that the study and benchmark tools write under results/ and benchmarks/ start at a
# level-3 heading (they are written to be read inside a longer page); as pages of the manual of
# their own, their headings are raised so that the first is the page title.
GENERATED_TABLES = ('results/', 'benchmarks/')


def raise_generated_headings(app, docname, source):
    if not docname.startswith(GENERATED_TABLES) or docname == 'benchmarks/README':
        return
    levels = [len(m.group(1)) for m in re.finditer(r'^(#{1,6}) ', source[0], flags=re.M)]
    if levels and min(levels) > 1:
        shift = min(levels) - 1
        source[0] = re.sub(r'^(#{1,6}) ', lambda m: '#' * (len(m.group(1)) - shift) + ' ', source[0], flags=re.M)


def setup(app):
    app.connect('source-read', raise_generated_headings)
