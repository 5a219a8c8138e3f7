"""The wire contract without I/O: request types, limits and names, the GPU-metric table, the retry backoff.

Imports nothing of jobwatch's but :mod:`jobwatch.errors`; loads no pydantic until
:mod:`jobwatch.contract.requests` is imported."""
