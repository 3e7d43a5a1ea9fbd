"""Hubble types as numbers: the de Vaucouleurs numerical stage ``T``.

A Hubble type such as ``"Sbc"`` is an ordered class: an elliptical is
further from an Sc than an Sa is. Scoring it as an unordered label
(balanced accuracy over ~20 classes, ellipticals split by apparent axis
ratio E0-E7) throws that order away and puts the score on a different scale
from the R^2 of every other property. The numerical stage of the RC3
(de Vaucouleurs et al. 1991, Third Reference Catalogue of Bright Galaxies)
keeps the order and is what morphology regressions usually predict:

======================================  ===
Hubble type                             T
======================================  ===
E (E0-E7)                               -5
S0                                      -2
S0a                                     0
Sa, Sab, Sb, Sbc, Sc, Scd, Sd, Sdm, Sm  1-9
I, Im, Irr                              10
======================================  ===

Blue compact dwarfs (``BCD``), unknown (``U``) and anything else unparsed
get NaN: they are not on the Hubble sequence.
"""

import re

import numpy as np

__all__ = ["HUBBLE_STAGES", "hubble_stage"]

#: Numerical stage of each Hubble type (RC3); every elliptical E0-E7 is -5.
HUBBLE_STAGES = {
    "E": -5.0, "S0": -2.0, "S0a": 0.0, "Sa": 1.0, "Sab": 2.0, "Sb": 3.0, "Sbc": 4.0,
    "Sc": 5.0, "Scd": 6.0, "Sd": 7.0, "Sdm": 8.0, "Sm": 9.0, "I": 10.0, "Im": 10.0,
    "Irr": 10.0,
}

#: Bars and rings are written in the type by some catalogues ("SBbc", "SAB(r)c",
#: "S0/a"); the stage ignores them.
_BAR = re.compile(r"^S(?:AB|A|B)(?=[0abcdm])")
_DECORATION = re.compile(r"\([^)]*\)|[:?/+\-]")


def _stage(value):
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = _DECORATION.sub("", text.strip())
    if text == "E" or (text.startswith("E") and text[1:].isdigit()):
        return HUBBLE_STAGES["E"]
    text = _BAR.sub("S", text)
    return HUBBLE_STAGES.get(text, np.nan)


def hubble_stage(types):
    """Return the de Vaucouleurs numerical stage ``T`` of Hubble types.

    Parameters
    ----------
    types : str or array-like of str
        Hubble types as catalogues write them: ``"E3"``, ``"S0a"``, ``"Sbc"``,
        ``"SBb"``, ``"SAB(r)c"``, ``"S0/a"``, ``"Irr"``. Bars, rings and
        uncertainty marks are ignored.

    Returns
    -------
    stage : float or `numpy.ndarray`
        ``T`` (see the module table); NaN for types off the Hubble sequence
        (``"BCD"``, ``"U"``, empty, unknown). A float for a single string.

    Examples
    --------
    >>> from astro_cl.utils.morphology import hubble_stage
    >>> hubble_stage(["E4", "S0", "Sbc", "SBb", "BCD"]).tolist()
    [-5.0, -2.0, 4.0, 3.0, nan]
    """
    if isinstance(types, (str, bytes)):
        return _stage(types)
    values = np.asarray(types)
    return np.array([_stage(v) for v in values.ravel()], dtype=float).reshape(values.shape)
