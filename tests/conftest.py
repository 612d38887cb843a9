"""Shared fixtures."""
import pytest
import torch


@pytest.fixture(params=['cpu', 'cuda'])
def device(request) -> torch.device:
    """Each test that takes ``device`` runs on the CPU and on CUDA; the CUDA case is skipped
    where torch sees no GPU (tools/check_gpu.sh runs the suite on a GPU machine)."""
    if request.param == 'cuda' and not torch.cuda.is_available():
        pytest.skip('CUDA case: torch sees no GPU on this machine')
    return torch.device(request.param)
