"""mmpe's version: the one place it is written (setup.py reads it without importing mmpe)."""
__version__ = '0.1.0'
