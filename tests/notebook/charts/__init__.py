"""The monitor's charts (jobwatch/notebook/charts/)."""
