"""The ``jobwatch`` command."""
