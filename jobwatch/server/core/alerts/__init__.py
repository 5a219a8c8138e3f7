"""The rules that raise a job's alerts, without I/O: thresholds and stalls
(:mod:`.alert_rules`), budgets, hangs and the NCCL-hang signature, the receipt
at the end, and each webhook format's body. :mod:`jobwatch.server.core.rules`
applies them to each update; :mod:`jobwatch.server.events.webhook` posts them."""
