"""jobwatch benchmarks: figures next to a baseline measured in the same run.

Run ``python -m benchmarks`` (``--quick`` for a short smoke run).
"""
