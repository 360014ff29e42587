"""Shared logic imported by the stage scripts: params, data, models, training, evaluation."""
