"""How well a cross-modal encoder aligns images with cubes: retrieval and zero-shot probes.

For held-out pairs (galaxies the encoder never saw), `evaluate_alignment`
measures

* **retrieval**: each galaxy's image embedding is compared with the cube
  embeddings of all N held-out galaxies (cosine similarity); top-k accuracy
  is the fraction whose own cube is among the k most similar (chance: k/N),
  in both directions (image -> cube and cube -> image), with the median rank
  of the true partner;
* **zero-shot property regression**: a cross-validated ridge probe
  (`~astro_cl.tasks.PropertyRegression`) from the *image* embedding to
  properties measured on the cube (EW(Halpha), mass-weighted age,
  metallicity, from the cube survey's catalogue), beside the same probe on
  the cube embedding (what the cube tower itself holds) and, when given, on
  a baseline embedding of the same images (e.g. an image-only SimCLR encoder
  trained with the same budget, `fit_image_baseline`).

As in AstroCLIP (Parker et al. 2024), "zero-shot" means the encoder was
trained without the properties; only the linear probe sees them.
"""

from dataclasses import dataclass, field

import numpy as np
from astropy.table import QTable

from astro_cl.exceptions import ValidationError

__all__ = ["DEFAULT_PROPERTIES", "AlignmentResult", "evaluate_alignment", "fit_image_baseline",
           "retrieval_accuracy"]

#: Cube-derived catalogue columns of the mocks (eCALIFA names): central
#: EW(Halpha), mass-weighted age and light-weighted metallicity at 1 Re.
DEFAULT_PROPERTIES = ("EW_Ha_cen", "Age_MW_Re_fit", "ZH_LW_Re_fit")


def _table(embeddings, where):
    """Return ``(ids or None, (N, D) float array)`` of an embedding table or array."""
    if isinstance(embeddings, QTable) or hasattr(embeddings, "colnames"):
        if "embedding" not in embeddings.colnames:
            msg = f"{where}: the table has no 'embedding' column (columns: {embeddings.colnames})"
            raise ValidationError(msg)
        ids = [str(i) for i in embeddings["id"]] if "id" in embeddings.colnames else None
        X = np.asarray(embeddings["embedding"], dtype=float)
    else:
        ids, X = None, np.asarray(embeddings, dtype=float)
    if X.ndim != 2 or len(X) == 0:
        msg = f"{where}: expected N x D embeddings, got shape {X.shape}"
        raise ValidationError(msg)
    if not np.all(np.isfinite(X)):
        msg = f"{where}: the embeddings hold NaN or infinite values"
        raise ValidationError(msg)
    return ids, X


def _aligned(query, gallery):
    """Return the query and gallery matrices with row ``i`` of both the same galaxy."""
    qids, Q = _table(query, "retrieval query")
    gids, G = _table(gallery, "retrieval gallery")
    if Q.shape[1] != G.shape[1]:
        msg = (f"retrieval: query embeddings have {Q.shape[1]} dimensions, the gallery "
               f"{G.shape[1]}; embed both in the shared space")
        raise ValidationError(msg)
    if qids is None or gids is None:
        if len(Q) != len(G):
            msg = f"retrieval: {len(Q)} queries but {len(G)} gallery rows (without ids)"
            raise ValidationError(msg)
        return Q, G
    index = {g: i for i, g in enumerate(gids)}
    missing = [q for q in qids if q not in index]
    if missing or len(gids) != len(qids):
        msg = (f"retrieval: query and gallery must hold the same galaxies; "
               f"{len(missing)} query ids are not in the gallery (e.g. {missing[:5]}), "
               f"{len(qids)} queries, {len(gids)} gallery rows")
        raise ValidationError(msg)
    return Q, G[[index[q] for q in qids]]


def retrieval_accuracy(query, gallery, *, k=(1, 10)):
    """Return the top-k accuracy of retrieving each query's partner from the gallery.

    Parameters
    ----------
    query, gallery : `~astropy.table.QTable` or array-like
        Embedding tables (``id``, ``embedding``) of the same galaxies, matched
        by id; or ``(N, D)`` arrays whose row ``i`` is the same galaxy.
        Similarity is the cosine of the angle.
    k : sequence of int, optional
        Ranks at which accuracy is given.

    Returns
    -------
    result : dict
        ``n``; for each k, ``top{k}`` (fraction of queries whose partner is
        among the k most similar gallery rows) and ``chance_top{k}``
        (``min(k, N) / N``); ``median_rank`` of the partner (1 = first) and
        ``ranks`` (``(N,)`` int).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the two hold different galaxies or dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_cl.tasks.alignment import retrieval_accuracy
    >>> z = np.eye(4)
    >>> retrieval_accuracy(z, z, k=(1,))["top1"]
    1.0
    """
    Q, G = _aligned(query, gallery)
    Q = Q / np.linalg.norm(Q, axis=1, keepdims=True).clip(1e-12)
    G = G / np.linalg.norm(G, axis=1, keepdims=True).clip(1e-12)
    sim = Q @ G.T
    own = np.diag(sim)
    # rank = 1 + number of gallery rows strictly more similar than the partner
    ranks = 1 + (sim > own[:, None]).sum(axis=1)
    n = len(Q)
    out = {"n": int(n)}
    for kk in k:
        kk = int(kk)
        if kk < 1:
            msg = f"retrieval_accuracy: k must be positive integers, got {k!r}"
            raise ValidationError(msg)
        out[f"top{kk}"] = float(np.mean(ranks <= kk))
        out[f"chance_top{kk}"] = float(min(kk, n) / n)
    out["median_rank"] = float(np.median(ranks))
    out["ranks"] = ranks.astype(int)
    return out


