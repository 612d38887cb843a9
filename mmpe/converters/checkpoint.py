"""Checkpoints by name: where a name is cached, how it is fetched, how a file is read.

A checkpoint is named, anywhere mmengine takes a checkpoint path (``init_cfg=dict(type='Pretrained',
checkpoint=...)``, ``load_from``, ``tools/test.py``), by

- ``hf://OWNER/REPO[/FILE][@REVISION]`` (also huggingface_hub's own ``hf://OWNER/REPO@REVISION/FILE``):
  a file of a Hugging Face model repo, kept in huggingface_hub's cache (``HF_HOME``, ``HF_HUB_CACHE``;
  ``HF_HUB_OFFLINE=1`` never goes online; a gated repo such as ``facebook/dinov3-*`` needs its licence
  accepted on huggingface.co and a token: ``HF_TOKEN``, ``hf auth login`` or ``resolve(token=...)``).
  Without FILE, the repo's weight file: ``model.safetensors``,
  else ``pytorch_model.bin``, else its one ``*.pth`` (a copy already in the cache is used as is);
- ``timm://MODEL[.TAG]``: the hub file (or URL) that timm's pretrained config names for the model;
- ``http(s)://...``: a URL, cached where mmengine caches it (``torch.hub.get_dir()/checkpoints``);
  ``HF_HUB_OFFLINE=1`` keeps these offline too;
- anything else: a local file (or another mmengine scheme).

``register_schemes`` (run on ``import mmpe``) adds hf:// and timm:// to mmengine's CheckpointLoader.
Files are read with safetensors or ``torch.load(weights_only=True)``; numpy arrays, scalars and dtypes
(``NUMPY_GLOBALS``, as numpy 1.x and 2.x pickle them) are rebuilt by numpy's own functions, other objects
that a checkpoint pickles (a training config, argparse options) are read as plain dicts, never executed.
"""
import os
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging import print_log
from numpy._core import multiarray

HF, TIMM = 'hf://', 'timm://'
URL_SCHEMES = ('http://', 'https://')
# Weight files of a hub repo named without FILE, in order of preference (then the repo's one *.pth).
HUB_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
FETCH_TOOL = 'python tools/misc/fetch_weights.py'


# numpy's array, scalar and dtype reconstructors and types, which torch's weights_only unpickler may call:
# they rebuild data and run nothing else. numpy 1.x pickles the functions as numpy.core.multiarray.*,
# numpy 2 as numpy._core.multiarray.* (mmengine checkpoints hold numpy values in their message hub).
NUMPY_GLOBALS = [
    np.ndarray, np.dtype, *(getattr(np.dtypes, name) for name in np.dtypes.__all__),
    multiarray._reconstruct, multiarray.scalar,
    (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
    (multiarray.scalar, 'numpy.core.multiarray.scalar'),
]


class CheckpointNotCachedError(FileNotFoundError):
    """A named checkpoint that is not in the local cache and cannot be downloaded (offline)."""


class HubAccessError(PermissionError):
    """A Hugging Face repo that refuses the download: gated (licence not accepted, or no token) or private."""


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face model repo; ``filename`` None: the repo's weight file."""
    repo: str
    filename: Optional[str] = None
    revision: Optional[str] = None

    @property
    def name(self) -> str:
        return HF + self.repo + (f'/{self.filename}' if self.filename else '') + \
            (f'@{self.revision}' if self.revision else '')


_REPO_PART = re.compile(r'^[\w.-]+$')


def parse_hf(name: str) -> HubFile:
    """``hf://OWNER/REPO[/FILE][@REVISION]`` or ``hf://OWNER/REPO@REVISION[/FILE]`` -> HubFile."""
    if not name.startswith(HF):
        raise ValueError(f'{name!r} is not an hf:// checkpoint name')
    body = name[len(HF):]
    parts = body.split('/', 2)
    if len(parts) >= 2 and '@' in parts[1]:  # huggingface_hub's order: REPO@REVISION[/FILE]
        parts[1], revision = parts[1].split('@', 1)
    else:
        revision = None
        if '@' in body:
            body, revision = body.rsplit('@', 1)
            parts = body.split('/', 2)
    owner, repo_name = parts[0], parts[1] if len(parts) > 1 else ''
    filename = parts[2] if len(parts) == 3 else None
    if not (_REPO_PART.match(owner) and _REPO_PART.match(repo_name)) or filename == '' or revision == '' \
            or (filename is not None and filename.endswith('/')):
        raise ValueError(f'checkpoint {name!r}: expected hf://OWNER/REPO[/FILE][@REVISION], '
                         f'e.g. hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224')
    return HubFile(f'{owner}/{repo_name}', filename, revision or None)


def timm_source(name: str) -> str:
    """``timm://MODEL[.TAG]`` -> the hf:// name (or URL) of the weights timm's pretrained config names."""
    from timm.models import get_pretrained_cfg
    model = name[len(TIMM):]
    try:
        cfg = get_pretrained_cfg(model, allow_unregistered=False)
    except RuntimeError as err:
        raise ValueError(f'checkpoint {name!r}: timm has no pretrained weights named {model!r} ({err})') from err
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition('@')
        return HubFile(repo, cfg.hf_hub_filename, revision or None).name
    if cfg.url:
        return cfg.url
    raise ValueError(f'checkpoint {name!r}: timm names no downloadable weights for {model!r}')


def is_named(name: str) -> bool:
    """Whether ``name`` is a checkpoint name this module resolves (hf://, timm://, URL)."""
    return isinstance(name, str) and name.startswith((HF, TIMM) + URL_SCHEMES)


def canonical(name: str) -> str:
    """timm:// names become the hf:// name or URL they stand for; other names are returned as they are."""
    return timm_source(name) if name.startswith(TIMM) else name


def offline() -> bool:
    """huggingface_hub's offline mode (``HF_HUB_OFFLINE=1``), which mmpe applies to URLs too."""
    from huggingface_hub import constants
    return constants.HF_HUB_OFFLINE


def _url_cache_path(url: str) -> str:
    """Where mmengine's http loader (torch.hub) keeps a downloaded URL."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))


def cache_location(name: str) -> str:
    """The directory (hub repo folder) or file where the checkpoint ``name`` is looked for."""
    name = canonical(name)
    if name.startswith(HF):
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name
        return osp.join(constants.HF_HUB_CACHE, repo_folder_name(repo_id=parse_hf(name).repo, repo_type='model'))
    if name.startswith(URL_SCHEMES):
        return _url_cache_path(name)
    return name


def fetch_command(name: str) -> str:
    """The command that downloads checkpoint ``name`` into the local cache."""
    return f'{FETCH_TOOL} {name}'


def _snapshot_dir(ref: HubFile) -> Optional[str]:
    """The cached snapshot folder of ``ref``'s revision (huggingface_hub's cache layout), or None."""
    repo_dir = cache_location(ref.name)
    revision = ref.revision or 'main'
    ref_file = osp.join(repo_dir, 'refs', revision)
    if osp.isfile(ref_file):
        with open(ref_file) as f:
            revision = f.read().strip()
    snapshot = osp.join(repo_dir, 'snapshots', revision)
    return snapshot if osp.isdir(snapshot) else None


def _pick_weight_file(ref: HubFile, files: List[str]) -> Optional[str]:
    """The weight file among a repo's ``files`` (HUB_WEIGHT_FILES, else the one *.pth); None if none."""
    for candidate in HUB_WEIGHT_FILES:
        if candidate in files:
            return candidate
    pth = sorted(f for f in files if f.endswith('.pth'))
    if len(pth) > 1:
        raise ValueError(f'checkpoint {ref.name!r}: the repo has several .pth files ({", ".join(pth)}); '
                         f'name one: {HubFile(ref.repo, pth[0], ref.revision).name}')
    return pth[0] if pth else None


