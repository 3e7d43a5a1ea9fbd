"""Embeddings and catalogues as the downstream tasks read them.

Embeddings arrive as an ``(N, D)`` array or as the embeddings table written by
``SimCLR.embed`` (columns ``id`` and ``embedding``); catalogues are
`~astropy.table.QTable` objects whose columns may carry units (including
logarithmic ``dex`` units), be masked, or hold strings. These functions align
the two, turn columns into plain float arrays (NaN = missing) or string labels,
and decide which columns are physical properties of the galaxies.

Which columns are properties
----------------------------
A catalogue holds more than physical properties: sky positions, position
angles, distances and redshifts, identifiers, uncertainties and quality flags.
Ranking them beside stellar mass or EW(Halpha) would be misleading (an
embedding that "predicts" RA is a bug, not a finding), so `column_role` gives
every column one of the `COLUMN_ROLES`, from (in order of precedence):

1. the column's own ``meta["role"]``, when the catalogue sets it;
2. its name: ``ID``/``Name``/``objid`` (identifier), ``RA``/``DEC``
   (position), ``PA``/``inclination`` (angle), ``z``/``redshift``/``DL``/``DA``
   (distance), ``e_*``/``*_err`` (uncertainty), ``*flag*``/``QC_*``/``plate``
   /``mjd`` (bookkeeping);
3. its unit: angles (``deg``, ``arcsec``: positions, position angles and
   apparent sizes on the sky) and lengths of a megaparsec or more (distances);
4. its values: an integer column counting up without repeats is an identifier.

`property_columns` keeps the ``"property"`` columns (with variation, and
categorical ones with 2-30 classes); `left_out_columns` says why each other
column was left out. A task given an explicit list of properties ranks them
whatever their role.
"""

import re
import warnings

import numpy as np
from astropy.table import Table

from astro_cl.exceptions import AstroCLWarning, CatalogueError, ValidationError

__all__ = [
    "COLUMN_ROLES",
    "ID_COLUMNS",
    "align",
    "as_embedding",
    "column_role",
    "column_unit",
    "float_column",
    "hubble_t_type",
    "id_column",
    "is_categorical",
    "is_log_unit",
    "label_column",
    "left_out_columns",
    "property_columns",
]

#: Catalogue columns tried, in order, to match embedding ids.
ID_COLUMNS = ("id", "Name", "name", "ID")

#: Roles of catalogue columns (see `column_role`); only ``"property"`` columns
#: are ranked and regressed by default.
COLUMN_ROLES = {
    "property": "a physical property of the galaxy",
    "identifier": "an identifier or name",
    "position": "a position on the sky",
    "angle": "an angle on the sky (position angle, inclination, apparent size)",
    "distance": "a distance or redshift",
    "uncertainty": "the uncertainty of another column",
    "bookkeeping": "a flag, quality code or survey bookkeeping",
}

#: Strings read as "missing" in categorical columns.
_MISSING_LABELS = frozenset({"", "nan", "none", "null", "--", "n/a", "na", "-"})
#: Categorical columns with more distinct values than this are not properties.
_MAX_CATEGORIES = 30

