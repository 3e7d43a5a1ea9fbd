"""The input contract of a trained model: what data it can be applied to.

A model is trained on data of one kind (IFU cubes or multi-band images), with
a flux unit, a pixel scale, a set of bands or a wavelength coverage, and a
preprocessing step that turns the raw records into the network's input
channels. `InputContract` records all of this when the model is fitted, is
saved in the model file, and checks new records before they are embedded or
predicted, so that data the model was not trained for is refused with a
message saying what the model expects and what it got, instead of producing
numbers that mean nothing.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from astro_cl.exceptions import ValidationError

__all__ = ["InputContract"]

#: A pixel scale further than this factor from the training one is refused.
PIXEL_SCALE_TOLERANCE = 2.0


def _unit_string(unit: Any) -> str:
    if unit is None:
        return ""
    return unit.to_string()


@dataclass
class InputContract:
    """What a trained model expects of the data it is applied to.

    Parameters
    ----------
    kind : {"cube", "images", "maps"}
        The record field the model reads.
    in_channels : int
        Channels of the network input (after preprocessing).
    spatial_shape : tuple of int, optional
        ``(height, width)`` of the training inputs.
    unit : str, optional
        Flux unit of the raw data (an astropy unit string; empty when unknown).
    bands : list of str, optional
        Band names of image data, in order.
    wavelength_range : list of float, optional
        ``[min, max]`` observed wavelength coverage of the training cubes, in
        Angstrom (the widest range seen in the training sample).
    pixel_scale : float, optional
        Arcsec per pixel of the training data.
    preprocessor : str, optional
        Registered name of the preprocessor applied before the network.
    rest_frame : bool, optional
        Whether the preprocessor moves spectra to the rest frame.
    """

    kind: str
    in_channels: int
    spatial_shape: tuple[int, ...] = ()
    unit: str = ""
    bands: list[str] = field(default_factory=list)
    wavelength_range: list[float] = field(default_factory=list)
    pixel_scale: float | None = None
    preprocessor: str | None = None
    rest_frame: bool = False

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_record(cls, record: Any, *, kind: str, in_channels: int,
                    spatial_shape: tuple[int, ...] = (),
                    preprocessor: Any = None) -> "InputContract":
        """Describe the raw data of one training record.

        Parameters
        ----------
        record : `~astro_cl.data.GalaxyRecord`
            A record of the training survey.
        kind : str
            Field the model reads (``"cube"``, ``"images"`` or ``"maps"``).
        in_channels : int
            Channels of the network input.
        spatial_shape : tuple of int, optional
            Height and width of the network input.
        preprocessor : `~astro_cl.preprocess.Preprocessor`, optional
            The fitted preprocessor, if any.

        Returns
        -------
        contract : `InputContract`
        """
        unit: str = ""
        bands: list[str] = []
        wave: list[float] = []
        if kind == "cube" and record.cube is not None:
            unit = _unit_string(record.cube.flux.unit)
            axis = record.cube.spectral_axis.to_value("Angstrom", equivalencies=_spectral())
            wave = [float(np.min(axis)), float(np.max(axis))]
        elif kind in (None, "images") and record.images is not None:
            unit = _unit_string(record.images.unit)
            bands = [str(b) for b in record.bands]
        scale = None
        if record.observing is not None and record.observing.pixel_scale is not None:
            scale = float(record.observing.pixel_scale.to_value("arcsec / pix"))
        return cls(kind=str(kind or "images"), in_channels=int(in_channels),
                   spatial_shape=tuple(int(s) for s in spatial_shape), unit=unit, bands=bands,
                   wavelength_range=wave, pixel_scale=scale,
                   preprocessor=None if preprocessor is None else str(preprocessor.name),
                   rest_frame=bool(getattr(preprocessor, "rest_frame", kind == "cube"
                                           and preprocessor is not None)))

    def widen(self, record: Any) -> "InputContract":
        """Return the contract widened to cover another training record's wavelengths.

        Parameters
        ----------
        record : `~astro_cl.data.GalaxyRecord`

        Returns
        -------
        contract : `InputContract`
        """
        if self.kind != "cube" or record.cube is None or not self.wavelength_range:
            return self
        axis = record.cube.spectral_axis.to_value("Angstrom", equivalencies=_spectral())
        lo = min(self.wavelength_range[0], float(np.min(axis)))
        hi = max(self.wavelength_range[1], float(np.max(axis)))
        out = InputContract(**self.to_dict())
        out.wavelength_range = [lo, hi]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the contract as plain types (for a checkpoint or JSON).

        Returns
        -------
        plain : dict
        """
        out = asdict(self)
        out["spatial_shape"] = list(self.spatial_shape)
        return out

    @classmethod
    def from_dict(cls, plain: dict[str, Any]) -> "InputContract":
        """Rebuild a contract from `to_dict` output.

        Parameters
        ----------
        plain : dict

        Returns
        -------
        contract : `InputContract`
        """
        known = {k: v for k, v in dict(plain).items() if k in cls.__dataclass_fields__}
        known["spatial_shape"] = tuple(known.get("spatial_shape") or ())
        return cls(**known)

    # -- checks -----------------------------------------------------------------
    def check_record(self, record: Any, *, source: str | None = None) -> None:
        """Check that a raw record fits the contract.

        Parameters
        ----------
        record : `~astro_cl.data.GalaxyRecord`
        source : str, optional
            Where the record came from (survey name, file), for the message.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the record lacks the field the model reads, or its unit, bands,
            wavelength coverage or pixel scale are far from the training data.
        """
        import astropy.units as u

        where = f"galaxy {record.id!r}" + (f" of {source}" if source else "")
        if self.kind == "cube":
            if record.cube is None:
                msg = f"{where}: the model reads IFU cubes, but the record has no cube"
                raise ValidationError(msg)
            self._check_unit(where, record.cube.flux.unit, "cube flux")
            self._check_wavelengths(where, record)
        elif self.kind in ("images", "maps"):
            data = record.images if self.kind == "images" else record.maps
            if not data:
                msg = f"{where}: the model reads {self.kind}, but the record has none"
                raise ValidationError(msg)
            if self.kind == "images":
                self._check_unit(where, record.images.unit, "image")
                if self.bands and list(record.bands) != list(self.bands):
                    msg = (f"{where}: the model was trained on bands {self.bands}, "
                           f"the record has {list(record.bands)}")
                    raise ValidationError(msg)
        if self.pixel_scale and record.observing is not None \
                and record.observing.pixel_scale is not None:
            scale = float(record.observing.pixel_scale.to_value(u.arcsec / u.pix))
            ratio = scale / self.pixel_scale
            if not (1 / PIXEL_SCALE_TOLERANCE <= ratio <= PIXEL_SCALE_TOLERANCE):
                msg = (f"{where}: pixel scale {scale:.4g} arcsec/pix, but the model was trained "
                       f"at {self.pixel_scale:.4g} arcsec/pix (more than a factor "
                       f"{PIXEL_SCALE_TOLERANCE:g} apart); resample the data first")
                raise ValidationError(msg)

    def _check_unit(self, where: str, unit: Any, what: str) -> None:
        import astropy.units as u

        if not self.unit:
            return
        got = u.dimensionless_unscaled if unit is None else unit
        if _unit_string(got) == self.unit:
            return  # also for units astropy cannot parse by name (a plugin's u.def_unit)
        try:
            expected = u.Unit(self.unit)
        except ValueError:
            msg = (f"{where}: {what} unit {_unit_string(got) or 'dimensionless'!r} differs from "
                   f"the training unit {self.unit!r}, which astropy does not know by that name "
                   "(enable it with astropy.units.add_enabled_units)")
            raise ValidationError(msg) from None
        try:
            got.to(expected, equivalencies=u.spectral_density(1 * u.AA))
        except u.UnitConversionError:
            msg = (f"{where}: {what} unit {_unit_string(got) or 'dimensionless'!r} cannot be "
                   f"converted to the training unit {self.unit!r}")
            raise ValidationError(msg) from None

    def _check_wavelengths(self, where: str, record: Any) -> None:
        if not self.wavelength_range:
            return
        axis = record.cube.spectral_axis.to_value("Angstrom", equivalencies=_spectral())
        lo, hi = float(np.min(axis)), float(np.max(axis))
        t_lo, t_hi = self.wavelength_range
        overlap = max(0.0, min(hi, t_hi) - max(lo, t_lo))
        if overlap < 0.5 * (t_hi - t_lo):
            msg = (f"{where}: the cube covers {lo:.0f}-{hi:.0f} Angstrom, but the model was "
                   f"trained on cubes covering {t_lo:.0f}-{t_hi:.0f} Angstrom (less than half "
                   "of that range overlaps)")
            raise ValidationError(msg)

    def check_input(self, shape: tuple[int, ...], *, source: str | None = None) -> None:
        """Check the shape of preprocessed network input.

        Parameters
        ----------
        shape : tuple of int
            ``(N, C, H, W)`` or ``(C, H, W)``.
        source : str, optional
            Where the data came from, for the message.

        Raises
        ------
        astro_cl.exceptions.ValidationError
            If the channel count differs from the training one.
        """
        channels = int(shape[-3])
        if channels != self.in_channels:
            where = f"{source}: " if source else ""
            pre = (f" after the {self.preprocessor!r} preprocessing" if self.preprocessor
                   else "")
            msg = (f"{where}the model expects {self.in_channels} input channels{pre}, "
                   f"the data have {channels}")
            raise ValidationError(msg)

    def describe(self) -> list[str]:
        """Return a few human-readable lines (for the model card).

        Returns
        -------
        lines : list of str
        """
        lines = [f"- data kind: {self.kind}",
                 f"- network input: {self.in_channels} channels"
                 + (f" x {self.spatial_shape[0]} x {self.spatial_shape[1]} px"
                    if len(self.spatial_shape) == 2 else "")]
        if self.preprocessor:
            lines.append(f"- preprocessing: {self.preprocessor}"
                         + (" (spectra moved to the rest frame)" if self.rest_frame else ""))
        if self.unit:
            lines.append(f"- flux unit: {self.unit}")
        if self.bands:
            lines.append(f"- bands: {', '.join(self.bands)}")
        if self.wavelength_range:
            lines.append(f"- wavelength coverage of the training cubes: "
                         f"{self.wavelength_range[0]:.0f}-{self.wavelength_range[1]:.0f} Angstrom")
        if self.pixel_scale:
            lines.append(f"- pixel scale: {self.pixel_scale:.4g} arcsec/pix")
        return lines


def _spectral() -> Any:
    import astropy.units as u

    return u.spectral()
