"""watch and top."""
