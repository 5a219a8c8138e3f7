"""The wire contract without I/O: request types, limits and names, the metrics table
(GPU and system), the retry backoff.

Imports nothing of jobwatch's but :mod:`jobwatch.errors`; loads no pydantic until
:mod:`jobwatch.contract.requests` is imported."""
