"""Implementations of the built-in plugins.

:mod:`projbench.builtin.plugins` declares the built-in plugins; their hooks import these modules
only when a registry of that kind is first filled, so ``import projbench``, ``projbench --help``
and command-line errors never import torch. Third-party plugins are advised to do the same.
"""
