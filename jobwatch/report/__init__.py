"""The worker side: :class:`~jobwatch.report.reporter.Reporter`, its outbox and sender thread, GPU and system samplers."""
