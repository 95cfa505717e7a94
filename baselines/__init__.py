"""Reference models of mgbench: DCGAN, CGAN, VAE and LAPGAN.

They are registered only through the ``mgbench.models`` entry points in ``pyproject.toml``,
exactly as an outside package registers its own model; importing this package registers nothing.
"""
