"""Units used by the mock surveys.

``nanomaggy`` is the SDSS linear flux unit: 1 nanomaggy = 3.631 microjansky
(AB magnitude 22.5). Astropy has no such unit, so it is defined here once and
used by the ``sdss-mock`` survey, its writer and the ``sdss`` reader.
"""

import astropy.units as u

__all__ = ["CALIFA_FLUX_UNIT", "nanomaggy"]

#: SDSS nanomaggy, 3.631e-6 Jy (an AB magnitude of 22.5).
nanomaggy = u.def_unit(["nanomaggy", "nmgy"], 3.631e-6 * u.Jy,
                       doc="SDSS nanomaggy: 3.631 microjansky (AB magnitude 22.5)")

#: Flux unit of CALIFA V500 cubes.
CALIFA_FLUX_UNIT = u.Unit("1e-16 erg / (s cm2 Angstrom)")

u.add_enabled_units([nanomaggy])
