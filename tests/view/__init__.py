"""What viewers know of a job and the fleet."""
