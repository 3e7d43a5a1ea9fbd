"""``astro-cl info SURVEY [PATH]``: what a survey holds, to check files before training.

Prints the number of galaxies, the catalogue columns with their units, and one
record's contents: array shapes, units, WCS axes, masked fraction and
uncertainty type of its cube, images and maps, and its observing metadata.
"""

HELP = "Describe a survey: galaxies, catalogue columns with units, and one record's contents."

__all__ = ["HELP", "add_arguments", "describe_record", "describe_survey", "run"]


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.cli._options import add_survey_arguments

    add_survey_arguments(parser)
    # the spelling of earlier releases, kept as an alias of --set
    parser.add_argument("-o", "--option", dest="settings", action="append",
                        help="alias of --set")
    parser.add_argument("--record", default=None,
                        help="galaxy id (or row number) to describe (default: the first)")
    parser.add_argument("--max-maps", type=int, default=25,
                        help="list at most this many maps (default 25)")


def _fraction(mask, shape):
    import numpy as np

    if mask is None:
        return 0.0
    return float(np.mean(np.broadcast_to(np.asarray(mask, bool), shape)))


def _unc_name(unc):
    return "none" if unc is None else type(unc).__name__


def _wcs_axes(wcs):
    if wcs is None:
        return "none"
    try:
        types = [t or "?" for t in wcs.world_axis_physical_types]
    except Exception:  # any WCS-like object: describe it, never fail
        return type(wcs).__name__
    return ", ".join(types)


def describe_record(record, *, max_maps=25):
    """Return lines describing one record.

    Parameters
    ----------
    record : `~astro_cl.data.GalaxyRecord`
    max_maps : int, optional

    Returns
    -------
    lines : list of str
    """
    import numpy as np

    lines = [f"record {record.id!r} (survey {record.survey})"]
    cube = record.cube
    if cube is not None:
        shape = tuple(cube.flux.shape)
        wave = cube.spectral_axis
        lines.append(f"  cube: shape {shape} (spectral axis {cube.spectral_axis_index}), "
                     f"unit {cube.flux.unit}")
        lines.append(f"    spectral axis: {wave.min():.6g} .. {wave.max():.6g} "
                     f"({len(wave)} channels)")
        lines.append(f"    WCS axes: {_wcs_axes(cube.wcs)}")
        lines.append(f"    masked fraction: {_fraction(cube.mask, shape):.3f}; "
                     f"uncertainty: {_unc_name(cube.uncertainty)}")
    if record.images is not None:
        img = record.images
        shape = np.shape(img.data)
        lines.append(f"  images: shape {shape}, bands {record.bands}, unit {img.unit}")
        lines.append(f"    WCS axes: {_wcs_axes(img.wcs)}")
        lines.append(f"    masked fraction: {_fraction(img.mask, shape):.3f}; "
                     f"uncertainty: {_unc_name(img.uncertainty)}")
    if record.maps:
        lines.append(f"  maps: {len(record.maps)}")
        for name, nd in list(record.maps.items())[:max_maps]:
            shape = np.shape(nd.data)
            lines.append(f"    {name}: shape {shape}, unit {nd.unit}, masked "
                         f"{_fraction(nd.mask, shape):.3f}, uncertainty {_unc_name(nd.uncertainty)}"
                         f", WCS {_wcs_axes(nd.wcs)}")
        if len(record.maps) > max_maps:
            lines.append(f"    ... and {len(record.maps) - max_maps} more")
    if record.star_mask is not None:
        lines.append(f"  star mask: {record.star_mask.shape}, "
                     f"{record.star_mask.mean():.3f} of the pixels")
    obs = record.observing
    fields = {k: getattr(obs, k) for k in ("pixel_scale", "psf_fwhm", "redshift",
                                          "wavelength_range", "bands", "instrument")}
    text = ", ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    lines.append(f"  observing: {text or 'nothing known'}")
    return lines


def describe_survey(survey, *, record=None, max_maps=25):
    """Return lines describing a survey and one of its records.

    Parameters
    ----------
    survey : `~astro_cl.surveys.Survey`
    record : str or int, optional
        Galaxy id or row (default: row 0).
    max_maps : int, optional

    Returns
    -------
    lines : list of str
    """
    cat = survey.catalogue
    lines = [f"survey {survey.name!r} ({type(survey).__name__}): {len(survey)} galaxies",
             f"catalogue: {len(cat.colnames)} columns"]
    width = max(len(c) for c in cat.colnames)
    for name in cat.colnames:
        col = cat[name]
        unit = getattr(col, "unit", None)
        dtype = getattr(col, "dtype", "?")
        lines.append(f"  {name:<{width}}  {dtype!s:<8}  {unit if unit is not None else ''}"
                     .rstrip())
    if len(survey):
        key = 0 if record is None else (int(record) if str(record).isdigit()
                                        and str(record) not in survey else record)
        lines.extend(describe_record(survey[key], max_maps=max_maps))
    return lines


def run(args):
    """Describe the survey.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from astro_cl.cli._options import survey_from_args

    survey = survey_from_args(args)
    print("\n".join(describe_survey(survey, record=args.record, max_maps=args.max_maps)))
    return 0