@dataclass
class AlignmentResult:
    """What `evaluate_alignment` measured.

    Attributes
    ----------
    retrieval : `~astropy.table.QTable`
        One row per direction (``image->cube``, ``cube->image``): ``n``,
        ``top{k}``, ``chance_top{k}``, ``median_rank``.
    regression : `~astropy.table.QTable`
        One row per (embedding, property): ``embedding`` (``clip-image``,
        ``clip-cube``, ``baseline-image``), ``property``, ``r2``, ``r2_err``
        (bootstrap), ``n_galaxies``, ``log10``.
    embeddings : dict of str to `~astropy.table.QTable`
        The embedding tables that were scored.
    """

    retrieval: QTable
    regression: QTable
    embeddings: dict = field(default_factory=dict)

    def summary(self):
        """Return the results as a few lines of text.

        Returns
        -------
        text : str
        """
        lines = []
        for row in self.retrieval:
            tops = [c for c in self.retrieval.colnames if c.startswith("top")]
            parts = [f"{c} {row[c]:.2f} (chance {row['chance_' + c]:.2f})" for c in tops]
            lines.append(f"{row['direction']} retrieval of {row['n']} held-out galaxies: "
                         + ", ".join(parts) + f"; median rank {row['median_rank']:.1f}")
        for prop in dict.fromkeys(self.regression["property"]):
            rows = self.regression[self.regression["property"] == prop]
            parts = [f"{r['embedding']} {r['r2']:.2f}+-{r['r2_err']:.2f}" for r in rows]
            lines.append(f"R^2 of {prop}: " + ", ".join(parts))
        return "\n".join(lines)


def _probe(embeddings, catalogue, properties, *, cv, seed, n_bootstrap, min_samples, alphas,
           log_transform):
    from astro_cl.tasks.regression import PropertyRegression

    task = PropertyRegression(properties=list(properties), models=("ridge",), cv=cv,
                              seed=seed, n_bootstrap=n_bootstrap, min_samples=min_samples,
                              alphas=alphas, log_transform=log_transform)
    return task.fit(embeddings, catalogue).results_


