"""The autoencoders: the catalogue, their networks, training, checkpoints and the device they run on."""
