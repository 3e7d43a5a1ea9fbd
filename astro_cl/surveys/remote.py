"""Download survey files from the public archives, cached and checksum-verified.

Files are fetched with `astropy.utils.data.download_file` into astropy's
cache for the package ``astro_cl`` (``$XDG_CACHE_HOME/astro_cl`` when that
directory exists, else ``~/.astro_cl/cache``), so a file is downloaded once.
When a checksum is known it is verified after every download and cache
hit; a mismatch removes the cached copy and raises `~astro_cl.exceptions.SurveyError`.

URL patterns
------------
* MaNGA DR17 (SDSS Science Archive Server): DRP ``LOGCUBE`` and DAP ``MAPS``
  files by plate and IFU design.
* eCALIFA (CALIFA v2.3 reduction, V500 setup): ``<name>.V500.drscube.fits.gz``.
  The base URL of the eCALIFA release has changed between hosts over time;
  pass ``base_url=`` if the default does not answer.
"""

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from astro_cl.exceptions import SurveyError
from astro_cl.utils.io import atomic_path, file_checksum

__all__ = [
    "ARCHIVES",
    "archive_url",
    "download",
    "fetch",
]

#: survey -> file kind -> (default base URL, path pattern). Fields in braces are
#: filled from the galaxy id (``name`` for eCALIFA, ``plate``/``ifudesign`` for MaNGA).
ARCHIVES = {
    "ecalifa": {
        "cube": ("https://ifs.astroscu.unam.mx/CALIFA/V500/v2.3/reduced",
                 "{name}.V500.drscube.fits.gz"),
    },
    "manga": {
        "logcube": ("https://data.sdss.org/sas/dr17/manga/spectro/redux/v3_1_1",
                    "{plate}/stack/manga-{plate}-{ifudesign}-LOGCUBE.fits.gz"),
        "maps": ("https://data.sdss.org/sas/dr17/manga/spectro/analysis/v3_1_1/3.1.0",
                 "{daptype}/{plate}/{ifudesign}/manga-{plate}-{ifudesign}-MAPS-{daptype}.fits.gz"),
    },
}
_DEFAULT_DAPTYPE = "HYB10-MILESHC-MASTARSSP"


def _fields(survey, galaxy_id, daptype):
    gid = str(galaxy_id).strip()
    if survey == "manga":
        parts = gid.split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            msg = f"MaNGA id {galaxy_id!r}: expected '<plate>-<ifudesign>', e.g. '7815-3702'"
            raise ValueError(msg)
        return {"plate": int(parts[0]), "ifudesign": int(parts[1]), "daptype": daptype}
    if not gid or "/" in gid:
        msg = f"eCALIFA name {galaxy_id!r}: expected a cube name such as 'NGC4047'"
        raise ValueError(msg)
    return {"name": gid}


def archive_url(survey, galaxy_id, kind=None, *, base_url=None, daptype=_DEFAULT_DAPTYPE):
    """Return the archive URL of one galaxy's file.

    Parameters
    ----------
    survey : {"ecalifa", "manga"}
    galaxy_id : str
        eCALIFA cube name (``"NGC4047"``) or MaNGA plate-IFU (``"7815-3702"``).
    kind : str, optional
        ``"cube"`` (eCALIFA), ``"logcube"`` or ``"maps"`` (MaNGA); default the
        survey's first kind.
    base_url : str, optional
        Replace the archive's base URL (a mirror, or a local server in tests).
    daptype : str, optional
        MaNGA DAP analysis type of MAPS files.

    Returns
    -------
    url : str

    Examples
    --------
    >>> from astro_cl.surveys.remote import archive_url
    >>> archive_url("manga", "7815-3702", "maps")  # doctest: +ELLIPSIS
    'https://data.sdss.org/sas/dr17/manga/.../7815/3702/manga-7815-3702-MAPS-HYB10-...fits.gz'
    """
    if survey not in ARCHIVES:
        msg = f"survey {survey!r} has no known archive; known: {sorted(ARCHIVES)}"
        raise ValueError(msg)
    kinds = ARCHIVES[survey]
    kind = kind or next(iter(kinds))
    if kind not in kinds:
        msg = f"{survey}: unknown file kind {kind!r}; kinds are {sorted(kinds)}"
        raise ValueError(msg)
    default_base, pattern = kinds[kind]
    base = (base_url or default_base).rstrip("/")
    return f"{base}/{pattern.format(**_fields(survey, galaxy_id, daptype))}"