#: Lower-case names (exact) and patterns (``re.search`` on the lower-case name) per role.
_ROLE_NAMES = {
    "identifier": {"id", "name", "objid", "specobjid", "plateifu", "mangaid", "califa_id",
                   "galaxy", "galaxy_id", "object", "objname", "target", "index", "row",
                   "subhalo_id", "camera"},
    "position": {"ra", "dec", "raj2000", "dej2000", "decj2000", "ra_deg", "dec_deg", "glon",
                 "glat", "elon", "elat", "ra_obj", "dec_obj", "objra", "objdec"},
    "angle": {"pa", "position_angle", "theta", "theta_image", "inclination", "incl", "inc",
              "phi"},
    "distance": {"z", "redshift", "zspec", "z_spec", "zphot", "z_phot", "zhelio", "z_helio",
                 "cz", "dl", "da", "dc", "dm", "dist", "distance", "lum_dist", "d_l", "d_a",
                 "comoving_distance", "luminosity_distance", "angular_distance",
                 "distmod", "dist_mod"},
    "bookkeeping": {"qc", "multiple", "plate", "ifu", "ifudsgn", "ifudesign", "mjd", "fiber",
                    "fiberid", "run", "rerun", "camcol", "field", "split", "fold", "train",
                    "test", "subset", "survey", "release", "version", "file", "filename",
                    "path", "url", "snapshot"},
}
_ROLE_PATTERNS = {
    "identifier": (r"(^|_)(id|objid|ids)$", r"^id_"),
    "position": (r"^(ra|dec)_", r"_(ra|dec)$"),
    "angle": (r"(^|_)pa$", r"^pa_"),
    "distance": (r"^(z|redshift)_(spec|phot|helio|cmb|best)", r"_redshift$"),
    "uncertainty": (r"^e_", r"^err_", r"_err$", r"_error$", r"^ivar_", r"_ivar$",
                    r"^sigma_.*_err$"),
    "bookkeeping": (r"flag", r"^qc_?", r"quality", r"_version$"),
}
def as_embedding(embeddings):
    """Return the embedding as a float64 array and its ids.

    Parameters
    ----------
    embeddings : `numpy.ndarray` or `~astropy.table.Table`
        ``(N, D)`` vectors, or a table with an ``embedding`` column (and ``id``).

    Returns
    -------
    X : `numpy.ndarray`
        ``(N, D)`` float64.
    ids : `numpy.ndarray` of str or None

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the table has no ``embedding`` column, the array is empty or not
        2-D, or a row holds NaN or inf.
    """
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


def id_column(catalogue):
    """Return the name of the catalogue column holding galaxy ids, or None.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`

    Returns
    -------
    name : str or None
        The first of `ID_COLUMNS` the catalogue has.
    """
    for name in ID_COLUMNS:
        if name in catalogue.colnames:
            return name
    return None


def align(embeddings, catalogue):
    """Align embeddings and catalogue rows.

    When both carry ids they are joined on the id (the catalogue's ``id``
    column, else ``Name``, ``name`` or ``ID``); embedding rows absent from the
    catalogue are dropped with a warning. Otherwise the two must have the same
    length and are matched by position.

    Parameters
    ----------
    embeddings : `numpy.ndarray` or `~astropy.table.Table`
    catalogue : `~astropy.table.Table` or None

    Returns
    -------
    X : `numpy.ndarray`
        ``(N, D)`` float64 embeddings (rows without a catalogue entry dropped).
    catalogue : `~astropy.table.Table` or None
        The catalogue rows of the embedded galaxies, in the embedding's order.
    ids : `numpy.ndarray` of str or None

    Raises
    ------
    astro_cl.exceptions.CatalogueError
        If no id matches, or without ids the lengths differ.
    """
    X, ids = as_embedding(embeddings)
    if catalogue is None:
        return X, None, ids
    if not isinstance(catalogue, Table):
        msg = f"catalogue: expected an astropy Table/QTable, got {type(catalogue).__name__}"
        raise CatalogueError(msg)
    idcol = id_column(catalogue)
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
                          f"catalogue's {idcol!r} column; they are left out", AstroCLWarning,
                          stacklevel=2)
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


def is_categorical(column):
    """Return whether a column holds labels (strings, booleans, objects).

    Parameters
    ----------
    column : array-like

    Returns
    -------
    categorical : bool
    """
    return np.asarray(column).dtype.kind in "USOb"


def _mask_of(col):
    """Boolean mask (True = missing) of a possibly masked column."""
    mask = getattr(col, "mask", None)
    if mask is None:
        return np.zeros(len(col), bool)
    return np.broadcast_to(np.asarray(mask, bool), (len(col),)).copy()


