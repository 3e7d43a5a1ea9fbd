"""Archive URL patterns and cached, checksum-verified downloads from a loopback server."""

import functools
import hashlib
import http.server
import threading

import pytest

from astro_cl.exceptions import SurveyError
from astro_cl.surveys.remote import archive_url, download, fetch


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/www on 127.0.0.1 and count requests; isolate astropy's cache."""
    root = tmp_path / "www"
    root.mkdir()
    cache = tmp_path / "xdg"
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_url_patterns():
    assert archive_url("manga", "7815-3702", "logcube") == (
        "https://data.sdss.org/sas/dr17/manga/spectro/redux/v3_1_1/7815/stack/"
        "manga-7815-3702-LOGCUBE.fits.gz")
    assert archive_url("manga", "7815-3702", "maps", daptype="HYB10-GAU-MILESHC").endswith(
        "3.1.0/HYB10-GAU-MILESHC/7815/3702/manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz")
    assert archive_url("ecalifa", "NGC4047", base_url="http://mirror/x/").endswith(
        "//mirror/x/NGC4047.V500.drscube.fits.gz")
    with pytest.raises(ValueError, match="plate"):
        archive_url("manga", "NGC4047")
    with pytest.raises(ValueError, match="no known archive"):
        archive_url("sami", "1")


def test_download_caches_and_verifies(server, tmp_path):
    base, root, hits = server
    payload = b"SIMPLE  =                    T" + b" " * 100
    (root / "NGC4047.V500.drscube.fits.gz").write_bytes(payload)
    url = archive_url("ecalifa", "NGC4047", base_url=base)
    digest = hashlib.sha256(payload).hexdigest()
    first = download(url, checksum=digest)
    assert first.read_bytes() == payload
    second = download(url, checksum=digest)
    assert second == first and len(hits) == 1  # served from the cache
    out = download(url, checksum=digest, destination=tmp_path / "cubes")
    assert out.name == "NGC4047.V500.drscube.fits.gz" and out.read_bytes() == payload


def test_checksum_mismatch_clears_cache(server):
    base, root, hits = server
    (root / "X.V500.drscube.fits.gz").write_bytes(b"corrupted")
    url = archive_url("ecalifa", "X", base_url=base)
    with pytest.raises(SurveyError, match="checksum mismatch"):
        download(url, checksum="0" * 64)
    (root / "X.V500.drscube.fits.gz").write_bytes(b"good")
    good = hashlib.sha256(b"good").hexdigest()
    assert download(url, checksum=good).read_bytes() == b"good"
    assert len(hits) == 2  # the bad copy was not reused


def test_missing_file_is_survey_error(server):
    base, _, _ = server
    with pytest.raises(SurveyError, match="download failed"):
        download(f"{base}/nope.fits", cache=False)


def test_fetch_manga_into_reader_layout(server, tmp_path, shared_data):
    base, root, _ = server
    real = shared_data / "manga" / "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"
    target = root / "HYB10-GAU-MILESHC" / "7815" / "3702"
    target.mkdir(parents=True)
    (target / real.name).write_bytes(real.read_bytes())
    digest = hashlib.sha256(real.read_bytes()).hexdigest()
    paths = fetch("manga", ["7815-3702"], tmp_path / "manga", kinds=["maps"], base_url=base,
                  daptype="HYB10-GAU-MILESHC", checksums={real.name: digest}, progress=False)
    assert [p.name for p in paths] == [real.name]
    from astro_cl.surveys.manga import MaNGASurvey

    survey = MaNGASurvey(path=tmp_path / "manga", extensions=["STELLAR_VEL"]).open()
    assert survey.ids == ["7815-3702"]
    assert survey[0].maps["stellar_vel"].data.shape == (42, 42)
