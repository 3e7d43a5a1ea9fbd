"""Units used by the mock surveys.

Astropy already defines the SDSS ``nanomaggy`` (``u.nanomaggy``, 1e-9 maggy, a
photometric ratio to the AB zero point); it converts to janskys with the
``astropy.units.zero_point_flux(3631 * u.Jy)`` equivalency, so 1 nanomaggy =
3.631 microjansky. The mocks, their writers and the ``sdss`` reader all use it.
"""

import astropy.units as u

__all__ = ["AB_EQUIVALENCY", "CALIFA_FLUX_UNIT", "nanomaggy"]

#: The SDSS nanomaggy (astropy's own unit).
nanomaggy = u.nanomaggy

#: Equivalency turning maggies into spectral flux density (AB zero point 3631 Jy).
AB_EQUIVALENCY = u.zero_point_flux(3631 * u.Jy)

#: Flux unit of CALIFA V500 cubes.
CALIFA_FLUX_UNIT = u.Unit("1e-16 erg / (s cm2 Angstrom)")
