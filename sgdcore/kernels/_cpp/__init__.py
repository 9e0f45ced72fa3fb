"""Thin wrappers that pass checked arrays to ``sgdcore._cpu``."""