def evaluate_alignment(model, pairs, *, properties=DEFAULT_PROPERTIES, catalogue=None,
                       baseline=None, k=(1, 10), projected=True, cv=5, seed=0,
                       n_bootstrap=100, min_samples=10,
                       alphas=(1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3), log_transform=True):
    """Score a fitted `~astro_cl.models.clip.CLIPEncoder` on held-out pairs.

    Parameters
    ----------
    model : `~astro_cl.models.clip.CLIPEncoder`
        Fitted (on other galaxies).
    pairs : `~astro_cl.surveys.paired.PairedSurvey`
        Held-out pairs (image and cube of each galaxy).
    properties : sequence of str, optional
        Catalogue columns to probe (default `DEFAULT_PROPERTIES`, measured
        on the cubes).
    catalogue : `~astropy.table.QTable`, optional
        Their values, with an ``id`` column (default: the cube survey's
        catalogue).
    baseline : `~astropy.table.QTable`, encoder or None, optional
        A baseline image embedding: a table (``id``, ``embedding``) of the
        held-out images, or a fitted image encoder with ``embed`` (e.g. from
        `fit_image_baseline`), which then embeds the images of ``pairs``.
    k : sequence of int, optional
        Ranks of the retrieval accuracy.
    projected : bool, optional
        Probe the shared-space vectors (True, the default) or the towers'
        own embeddings (False). Retrieval always uses the shared space.
    cv : int, optional
        Folds of the probe's cross-validation (over the held-out galaxies).
    seed : int, optional
        Seed of the folds and bootstrap.
    n_bootstrap : int, optional
        Bootstrap resamples of the R^2 uncertainty.
    min_samples : int, optional
        Properties with fewer valid galaxies are skipped (with a warning).
    alphas : sequence of float, optional
        Ridge strengths chosen from inside each fold.
    log_transform : {True, "auto", False}, optional
        Regress one-signed quantities in log10 (True, the default: an
        equivalent width as log10 of the absolute EW, whatever its range in a small
        held-out set; quantities already in dex are left as they are), see
        `~astro_cl.tasks.PropertyRegression`.

    Returns
    -------
    result : `AlignmentResult`

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the model is not fitted, or the catalogue lacks a property.
    """
    from astro_cl.surveys.paired import PairedSurvey

    if not isinstance(pairs, PairedSurvey):
        msg = f"evaluate_alignment: pairs must be a PairedSurvey, got {type(pairs).__name__}"
        raise ValidationError(msg)
    cat = pairs.side("cube").catalogue if catalogue is None else catalogue
    absent = [p for p in properties if p not in cat.colnames]
    if absent:
        msg = (f"evaluate_alignment: the catalogue has no column {absent} "
               f"(columns: {cat.colnames})")
        raise ValidationError(msg)
    # preprocessed once (a mock renders its cubes on every read), embedded as often as asked
    sources = {m: model.input_source(pairs, modality=m) for m in ("image", "cube")}
    emb = {m: model.embed(sources[m], modality=m) for m in sources}
    rows = []
    for direction, (q, g) in {"image->cube": ("image", "cube"),
                              "cube->image": ("cube", "image")}.items():
        res = retrieval_accuracy(emb[q], emb[g], k=k)
        res.pop("ranks")
        rows.append({"direction": direction, **res})
    retrieval = QTable(rows=rows)
    probes = {f"clip-{m}": emb[m] if projected else
              model.embed(sources[m], modality=m, projected=False) for m in sources}
    if baseline is not None:
        probes["baseline-image"] = baseline if hasattr(baseline, "colnames") \
            else baseline.embed(pairs.side("images"))
    tables = []
    for name, table in probes.items():
        res = _probe(table, cat, properties, cv=cv, seed=seed, n_bootstrap=n_bootstrap,
                     min_samples=min_samples, alphas=alphas, log_transform=log_transform)
        res = QTable({"embedding": np.full(len(res), name), "property": res["property"],
                      "r2": res["r2"], "r2_err": res["r2_err"],
                      "n_galaxies": res["n_galaxies"], "log10": res["log10"]})
        tables.append(res)
    from astropy.table import vstack

    regression = vstack(tables)
    return AlignmentResult(retrieval=retrieval, regression=QTable(regression),
                           embeddings={**{f"clip-{m}": t for m, t in emb.items()},
                                       **({"baseline-image": probes["baseline-image"]}
                                          if baseline is not None else {})})


def fit_image_baseline(model, train, *, augmenter=None, trainer=None):
    """Train an image-only SimCLR encoder with the budget of a fitted CLIP encoder.

    The baseline has the image tower's architecture (backbone, width, dense
    head, ``embedding_dim``), the same training settings (epochs, batch size,
    learning rate, seed) and a fresh preprocessor with the parameters of the
    CLIP image preprocessor, and trains on the same images: the difference
    in what the embeddings hold is then the cubes' doing.

    Parameters
    ----------
    model : `~astro_cl.models.clip.CLIPEncoder`
        Fitted.
    train : `~astro_cl.surveys.paired.PairedSurvey` or survey
        The training pairs (their images are used) or image survey.
    augmenter : `~astro_cl.augment.Augmenter`, optional
        Makes SimCLR's two views (default: the CLIP encoder's augmenter).
    trainer : dict, optional
        Settings replacing the CLIP encoder's.

    Returns
    -------
    baseline : `~astro_cl.models.simclr.SimCLR`
        Fitted.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If neither ``augmenter`` nor the CLIP encoder's gives SimCLR its views.
    """
    from astro_cl.models.simclr import SimCLR
    from astro_cl.surveys.paired import PairedSurvey

    model._check_fitted()
    views = augmenter if augmenter is not None else model.augmenter
    if views is None:
        msg = ("fit_image_baseline: SimCLR needs an augmenter to make its two views; the CLIP "
               "encoder has none, pass augmenter=")
        raise ValidationError(msg)
    images = train.side("images") if isinstance(train, PairedSurvey) else train
    pre = model.preprocessors_.get("image")
    fresh = None if pre is None else type(pre)(**pre.get_params(deep=False))
    settings = dict(model.trainer_.get_params(deep=False))
    settings.update(trainer or {})
    baseline = SimCLR(backbone=model.backbone, width=model.width, hidden=tuple(model.hidden),
                      embedding_dim=model.embedding_dim, dropout=model.dropout,
                      pooling=model.pooling, augmenter=views, kind="images")
    return baseline.fit(images, preprocessor=fresh, trainer=settings)
