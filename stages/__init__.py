"""DVC stage scripts of the autoencoder comparison; each runs as `python -m stages.<name>`."""
