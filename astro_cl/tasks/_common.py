"""Private helpers shared by the downstream tasks.

Embeddings arrive as an ``(N, D)`` array or as the embeddings table written by
``SimCLR.embed`` (columns ``id`` and ``embedding``); catalogues are
`~astropy.table.QTable` objects whose columns may carry units (including
logarithmic ``dex`` units), be masked, or hold strings. These helpers align the
two and turn columns into plain float arrays (NaN = missing) or string labels.
"""

import re
import warnings

import numpy as np
from astropy.table import Table

from astro_cl.exceptions import AstroCLWarning, CatalogueError, ValidationError

__all__ = []

#: Catalogue columns tried, in order, to match embedding ids.
_ID_COLUMNS = ("id", "Name", "name", "ID")
#: Strings read as "missing" in categorical columns.
_MISSING_LABELS = frozenset({"", "nan", "none", "null", "--", "n/a", "na", "-"})
#: Categorical columns with more distinct values than this are not properties.
_MAX_CATEGORIES = 30


def _as_embedding(embeddings):
    """Return ``(X, ids)``: float64 ``(N, D)`` array and string ids (or None)."""
    ids = None
    if isinstance(embeddings, Table):
        if "embedding" not in embeddings.colnames:
            msg = (f"embeddings table: expected an 'embedding' column (and 'id'), "
                   f"got columns {embeddings.colnames}")
            raise ValidationError(msg)
        data = embeddings["embedding"]
        if "id" in embeddings.colnames:
            ids = np.asarray(embeddings["id"]).astype(str)
    else:
        data = embeddings
    X = np.asarray(getattr(data, "value", data), dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] == 0:
        msg = (f"embeddings: expected a non-empty (n_galaxies, n_features) array, "
               f"got shape {X.shape}")
        raise ValidationError(msg)
    if not np.all(np.isfinite(X)):
        bad = int(np.sum(~np.all(np.isfinite(X), axis=1)))
        msg = f"embeddings: {bad} of {len(X)} rows contain NaN or inf"
        raise ValidationError(msg)
    return X, ids


def _id_column(catalogue):
    """Return the name of the catalogue column holding galaxy ids, or None."""
    for name in _ID_COLUMNS:
        if name in catalogue.colnames:
            return name
    return None


def _align(embeddings, catalogue):
    """Align embeddings and catalogue rows.

    Returns ``(X, catalogue_rows, ids)``: the catalogue reordered (and cut) to
    the embedding rows. When both carry ids they are joined on the id (the
    catalogue's ``id`` column, else ``Name`` or ``ID``); embedding rows absent
    from the catalogue are dropped with a warning. Otherwise the two must have
    the same length and are matched by position.
    """
    X, ids = _as_embedding(embeddings)
    if catalogue is None:
        return X, None, ids
    if not isinstance(catalogue, Table):
        msg = f"catalogue: expected an astropy Table/QTable, got {type(catalogue).__name__}"
        raise CatalogueError(msg)
    idcol = _id_column(catalogue)
    if ids is not None and idcol is not None:
        cat_ids = np.asarray(catalogue[idcol]).astype(str)
        lookup = {}
        for i, key in enumerate(cat_ids):
            lookup.setdefault(key, i)
        rows = np.array([lookup.get(key, -1) for key in ids], dtype=np.int64)
        found = rows >= 0
        if not np.any(found):
            msg = (f"catalogue: none of the {len(ids)} embedding ids (e.g. {ids[:3].tolist()}) "
                   f"appear in its {idcol!r} column (e.g. {cat_ids[:3].tolist()})")
            raise CatalogueError(msg)
        if not np.all(found):
            warnings.warn(f"{int(np.sum(~found))} of {len(ids)} embedding ids are not in the "
                          f"catalogue's {idcol!r} column; they are left out", AstroCLWarning)
            X, ids, rows = X[found], ids[found], rows[found]
        return X, catalogue[rows], ids
    if len(catalogue) != len(X):
        msg = (f"catalogue: {len(catalogue)} rows but {len(X)} embeddings; without ids on "
               f"both sides they must match row by row")
        raise CatalogueError(msg)
    if ids is None and idcol is not None:
        ids = np.asarray(catalogue[idcol]).astype(str)
    return X, catalogue, ids


def _require_column(catalogue, name, what="column"):
    if catalogue is None:
        msg = f"a catalogue is needed for the {what} {name!r}"
        raise CatalogueError(msg)
    if name not in catalogue.colnames:
        msg = f"catalogue: no {what} {name!r}; columns are {catalogue.colnames}"
        raise CatalogueError(msg)
    return catalogue[name]


def _is_categorical(column):
    """Whether a column holds labels (strings, booleans, objects)."""
    return np.asarray(column).dtype.kind in "USOb"


def _float_column(catalogue, name):
    """Return a column as float64 with units stripped; masked/missing -> NaN.

    Logarithmic quantities (``dex(solMass)``) give their logarithmic value.
    """
    col = _require_column(catalogue, name)
    if _is_categorical(col):
        msg = f"catalogue column {name!r} holds labels ({col.dtype}), expected numbers"
        raise CatalogueError(msg)
    mask = _mask_of(col)
    if hasattr(col, "unmasked"):  # astropy Masked quantity
        col = col.unmasked
    values = np.array(np.ma.getdata(getattr(col, "value", col)), dtype=np.float64)
    values[mask] = np.nan
    values[~np.isfinite(values)] = np.nan
    return values


