"""Terminal programs: ``jobwatch watch`` and ``jobwatch top``."""
