"""t-SNE of latents and its trustworthiness, as the reference notebook ran it.

Both run on one thread: scikit-learn's Barnes-Hut gradient sums its normalisation
over points in an OpenMP reduction, split by thread, and the distances behind
trustworthiness go through a threaded BLAS, so with more threads the result could
depend on the machine's core count. On the notebook's 200 points t-SNE takes well
under a second either way.
"""
from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE, trustworthiness
from threadpoolctl import threadpool_limits

TRUSTWORTHINESS_K = 5


def tsne_2d(latents: np.ndarray, perplexity: float, max_iter: int, seed: int) -> np.ndarray:
    """2-D t-SNE embedding; init and learning rate are scikit-learn's defaults (pca, auto)."""
    tsne = TSNE(n_components=2, perplexity=perplexity, max_iter=max_iter, random_state=seed, n_jobs=1)
    with threadpool_limits(limits=1):
        return tsne.fit_transform(np.asarray(latents, dtype=np.float32)).astype(np.float32)


def embedding_trustworthiness(latents: np.ndarray, embedding: np.ndarray) -> float:
    """scikit-learn's trustworthiness of the embedding against the latents, k=5 neighbours."""
    k = min(TRUSTWORTHINESS_K, (len(latents) - 1) // 2 - 1)
    with threadpool_limits(limits=1):
        return float(trustworthiness(latents, embedding, n_neighbors=max(k, 1)))
