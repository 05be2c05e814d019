"""The package version, a leaf: read by the package and by every artifact writer."""

__version__ = "0.1.0"