def float_column(catalogue, name):
    """Return a column as float64 with units stripped; masked or non-finite values are NaN.

    Logarithmic quantities (``dex(solMass)``) give their logarithmic value.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`
    name : str

    Returns
    -------
    values : `numpy.ndarray`

    Raises
    ------
    astro_cl.exceptions.CatalogueError
        If the column is missing or holds labels.
    """
    col = _require_column(catalogue, name)
    if is_categorical(col):
        msg = f"catalogue column {name!r} holds labels ({col.dtype}), expected numbers"
        raise CatalogueError(msg)
    mask = _mask_of(col)
    if hasattr(col, "unmasked"):  # astropy Masked quantity
        col = col.unmasked
    values = np.array(np.ma.getdata(getattr(col, "value", col)), dtype=np.float64)
    values[mask] = np.nan
    values[~np.isfinite(values)] = np.nan
    return values


def label_column(catalogue, name):
    """Return a column as an object array of str; missing labels are None.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`
    name : str

    Returns
    -------
    labels : `numpy.ndarray` of object
        Masked entries and the strings ``""``, ``"nan"``, ``"none"``,
        ``"null"``, ``"--"``, ``"n/a"``, ``"na"``, ``"-"`` become None.
    """
    col = _require_column(catalogue, name)
    mask = _mask_of(col)
    labels = np.asarray(np.ma.getdata(getattr(col, "unmasked", col))).astype(str)
    out = labels.astype(object)
    missing = mask | np.isin(np.char.lower(np.char.strip(labels)), list(_MISSING_LABELS))
    out[missing] = None
    return out


def column_unit(catalogue, name):
    """Return a column's unit, or None.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`
    name : str

    Returns
    -------
    unit : `~astropy.units.UnitBase` or None
    """
    return getattr(catalogue[name], "unit", None)


def is_log_unit(unit):
    """Return whether a unit is logarithmic in base 10 (``dex``, ``dex(solMass)``).

    Parameters
    ----------
    unit : `~astropy.units.UnitBase` or None

    Returns
    -------
    logarithmic : bool
        False for magnitudes, which are logarithmic in another base.
    """
    import astropy.units as u

    if unit is None:
        return False
    if isinstance(unit, u.FunctionUnitBase):
        return isinstance(unit, u.DexUnit)
    return unit == u.dex


def _unit_role(unit):
    """Role implied by a column's unit (or None)."""
    import astropy.units as u

    if unit is None or isinstance(unit, u.FunctionUnitBase):
        return None
    try:
        physical = unit.physical_type
    except (AttributeError, ValueError):  # pragma: no cover - exotic units
        return None
    if physical == "angle":
        return "angle"
    if physical == "length" and (1.0 * unit).to_value(u.Mpc) >= 0.999:
        return "distance"
    return None


def column_role(catalogue, name):
    """Return the role of a catalogue column: one of `COLUMN_ROLES`.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`
    name : str

    Returns
    -------
    role : str
        ``"property"`` for a physical property; otherwise ``"identifier"``,
        ``"position"``, ``"angle"``, ``"distance"``, ``"uncertainty"`` or
        ``"bookkeeping"`` (see the module docstring for the rules).

    Raises
    ------
    astro_cl.exceptions.CatalogueError
        If the column is missing or its ``meta["role"]`` is not a known role.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> cat = QTable({"RA": [1.0, 2.0] * u.deg, "PA": [10.0, 20.0] * u.deg,
    ...               "DL": [100.0, 200.0] * u.Mpc, "Re_kpc": [2.0, 3.0] * u.kpc})
    >>> [column_role(cat, c) for c in cat.colnames]
    ['position', 'angle', 'distance', 'property']
    """
    col = _require_column(catalogue, name)
    info = getattr(col, "info", None)  # Quantity columns keep their meta in .info
    declared = ((getattr(info, "meta", None) or getattr(col, "meta", None) or {})
                .get("role"))
    if declared is not None:
        if declared not in COLUMN_ROLES:
            msg = (f"catalogue column {name!r}: meta['role'] = {declared!r} is not one of "
                   f"{sorted(COLUMN_ROLES)}")
            raise CatalogueError(msg)
        return declared
    lname = name.strip().lower()
    if name in ID_COLUMNS:
        return "identifier"
    for role in ("identifier", "position", "angle", "distance", "bookkeeping"):
        # "Z" in capitals is a metallicity more often than a redshift
        if lname in _ROLE_NAMES[role] and name != "Z":
            return role
    for role, patterns in _ROLE_PATTERNS.items():
        if any(re.search(p, lname) for p in patterns):
            return role
    by_unit = _unit_role(getattr(col, "unit", None))
    if by_unit is not None:
        return by_unit
    values = np.asarray(np.ma.getdata(getattr(col, "value", col)))
    if (values.dtype.kind in "iu" and values.ndim == 1 and len(values) >= 10
            and np.all(np.diff(values) > 0)):
        return "identifier"  # a counter: 0, 1, 2, ... or any increasing unique integers
    return "property"


