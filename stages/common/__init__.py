"""Shared logic of the stage scripts: settings and errors here; data, models, evaluation, outputs below."""
