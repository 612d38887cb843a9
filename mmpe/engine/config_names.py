"""Configs by package name, ``'mmpe::dino/<config>.py'``, as OpenMMLab names ``'mmdet::...'``.

mmengine 0.10.7 resolves ``'<package>::<folder>/<config>.py'`` in ``_base_`` (and in
``mmengine.hub.get_config``) to ``<package dir>/.mim/configs/<folder>/<config>.py``, for the
packages of its table ``mmengine.config.utils.MODULE2PACKAGE`` only. mmpe ships its configs there
(setup.py: copies in a wheel; in the repository symlinks to configs/, so an editable install finds
them too) and ``register`` (run by ``import mmpe``) adds mmpe to the table.

mmengine also gives every typed dict of a ``'<package>::'`` base the registry scope ``<package>``
(``_scope_``): right for mmdet's configs (built by mmdet's registries), wrong for mmpe's, which are
mmdet or mmseg configs (their ``default_scope``) and have no registries of their own. With scope
'mmpe', mmengine falls back to its root registries, where mmdet's and mmseg's types are missing
(the usual ``pipeline=_base_.test_pipeline`` then fails: "PackDetInputs is not in the
mmengine::transform registry") or differ (mmcv's LoadAnnotations for mmdet's). ``register`` therefore
makes mmpe's bases unscoped, built in the default scope of the config that uses them, as a copy of
the file would be.

mmengine's ``Config.fromfile`` does not take such names for the file it is given (for mmdet's
neither): ``register`` wraps it to resolve them with ``config_file`` first, so
``Config.fromfile('mmpe::dino/<config>.py')`` works from any directory, as the same name does in ``_base_``.
"""
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE

PACKAGE = 'mmpe'


def _unscoped_mmpe_bases(get_cfg_path):
    """Wrap mmengine's ``Config._get_cfg_path(cfg_path, filename) -> (path, scope)``: scope None for
    ``'mmpe::'`` names."""
    def _get_cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
        path, scope = get_cfg_path(cfg_path, filename)
        return path, None if scope == PACKAGE else scope

    _get_cfg_path.stock = get_cfg_path
    return staticmethod(_get_cfg_path)


def _fromfile_by_name(fromfile):
    """Wrap mmengine's ``Config.fromfile(filename, ...)``: a ``'<package>::...'`` filename is resolved by
    ``config_file``."""
    def fromfile_by_name(filename, *args, **kwargs) -> Config:
        return fromfile(config_file(filename) if isinstance(filename, str) else filename, *args, **kwargs)

    fromfile_by_name.stock = fromfile
    return staticmethod(fromfile_by_name)


def register() -> None:
    """Let mmengine resolve ``'mmpe::...'`` bases, unscoped, and names given to ``Config.fromfile`` (see the
    module docstring). Idempotent."""
    MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    if not hasattr(Config._get_cfg_path, 'stock'):
        Config._get_cfg_path = _unscoped_mmpe_bases(Config._get_cfg_path)
    if not hasattr(Config.fromfile, 'stock'):
        Config.fromfile = _fromfile_by_name(Config.fromfile)


def config_file(name: str) -> str:
    """The file of a config given as a path or as ``'<package>::<folder>/<config>.py'`` (mmpe, mmdet,
    mmseg ...), resolved as mmengine resolves ``_base_``. A package mmengine does not know is a
    ValueError; one that is not installed mmengine's ModuleNotFoundError; a missing config a
    FileNotFoundError naming the file looked for."""
    if '::' not in name:
        return name
    package = name.partition('::')[0]
    if package not in MODULE2PACKAGE:
        raise ValueError(f'config {name!r}: mmengine resolves <package>::<config> names for the packages '
                         f'{sorted(MODULE2PACKAGE)}, not {package!r}')
    return Config._get_cfg_path(name, '')[0]
