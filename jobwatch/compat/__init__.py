"""Fronts shaped like other tools' APIs, so their scripts report to jobwatch unchanged
(``import jobwatch.compat.wandb as wandb``)."""
