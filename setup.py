from setuptools import find_packages, setup

setup(
    name='mmpe',
    version='0.1.0',
    description='Positional encodings (RoPE-Mixed, RoPE-Axial, LOOPE, APE, sin-cos, RPB) for '
                'ViT and Swin backbones in MMDetection and MMSegmentation',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmpe', 'mmpe.*']),
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
        # imported by mmseg without being declared.
        'ftfy',
        'regex',
    ],
    # transformers: its DINOv3ViTModel is the reference of the 'hf_dinov3' layout (tests/test_dinov3_layouts.py);
    # hypothesis: generated bad input (tests/test_fuzz.py).
    # docs: the manual (docs/conf.py: Sphinx + MyST, API reference by autodoc/autosummary, furo theme);
    # tests/test_docs.py reads the manual's Markdown with MyST's parser.
    extras_require={'tests': ['pytest', 'scipy', 'transformers>=5', 'myst-parser>=4', 'hypothesis'],
                    'docs': ['sphinx>=8', 'myst-parser>=4', 'furo>=2024.8.6']},
)
