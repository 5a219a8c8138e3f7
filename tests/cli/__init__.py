"""The jobwatch command."""
