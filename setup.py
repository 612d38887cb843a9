import re

from setuptools import find_packages, setup


def read_version() -> str:
    """mmpe.__version__, read from mmpe/version.py without importing mmpe (which needs torch)."""
    with open('mmpe/version.py', encoding='utf-8') as f:
        return re.search(r"^__version__ = '([^']+)'", f.read(), re.M).group(1)


setup(
    name='mmpe',
    version=read_version(),
    description='Positional encodings (RoPE-Mixed, RoPE-Axial, LOOPE, APE, sin-cos, RPB) for '
                'ViT and Swin backbones in MMDetection and MMSegmentation',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmpe', 'mmpe.*']),
    # The configs and tools inside the package, where mmengine looks for 'mmpe::<config>' (as mmdet ships
    # its own in mmdet/.mim): in the repository mmpe/.mim/configs and mmpe/.mim/tools are symlinks to
    # configs/ and tools/ (so an editable install resolves them too), in a wheel copies.
    package_data={'mmpe': ['.mim/model-index.yml', '.mim/configs/**/*.py', '.mim/tools/**/*.py',
                           '.mim/tools/**/*.sh']},
    python_requires='>=3.9',
    # Versions that work together (tested: Python 3.11, torch 2.14.1, torchvision 0.29.1).
    # mmcv 2.1.0 is the newest mmcv that mmdet 3.3.0 and mmseg 1.2.2 accept; it has no wheels
    # for current torch: tools/setup_env.sh builds it from source with its compiled ops.
    install_requires=[
        # torch.load(weights_only=True) with globals allowed under their pickled names (numpy 1.x
        # checkpoints): torch 2.6.
        'torch>=2.6',
        'torchvision',
        'mmengine==0.10.7',
        'mmcv==2.1.0',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'timm>=1.0.20',
        'numpy>=2.0',  # numpy._core (mmpe.converters.checkpoint.NUMPY_GLOBALS)
        # mmengine resolves mmdet::/mmseg:: configs through pkg_resources (gone in setuptools 81).
        'setuptools>=77,<81',
        # mmpe.analysis.progress (live progress of studies and benchmarks); mmengine requires it too.
        'rich',
        # imported by mmseg without being declared.
        'ftfy',
        'regex',
    ],
    # transformers: its DINOv3ViTModel is the reference of the 'hf_dinov3' layout (tests/test_dinov3_layouts.py);
    # onnx, onnxscript (torch.onnx.export(dynamo=True)) and onnxruntime: tests/test_export.py; tests/test_docs.py
    # reads the manual's Markdown with MyST's parser; ruff: the lint rules of pyproject.toml; hypothesis: generated
    # bad input (tests/test_fuzz.py); pytest-xdist: the suite on 2 processes (the README's test command, `-n 2`).
    # docs: the manual (docs/conf.py: Sphinx + MyST, API reference by autodoc/autosummary, furo theme).
    extras_require={'tests': ['pytest', 'scipy', 'transformers>=5', 'onnx', 'onnxscript', 'onnxruntime',
                              'myst-parser>=4', 'ruff>=0.6', 'hypothesis', 'pytest-xdist'],
                    'docs': ['sphinx>=8', 'myst-parser>=4', 'furo>=2024.8.6']},
)
