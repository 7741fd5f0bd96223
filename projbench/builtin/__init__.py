"""Implementations of the built-in plugins.

The plugin modules in :mod:`projbench.plugins` are thin: their hooks import these modules only
when a registry of that kind is first filled, so ``import projbench``, ``projbench --help`` and
command-line errors never import torch. Third-party plugins are advised to do the same.
"""
