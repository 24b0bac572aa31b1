"""The bundled detector: models, losses, training loop and metrics."""
