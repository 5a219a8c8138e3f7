"""Callbacks that report a framework's training to jobwatch.

Each integration is a module of its own, imported by name so that jobwatch
never imports a framework it does not need:

- :mod:`jobwatch.integrations.keras`: ``JobwatchCallback`` for Keras 3
  (``pip install "jobwatch[keras]"``).

Loops that call ``partial_fit`` (scikit-learn) or any hand-written loop need
no callback: :meth:`jobwatch.Reporter.track` with ``metrics=`` reports them.
"""
