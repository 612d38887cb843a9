"""Registration of mmpe models into the MODELS registries of mmdet and mmseg.

``custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)`` in a config makes
``type='PEVisionTransformer'`` etc. resolve in both mmdet and mmseg scopes.
"""
import importlib


def _installed_registries():
    registries = []
    for name in ('mmdet.registry', 'mmseg.registry'):
        try:
            registries.append(importlib.import_module(name).MODELS)
        except ImportError:
            pass
    return registries


def register_model(cls):
    """Class decorator: register ``cls`` under its own name in every installed registry."""
    for registry in _installed_registries():
        registry.register_module(module=cls)
    return cls
