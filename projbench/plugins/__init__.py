"""Built-in plugins. Each is registered through the ``projbench`` entry-point group exactly like
a third-party plugin (and from ``projbench.manager.BUILTIN_PLUGINS`` if the entry points are
stale)."""
