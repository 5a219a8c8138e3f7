"""What a viewer knows of a job and of the fleet, and how it reads as text: no widgets, no terminal program."""
