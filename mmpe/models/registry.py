"""Registration of mmpe classes into the registries of mmdet and mmseg (those installed).

``custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)`` in a config makes
``type='PEVisionTransformer'`` etc. resolve in both mmdet and mmseg scopes.
"""
import importlib


def _installed_registries(kind: str):
    """The registry ``kind`` ('MODELS', 'TRANSFORMS') of mmdet and of mmseg, those installed."""
    registries = []
    for name in ('mmdet.registry', 'mmseg.registry'):
        try:
            registries.append(getattr(importlib.import_module(name), kind))
        except ImportError:
            pass
    return registries


def register_model(cls):
    """Class decorator: register ``cls`` under its own name in every installed MODELS registry."""
    for registry in _installed_registries('MODELS'):
        registry.register_module(module=cls)
    return cls


def register_transform(cls):
    """Class decorator: register ``cls`` under its own name in every installed TRANSFORMS registry."""
    for registry in _installed_registries('TRANSFORMS'):
        registry.register_module(module=cls)
    return cls
