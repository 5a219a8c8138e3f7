"""The I/O-free rules."""
