"""Carbide iPXE image runbooks: the library behind the notebooks."""

__version__ = "0.1.0"