def _mask_of(col):
    """Boolean mask (True = missing) of a possibly masked column."""
    mask = getattr(col, "mask", None)
    if mask is None:
        return np.zeros(len(col), bool)
    return np.broadcast_to(np.asarray(mask, bool), (len(col),)).copy()


def _label_column(catalogue, name):
    """Return a column as an object array of str; missing labels -> None."""
    col = _require_column(catalogue, name)
    mask = _mask_of(col)
    labels = np.asarray(np.ma.getdata(getattr(col, "unmasked", col))).astype(str)
    out = labels.astype(object)
    missing = mask | np.isin(np.char.lower(np.char.strip(labels)), list(_MISSING_LABELS))
    out[missing] = None
    return out


def _column_unit(catalogue, name):
    """Return the column's unit (or None)."""
    return getattr(catalogue[name], "unit", None)


def _is_log_unit(unit):
    """Whether a unit is logarithmic (``dex``, ``dex(solMass)``, ``mag``-like excluded)."""
    import astropy.units as u

    if unit is None:
        return False
    if isinstance(unit, u.FunctionUnitBase):
        return isinstance(unit, u.DexUnit)
    return unit == u.dex


def _property_columns(catalogue, *, exclude=()):
    """Default property columns: numeric or few-category columns with variation.

    Id columns, uncertainty columns (``e_<name>``), multidimensional columns and
    columns with a single value are skipped.
    """
    out = []
    skip = set(_ID_COLUMNS) | set(exclude)
    for name in catalogue.colnames:
        col = catalogue[name]
        if name in skip or name.startswith("e_") or getattr(col, "ndim", 1) != 1:
            continue
        if _is_categorical(col):
            labels = _label_column(catalogue, name)
            values = {v for v in labels if v is not None}
            if 2 <= len(values) <= _MAX_CATEGORIES and len(values) < 0.5 * len(labels):
                out.append(name)
        else:
            values = _float_column(catalogue, name)
            finite = values[np.isfinite(values)]
            if finite.size >= 3 and np.ptp(finite) > 0:
                out.append(name)
    return out


#: de Vaucouleurs T-type of Hubble-type labels (E* -5, S0 -2, S0a 0 ... Sm/Irr 9-10).
_T_TYPES = {
    "E": -5.0, "S0": -2.0, "S0A": 0.0, "SA": 1.0, "SAB": 2.0, "SB": 3.0, "SBC": 4.0,
    "SC": 5.0, "SCD": 6.0, "SD": 7.0, "SDM": 8.0, "SM": 9.0, "I": 10.0, "IRR": 10.0,
    "IM": 10.0, "BCD": 10.0,
}
_HUBBLE = re.compile(r"^(E)[0-7]?$|^(S0A|S0|SAB|SBC|SCD|SDM|SA|SB|SC|SD|SM|IRR|IM|I|BCD)$")


def _hubble_t_type(labels):
    """Numeric T-type for Hubble-type labels (``E3``, ``Sbc``, ...); None if any is unknown.

    Missing labels (None) give NaN; a label that is not a Hubble type (e.g.
    ``"U"`` for unclassified) also gives NaN, but if fewer than half the labels
    parse the column is not a Hubble sequence and None is returned.
    """
    out = np.full(len(labels), np.nan)
    n_parsed = 0
    for i, label in enumerate(labels):
        if label is None:
            continue
        match = _HUBBLE.match(str(label).strip().upper())
        if match:
            out[i] = _T_TYPES[match.group(1) or match.group(2)]
            n_parsed += 1
    n_present = sum(label is not None for label in labels)
    if n_present == 0 or n_parsed < 0.5 * n_present:
        return None
    return out


def _bootstrap_score(score_fn, y_true, y_pred, *, n_bootstrap, rng):
    """Bootstrap standard deviation of ``score_fn(y_true, y_pred)`` over galaxies.

    The out-of-fold predictions are resampled with replacement (no refits), so
    the uncertainty reflects the finite sample the score is measured on.
    """
    n = len(y_true)
    if n_bootstrap <= 0 or n < 3:
        return np.nan
    idx = rng.integers(0, n, size=(n_bootstrap, n))
    scores = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores[b] = score_fn(y_true[idx[b]], y_pred[idx[b]])
    scores = scores[np.isfinite(scores)]
    return float(np.std(scores, ddof=1)) if scores.size > 1 else np.nan


def _check_fitted(task, attribute):
    if not hasattr(task, attribute):
        msg = f"{type(task).__name__} is not fitted yet; call fit() first"
        raise ValidationError(msg)


def _log_transform(values, unit=None, mode="auto"):
    """Return ``(values, logged)``: log10 of a one-signed, wide-range quantity.

    With ``mode="auto"`` a column is put in log10 when its unit is not already
    logarithmic, all its finite values have one sign (emission-line equivalent
    widths in Pipe3D are negative) and their magnitudes span more than two
    decades; ``log10(|value|)`` is returned and zeros become NaN. ``mode=True``
    forces the transform (when the values have one sign), ``False`` disables it.
    """
    if mode is False or _is_log_unit(unit):
        return values, False
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values, False
    one_signed = bool(np.all(finite >= 0) or np.all(finite <= 0))
    magnitude = np.abs(finite[finite != 0])
    if not one_signed or magnitude.size < 3:
        return values, False
    if mode == "auto" and magnitude.max() / magnitude.min() <= 100:
        return values, False
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.abs(values))
    out[~np.isfinite(out)] = np.nan
    return out, True
