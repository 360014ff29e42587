"""Judging latent spaces: t-SNE, the SVM and the tables of the report."""
