"""Is an embedding usable at all? Detecting a collapsed embedding.

A contrastive encoder that trained too briefly, diverged or met a bug can map
every galaxy to (nearly) the same vector. Downstream numbers computed on such
an embedding are not results: a similarity search then returns cosine
similarities of 1.000 for every neighbour, and kNN scores measure noise in the
last digits. `embedding_diagnostics` measures how far the vectors spread and
flags a collapse, so that `evaluate`, the report and the demo can say so.
"""

import numpy as np

from astro_cl.tasks.catalogue import as_embedding

__all__ = ["COLLAPSE_SPREAD", "embedding_diagnostics"]

#: An embedding is called collapsed when the spread of its vectors about their
#: mean is below this fraction of their typical length (`embedding_diagnostics`).
#: For unit vectors a spread of 0.1 means that the typical galaxy lies within
#: about 6 degrees of the mean direction, a cosine similarity above ~0.99 to
#: every other galaxy; healthy contrastive embeddings spread over much of the
#: sphere (spread 0.5-1).
COLLAPSE_SPREAD = 0.1


def embedding_diagnostics(embeddings, *, threshold=COLLAPSE_SPREAD, max_pairs=200_000, seed=0):
    """Measure the spread of an embedding and say whether it collapsed.

    Parameters
    ----------
    embeddings : `numpy.ndarray` or `~astropy.table.Table`
        ``(N, D)`` vectors or an embeddings table (``embedding`` column).
    threshold : float, optional
        Relative spread below which the embedding is called collapsed
        (default `COLLAPSE_SPREAD`).
    max_pairs : int, optional
        Pairs of galaxies sampled for the cosine-similarity quantiles (all
        pairs when there are fewer).
    seed : int, optional
        Seed of the pair sampling.

    Returns
    -------
    diagnostics : dict
        ``n_galaxies``, ``n_features``; ``relative_spread`` (root mean square
        distance of the vectors from their mean over their root mean square
        length: 0 when every galaxy has the same vector); ``median_cosine``
        and ``min_cosine`` (cosine similarity between pairs of different
        galaxies); ``effective_dimension`` (exp of the entropy of the
        normalised principal-component variances: 1 when the galaxies vary
        along one direction only, D when along all equally);
        ``threshold``; ``collapsed`` (bool) and ``message`` (one sentence for
        a log or a report).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> embedding_diagnostics(rng.normal(size=(50, 8)))["collapsed"]
    False
    >>> same = np.ones((50, 8)) + 1e-4 * rng.normal(size=(50, 8))
    >>> embedding_diagnostics(same)["collapsed"]
    True
    """
    X, _ = as_embedding(embeddings)
    n, d = X.shape
    centred = X - X.mean(axis=0)
    rms_length = float(np.sqrt(np.mean(np.sum(X**2, axis=1))))
    rms_spread = float(np.sqrt(np.mean(np.sum(centred**2, axis=1))))
    spread = rms_spread / rms_length if rms_length > 0 else 0.0
    if n > 1 and rms_spread > 0:
        var = np.linalg.svd(centred, compute_uv=False) ** 2
        p = var[var > 0] / var.sum()
        eff_dim = float(np.exp(-np.sum(p * np.log(p))))
    else:
        eff_dim = 0.0
    median_cos = min_cos = np.nan
    if n > 1:
        norms = np.linalg.norm(X, axis=1)
        unit = X / np.where(norms > 0, norms, 1.0)[:, None]
        n_pairs = n * (n - 1) // 2
        if n_pairs <= max_pairs:
            i, j = np.triu_indices(n, 1)
        else:
            rng = np.random.default_rng(seed)
            i = rng.integers(0, n, max_pairs)
            j = (i + rng.integers(1, n, max_pairs)) % n  # never i itself
        cos = np.einsum("ij,ij->i", unit[i], unit[j])
        median_cos, min_cos = float(np.median(cos)), float(np.min(cos))
    collapsed = bool(spread < threshold)
    if collapsed:
        message = (f"the embedding is collapsed: its {n} vectors spread by {spread:.3g} of "
                   f"their length about their mean (collapse below {threshold:g}); median "
                   f"cosine similarity between galaxies {median_cos:.4f}. Similarities, "
                   f"clusters and scores computed on it describe noise, not galaxies")
    else:
        message = (f"the embedding spreads: relative spread {spread:.3g} (collapse below "
                   f"{threshold:g}), median cosine similarity between galaxies "
                   f"{median_cos:.3f}, effective dimension {eff_dim:.1f} of {d}")
    return {"n_galaxies": int(n), "n_features": int(d), "relative_spread": float(spread),
            "median_cosine": median_cos, "min_cosine": min_cos,
            "effective_dimension": eff_dim, "threshold": float(threshold),
            "collapsed": collapsed, "message": message}