def _cached_hub_weight_file(ref: HubFile) -> Optional[str]:
    """The weight file of ``ref`` (FILE given or picked by name) in the cached snapshot, or None."""
    snapshot = _snapshot_dir(ref)
    if snapshot is None:
        return None
    if ref.filename is not None:
        path = osp.join(snapshot, ref.filename)
        return path if osp.isfile(path) else None
    files = [osp.relpath(osp.join(root, f), snapshot) for root, _, names in os.walk(snapshot) for f in names]
    picked = _pick_weight_file(ref, files)
    return osp.join(snapshot, picked) if picked else None


def cached_file(name: str) -> Optional[str]:
    """The local file of checkpoint ``name`` if it is on this machine (no network), else None."""
    name = canonical(name)
    if name.startswith(HF):
        return _cached_hub_weight_file(parse_hf(name))
    path = _url_cache_path(name) if name.startswith(URL_SCHEMES) else name
    return path if osp.isfile(path) else None


def _not_cached(name: str, why: str) -> CheckpointNotCachedError:
    repo = f'repo {parse_hf(canonical(name)).repo}, ' if canonical(name).startswith(HF) else ''
    return CheckpointNotCachedError(
        f'checkpoint {name} ({repo}{why}) is not in the local cache: looked in {cache_location(name)}. '
        f'Fetch it on a machine with internet, into the same cache (same HF_HOME / TORCH_HOME): '
        f'{fetch_command(name)}')


def _access_denied(ref: HubFile, name: str, err) -> HubAccessError:
    """HubAccessError for huggingface_hub's RepositoryNotFoundError / GatedRepoError ``err``."""
    from huggingface_hub.errors import GatedRepoError
    status = getattr(getattr(err, 'response', None), 'status_code', None)
    why = 'is gated and refused the download' if isinstance(err, GatedRepoError) else \
        'refused the download: it does not exist, or it is private or gated and needs a token of an account with access'
    return HubAccessError(
        f'checkpoint {name}: the Hugging Face repo {ref.repo} {why} (HTTP {status}). Accept the licence at '
        f'https://huggingface.co/{ref.repo} (logged in), create a read token at https://huggingface.co/settings/tokens '
        f'and set HF_TOKEN=<token> (or run `hf auth login`, or pass --token to {FETCH_TOOL})')


