"""Built-in commands registered through ``projbench_register_commands`` — exactly as a
third-party plugin adds its own (the built-in ``commands`` plugin, :mod:`projbench.builtin.plugins`)."""
