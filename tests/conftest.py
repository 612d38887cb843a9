"""Shared fixtures."""
import importlib

import pytest
import torch


@pytest.fixture(params=['cpu', 'cuda'])
def device(request) -> torch.device:
    """Each test that takes ``device`` runs on the CPU and on CUDA; the CUDA case is skipped
    where torch sees no GPU (tools/check_gpu.sh runs the suite on a GPU machine)."""
    if request.param == 'cuda' and not torch.cuda.is_available():
        pytest.skip('CUDA case: torch sees no GPU on this machine')
    return torch.device(request.param)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache under HF_HOME, HF_HUB_OFFLINE=1 (huggingface_hub's constants reloaded)."""
    from huggingface_hub import constants
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.delenv('HF_HUB_CACHE', raising=False)
    importlib.reload(constants)
    yield tmp_path / 'hf' / 'hub'
    monkeypatch.undo()
    importlib.reload(constants)
