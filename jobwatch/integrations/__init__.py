"""Callbacks that report a framework's training to jobwatch.

Each integration is a module of its own, imported by name so that jobwatch
never imports a framework it does not need:

- :mod:`jobwatch.integrations.transformers`: ``JobwatchCallback`` for the
  Hugging Face ``Trainer``;
- :mod:`jobwatch.integrations.lightning`: ``JobwatchCallback`` and
  ``JobwatchLogger`` for Lightning's ``Trainer``;
- :mod:`jobwatch.integrations.accelerate`: ``JobwatchTracker`` for
  ``Accelerator(log_with=...)``;
- :mod:`jobwatch.integrations.xgboost`: ``JobwatchCallback`` for XGBoost;
- :mod:`jobwatch.integrations.lightgbm`: ``jobwatch_callback()`` for LightGBM
  (these five: ``pip install "jobwatch[frameworks]"``);
- :mod:`jobwatch.integrations.keras`: ``JobwatchCallback`` for Keras 3
  (``pip install "jobwatch[keras]"``).

All but Keras's take no arguments: the server, job and price come from
``JOBWATCH_*`` variables (:data:`jobwatch.integrations.environment.ENVIRONMENT`).

Loops that call ``partial_fit`` (scikit-learn) or any hand-written loop need
no callback: :meth:`jobwatch.Reporter.track` with ``metrics=`` reports them.
"""
