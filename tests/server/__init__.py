"""The server, layer by layer."""
