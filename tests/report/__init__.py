"""The worker side: Reporter, its sender, samplers."""
