"""Commands around the pipeline (not DVC stages): the latent-size sweep, the run-facts table."""