def _selection(catalogue, exclude=()):
    """``(properties, left_out)``: usable property columns and why the others are not."""
    keep, left_out = [], {}
    skip = set(exclude)
    for name in catalogue.colnames:
        col = catalogue[name]
        if name in skip:
            left_out[name] = "excluded by the caller"
            continue
        if getattr(col, "ndim", 1) != 1:
            left_out[name] = "not a scalar column"
            continue
        role = column_role(catalogue, name)
        if role != "property":
            left_out[name] = role
            continue
        if is_categorical(col):
            labels = label_column(catalogue, name)
            values = {v for v in labels if v is not None}
            if len(values) < 2:
                left_out[name] = "a single value"
            elif len(values) > _MAX_CATEGORIES or len(values) >= 0.5 * len(labels):
                left_out[name] = f"{len(values)} distinct labels (not a class)"
            else:
                keep.append(name)
        else:
            values = float_column(catalogue, name)
            finite = values[np.isfinite(values)]
            if finite.size < 3:
                left_out[name] = f"{finite.size} values"
            elif np.ptp(finite) == 0:
                left_out[name] = "a single value"
            else:
                keep.append(name)
    return keep, left_out


def property_columns(catalogue, *, exclude=()):
    """Return the columns to rank or regress by default: the physical properties.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`
    exclude : sequence of str, optional
        Further columns to leave out.

    Returns
    -------
    names : list of str
        Scalar columns whose `column_role` is ``"property"`` and that vary:
        numeric ones with at least 3 finite values that are not all equal,
        categorical ones with 2-30 classes (and fewer classes than half the rows).
    """
    return _selection(catalogue, exclude)[0]


def left_out_columns(catalogue, *, exclude=()):
    """Return the columns `property_columns` leaves out, and why.

    Parameters
    ----------
    catalogue : `~astropy.table.Table`
    exclude : sequence of str, optional
        As for `property_columns`.

    Returns
    -------
    reasons : dict of str to str
        Column name -> its role (``"position"``, ``"angle"``, ``"distance"``,
        ``"identifier"``, ``"uncertainty"``, ``"bookkeeping"``) or what makes it
        unusable (``"a single value"``, ...), in catalogue order.
    """
    return _selection(catalogue, exclude)[1]


#: de Vaucouleurs T-type of Hubble-type labels (E* -5, S0 -2, S0a 0 ... Sm/Irr 9-10).
_T_TYPES = {
    "E": -5.0, "S0": -2.0, "S0A": 0.0, "SA": 1.0, "SAB": 2.0, "SB": 3.0, "SBC": 4.0,
    "SC": 5.0, "SCD": 6.0, "SD": 7.0, "SDM": 8.0, "SM": 9.0, "I": 10.0, "IRR": 10.0,
    "IM": 10.0, "BCD": 10.0,
}
_HUBBLE = re.compile(r"^(E)[0-7]?$|^(S0A|S0|SAB|SBC|SCD|SDM|SA|SB|SC|SD|SM|IRR|IM|I|BCD)$")


def hubble_t_type(labels):
    """Return the numeric T-type of Hubble-type labels (``E3``, ``Sbc``, ...).

    Parameters
    ----------
    labels : sequence of str or None
        Missing labels are None.

    Returns
    -------
    t_type : `numpy.ndarray` or None
        NaN for missing labels and for labels that are not Hubble types (e.g.
        ``"U"`` for unclassified); None when fewer than half the present
        labels parse (the column is not a Hubble sequence).
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
    if mode is False or is_log_unit(unit):
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
