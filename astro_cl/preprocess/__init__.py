"""Preprocessing: fitted transformations from raw survey data to model inputs, and the cache.

Torch-free. ``build_preprocessor({"name": "cube-pca", ...})`` builds a
preprocessor from plain configuration; the names are those of the component
registry, where the built-ins and the plugins' preprocessors are registered
through the ``astro_cl_register_preprocessors`` hook.
"""

from astro_cl.exceptions import ValidationError
from astro_cl.preprocess.base import Preprocessor, get_preprocessor_class, register_preprocessor
from astro_cl.preprocess.cache import CachedArrays, PreprocessedCache
from astro_cl.preprocess.cube_pca import CubePCA
from astro_cl.preprocess.images import ImageScaler

__all__ = [
    "CachedArrays",
    "CubePCA",
    "ImageScaler",
    "PreprocessedCache",
    "Preprocessor",
    "build_preprocessor",
    "get_preprocessor_class",
    "register_preprocessor",
]


def build_preprocessor(spec):
    """Build an (unfitted) preprocessor from a plain specification.

    Parameters
    ----------
    spec : dict
        ``{"name": <registered name>, **params}``, e.g. ``{"name": "cube-pca",
        "luminosity_channel": False}``.

    Returns
    -------
    preprocessor : `Preprocessor`

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If the name is not registered or a parameter is unknown.

    Examples
    --------
    >>> build_preprocessor({"name": "image-scaler", "method": "log"})
    ImageScaler(floor=1.0, method='log', softening=1.0, standardize=True)
    """
    if not isinstance(spec, dict) or "name" not in spec:
        msg = f"build_preprocessor: expected a dict with a 'name', got {spec!r}"
        raise ValidationError(msg)
    params = dict(spec)
    cls = get_preprocessor_class(params.pop("name"))
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        msg = (f"build_preprocessor: unknown parameters {unknown} for {cls.name!r}; "
               f"valid ones are {cls._param_names()}")
        raise ValidationError(msg)
    return cls(**params)
