"""The alert rules (jobwatch/server/core/alerts/)."""