def download(url, *, checksum=None, algorithm="sha256", cache=True, destination=None,
             timeout=60.0, show_progress=False):
    """Download a file through astropy's cache and verify its checksum.

    Parameters
    ----------
    url : str
    checksum : str, optional
        Expected hex digest; verified on every call (fresh download or cache hit).
    algorithm : str, optional
        `hashlib` algorithm of ``checksum``.
    cache : bool or "update", optional
        Passed to `astropy.utils.data.download_file`.
    destination : str or `~pathlib.Path`, optional
        Directory to copy the file into (atomically, under the URL's file name).
        Default: return the cached path.
    timeout : float, optional
        Seconds to wait for the server.
    show_progress : bool, optional
        Show astropy's progress bar.

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    astro_cl.exceptions.SurveyError
        If the download fails or the checksum does not match.
    """
    from astropy.utils.data import clear_download_cache, download_file

    try:
        cached = Path(download_file(url, cache=cache, show_progress=show_progress,
                                    timeout=timeout, pkgname="astro_cl"))
    except (OSError, ValueError) as exc:  # urllib's URLError/HTTPError are OSErrors
        # an HTTPError holds the open connection; the chained exception outlives
        # this call, so close it now rather than leave the socket to the GC
        close = getattr(exc, "close", None)
        if callable(close):
            close()
        msg = f"{url}: download failed ({type(exc).__name__}: {exc})"
        raise SurveyError(msg) from exc
    if checksum is not None:
        got = file_checksum(cached, algorithm)
        if got.lower() != str(checksum).lower():
            if cache:
                clear_download_cache(url, pkgname="astro_cl")
            msg = (f"{url}: {algorithm} checksum mismatch (expected {checksum}, got {got}); "
                   "the cached copy was removed")
            raise SurveyError(msg)
    if destination is None:
        return cached
    name = Path(urlsplit(url).path).name
    if not name:
        msg = f"{url}: cannot derive a file name from the URL"
        raise SurveyError(msg)
    target = Path(destination) / name
    with atomic_path(target) as tmp:
        shutil.copyfile(cached, tmp)
    return target


def fetch(survey, ids, destination, *, kinds=None, base_url=None, checksums=None,
          daptype=_DEFAULT_DAPTYPE, progress=True, timeout=60.0):
    """Download galaxies' files into a directory that the survey reader opens.

    Parameters
    ----------
    survey : {"ecalifa", "manga"}
    ids : sequence of str
        Galaxy ids (eCALIFA names or MaNGA plate-IFUs).
    destination : str or `~pathlib.Path`
        Directory for the files (created if needed).
    kinds : sequence of str, optional
        File kinds (default: all of the survey's kinds).
    base_url : str, optional
        Mirror replacing every kind's base URL.
    checksums : mapping of str to str, optional
        File name -> expected sha256 digest.
    daptype : str, optional
        MaNGA DAP analysis type.
    progress : bool, optional
        Show a progress bar.
    timeout : float, optional
        Seconds to wait for the server, per file.

    Returns
    -------
    paths : list of `~pathlib.Path`
    """
    from tqdm.auto import tqdm

    kinds = list(kinds or ARCHIVES.get(survey, {}))
    checksums = dict(checksums or {})
    urls = [archive_url(survey, gid, kind, base_url=base_url, daptype=daptype)
            for gid in ids for kind in kinds]
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    paths = []
    for url in tqdm(urls, desc=f"download {survey}", unit="file", disable=not progress):
        name = Path(urlsplit(url).path).name
        paths.append(download(url, checksum=checksums.get(name), destination=destination,
                              timeout=timeout))
    return paths