def _download_hub(ref: HubFile, name: str, token: Optional[str]) -> str:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    try:
        filename = ref.filename
        if filename is None:
            files = HfApi().list_repo_files(ref.repo, revision=ref.revision, token=token)
            filename = _pick_weight_file(ref, files)
            if filename is None:
                raise FileNotFoundError(f'checkpoint {name!r}: the repo has none of {", ".join(HUB_WEIGHT_FILES)} '
                                        f'or a .pth file; name the file: hf://{ref.repo}/FILE')
        return hf_hub_download(ref.repo, filename, revision=ref.revision, token=token)
    except LocalEntryNotFoundError as err:  # no network
        raise _not_cached(name, f'the hub cannot be reached: {err}') from err
    except RepositoryNotFoundError as err:  # GatedRepoError is one too; 401 without a token is one
        raise _access_denied(ref, name, err) from None


def resolve(name: str, token: Optional[str] = None) -> str:
    """The local file of checkpoint ``name`` (hf://, timm://, URL or path), downloading a named one
    that is not cached unless offline. ``token``: a Hugging Face token for gated or private repos
    (None: huggingface_hub's own, ``HF_TOKEN`` or the ``hf auth login`` file).

    Raises CheckpointNotCachedError (naming the repo, the cache directory and the fetch command) for a
    named checkpoint that is not cached and cannot be downloaded, HubAccessError (naming the repo, its
    licence page and HF_TOKEN) for a gated or private repo that refuses the download, FileNotFoundError
    for a missing file.
    """
    source = canonical(name)
    path = cached_file(source)
    if path is not None:
        return path
    if not is_named(source):
        raise FileNotFoundError(f'checkpoint file {name!r} does not exist')
    if offline():
        raise _not_cached(name, 'HF_HUB_OFFLINE=1')
    if source.startswith(HF):
        return _download_hub(parse_hf(source), name, token)
    path = _url_cache_path(source)
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.hub.download_url_to_file(source, path)
    return path


def _torch_load(path: str, map_location) -> dict:
    """torch.load(weights_only=True) with ``NUMPY_GLOBALS``; other globals it refuses (metadata classes)
    are read as OrderedDicts. Allows only for this call what is not allowed already (torch's
    ``safe_globals`` removes on exit what it added, also what was allowed before)."""
    allowed = torch.serialization.get_safe_globals()
    with torch.serialization.safe_globals([g for g in NUMPY_GLOBALS if g not in allowed]):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # pickle.UnpicklingError
            if 'Unsupported global' not in str(err):
                raise
        foreign = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        with torch.serialization.safe_globals([(OrderedDict, name) for name in foreign]):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    print_log(f'{path}: read the pickled objects {", ".join(foreign)} as plain dicts (not executed)',
              logger='current')
    return checkpoint


def read_checkpoint(path: str, map_location='cpu', trust_pickle: bool = False) -> dict:
    """Read a .safetensors or torch file. torch files are read with ``weights_only=True``; objects
    other than tensors that they pickle (a yacs config, argparse options) become plain dicts.
    ``trust_pickle=True`` (trusted files only) uses torch.load(weights_only=False).
    Raises ValueError naming the file when it is not a checkpoint."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            return load_file(path, device=map_location if isinstance(map_location, str) else 'cpu')
        if trust_pickle:
            return torch.load(path, map_location=map_location, weights_only=False)
        return _torch_load(path, map_location)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ''
        raise ValueError(f'{path!r} is not a checkpoint file that safetensors or torch.load(weights_only=True) '
                         f'can read ({type(err).__name__}: {reason}). If it is a torch file you trust that '
                         f'pickles other objects, convert it once with tools/model_converters/convert_timm_vit.py or '
                         f'tools/model_converters/convert_swin.py --trust-pickle') from err


def load_checkpoint(name: str, map_location='cpu') -> dict:
    """The checkpoint (dict) named by ``name``: hf://, timm://, URL or local file (``resolve``), or
    another mmengine scheme (through mmengine's CheckpointLoader)."""
    if is_named(name) or '://' not in name:
        return read_checkpoint(resolve(name), map_location)
    from mmengine.runner import CheckpointLoader
    return CheckpointLoader.load_checkpoint(name, map_location=map_location)


def load_from_hf(filename: str, map_location=None) -> dict:
    """mmengine CheckpointLoader scheme hf:// (mmengine logs the name after ``load_from_``)."""
    return read_checkpoint(resolve(filename), map_location or 'cpu')


def load_from_timm(filename: str, map_location=None) -> dict:
    """mmengine CheckpointLoader scheme timm://."""
    return read_checkpoint(resolve(filename), map_location or 'cpu')


def register_schemes() -> None:
    """Add hf:// and timm:// to mmengine's CheckpointLoader (once)."""
    from mmengine.runner import CheckpointLoader
    for prefix, loader in ((HF, load_from_hf), (TIMM, load_from_timm)):
        if CheckpointLoader._schemes.get(prefix) is not loader:
            CheckpointLoader.register_scheme(prefix, loader, force=True)


register_schemes()
