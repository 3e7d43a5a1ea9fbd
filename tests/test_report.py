import base64
import json

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from matplotlib.figure import Figure

from astro_cl.report import figures as F
from astro_cl.report.html import figure_png, write_report


def _data():
    rng = np.random.default_rng(0)
    n = 80
    mass = rng.uniform(9, 11.5, n)
    passive = rng.random(n) < 0.4
    sfr = 0.8 * (mass - 10) - 0.2 + rng.normal(0, 0.2, n) - 2 * passive
    cat = QTable({"id": [f"g{i}" for i in range(n)], "log_Mass": mass * u.dex(u.Msun),
                  "log_SFR_Ha": sfr * u.dex(u.Msun / u.yr),
                  "type": np.where(passive, "E1", "Sb"),
                  "environment": rng.choice(["void", "wall", "cluster"], n)})
    X = np.column_stack([mass - 10.5, sfr, rng.normal(0, 0.3, (n, 4))])
    emb = QTable({"id": cat["id"], "embedding": X.astype(np.float32)})
    return emb, cat


@pytest.fixture
def data():
    return _data()


def test_figures_are_figures(data):
    from astro_cl.tasks import EnvironmentTest, SFMSClustering, SimilaritySearch

    emb, cat = data
    xy = np.asarray(emb["embedding"])[:, :2]
    figs = [F.plot_umap(xy, cat, ["log_Mass", "type"])]
    ranking = QTable({"property": ["a", "b"], "kind": ["numeric", "categorical"],
                      "score": [0.8, 0.3], "score_err": [0.02, 0.05],
                      "spearman_max": [0.9, np.nan]})
    figs.append(F.plot_correlation_ranking(ranking))
    clus = SFMSClustering(n_init=2).fit(emb, cat)
    figs.append(F.plot_sfms_clusters(cat, clus.labels_, main_sequence=clus.main_sequence_,
                                     thresholds=clus.thresholds))
    figs.append(F.plot_confusion(clus.confusion_["gmm-k3"], title="gmm"))
    figs.append(F.plot_confusion(np.array([[3, 1], [0, 4]])))
    env = EnvironmentTest(tests=("energy",), n_permutations=19).fit(emb, cat)
    figs.append(F.plot_environment(xy, cat["environment"], results=env.evaluate()))
    nb = SimilaritySearch(n_neighbors=3).fit(emb).query(ids=["g0", "g1"])
    rng = np.random.default_rng(0)
    images = {f"g{i}": rng.random((5, 16, 16)) for i in range(80)}
    images["g1"] = rng.random((16, 16, 3))
    figs.append(F.plot_similarity_grid(["g0", "g1"], nb, images))
    true = {"stellar_mass": np.full((8, 8), 1e7) * u.Msun, "metallicity": np.zeros((8, 8))}
    pred = {"stellar_mass": np.full((8, 8), 2e7), "metallicity": np.full((8, 8), 0.1)}
    figs.append(F.plot_map_panels(true, pred))
    figs.append(F.plot_training_curves({"loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2],
                                        "lr": [1e-3, 1e-3, 5e-4]}))
    figs.append(F.plot_training_curves([{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]))
    for fig in figs:
        assert isinstance(fig, Figure)
        assert fig.axes


def test_map_panels_do_not_log_maps_already_in_dex():
    from astropy.nddata import NDData

    mass = np.full((8, 8), 1e8)
    metal = np.full((8, 8), 0.02)  # log Z/Zsun, positive like a solar-metallicity disc
    true = {"stellar_mass": NDData(mass, unit=u.Msun / u.kpc**2),
            "metallicity": NDData(metal, unit=u.dex)}
    pred = {"stellar_mass": NDData(mass / 10, unit=u.Msun / u.kpc**2),
            "metallicity": NDData(metal - 0.01, unit=u.dex)}
    fig = F.plot_map_panels(true, pred)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    # rows: (true, predicted, residual) for each map
    np.testing.assert_allclose(shown[0], 8.0)       # log10 of the mass map
    np.testing.assert_allclose(shown[2], 1.0)       # residual log10(true / pred)
    np.testing.assert_allclose(shown[3], 0.02)      # metallicity as it is, in dex
    np.testing.assert_allclose(shown[5], 0.01)      # residual true - pred, dex
    labels = [ax.get_ylabel() for ax in fig.axes if not ax.images]
    assert "dex" in labels and not any("log10 [dex]" in lab for lab in labels)


def test_umap_panel_of_many_hubble_types_is_coloured_by_t_type():
    types = ["E0", "E3", "S0", "Sa", "Sab", "Sb", "Sbc", "Sc", "Scd", "Sd", "Sdm", "E5",
             "E1", "I", "--"]
    cat = QTable({"type": types * 4})
    xy = np.random.default_rng(0).normal(size=(len(cat), 2))
    fig = F.plot_umap(xy, cat, ["type"])
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "T-type"]
    assert len(bars) == 1
    few = F.plot_umap(xy[:8], QTable({"type": ["E0", "Sa", "Sb", "Sc"] * 2}), ["type"])
    assert few.axes[0].get_legend() is not None   # few classes: a legend instead


def test_write_report(tmp_path):
    fig = F.plot_training_curves({"loss": [2.0, 1.0]})
    table = QTable({"property": ["x"], "sigma": [0.1] * u.dex})
    table.meta["description"] = "a <test> table"
    index = write_report(tmp_path / "rep", figures={"training curves": fig},
                         tables={"map metrics": table}, config={"seed": 0},
                         provenance={"input": "cat.ecsv"}, title="Test & report")
    assert index.name == "index.html"
    text = index.read_text()
    assert "Test &amp; report" in text and "a &lt;test&gt; table" in text
    assert "data:image/png;base64," in text and "cat.ecsv" in text
    png = tmp_path / "rep" / "figures" / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = QTable.read(tmp_path / "rep" / "tables" / "map_metrics.ecsv")
    assert back["sigma"].unit == u.dex
    assert json.loads((tmp_path / "rep" / "config.json").read_text()) == {"seed": 0}
    assert not list((tmp_path / "rep").rglob("*.tmp"))


def test_write_report_takes_rendered_figures(tmp_path):
    fig = F.plot_training_curves({"loss": [2.0, 1.0]})
    png = figure_png(fig, dpi=50)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    index = write_report(tmp_path / "rep", figures={"curves": png})
    assert (tmp_path / "rep" / "figures" / "curves.png").read_bytes() == png
    assert base64.b64encode(png).decode("ascii") in index.read_text()


def test_cli_evaluate_and_report(data, tmp_path, capsys):
    from astro_cl.cli import main

    emb, cat = data
    cat["RA"] = np.linspace(0, 300, len(cat)) * u.deg
    emb.write(tmp_path / "emb.ecsv")
    cat.write(tmp_path / "cat.ecsv")
    out = tmp_path / "results"
    status = main(["evaluate", str(tmp_path / "emb.ecsv"), "--catalogue", str(tmp_path / "cat.ecsv"),
                   "--out", str(out), "--no-progress",
                   "--set", "property-correlation.projection=pca",   # a bare string
                   "--set", "property-correlation.n_bootstrap=5",
                   "--set", "property-regression.n_bootstrap=5",
                   "--set", 'environment.tests=["energy", "classifier"]',
                   "--set", "environment.n_permutations_classifier=3",
                   "--set", "environment.cv=3"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "ranking:" in printed and "position: RA" in printed
    for name in ("property-correlation", "study-comparison", "property-regression",
                 "sfms-clustering", "environment", "similarity-search"):
        assert (out / "tables" / f"{name}.ecsv").is_file()
    galaxies = QTable.read(out / "galaxies.ecsv")
    assert {"projection_1", "sfms_class", "cluster_kmeans_k2"} <= set(galaxies.colnames)
    run_info = json.loads((out / "run.json").read_text())
    found = {name: entry["findings"] for name, entry in run_info["results"]["tasks"].items()}
    assert "main_sequence" in found["sfms-clustering"]
    assert run_info["results"]["projection"] == "PCA"
    assert run_info["results"]["left_out"]["RA"] == "position"
    assert run_info["config"]["tasks"]["environment"]["tests"] == ["energy", "classifier"]
    assert found["environment"]["n_permutations"]["classifier"] == 3
    assert run_info["results"]["tasks"]["sfms-clustering"]["tables"] == [
        "sfms-clustering", "sfms-confusion-kmeans-k2", "sfms-confusion-kmeans-k3",
        "sfms-confusion-gmm-k2", "sfms-confusion-gmm-k3"]
    assert len(run_info["provenance"]["catalogue_sha256"]) == 64
    np.savez(out / "thumbnails.npz", **{f"g{i}": np.ones((5, 8, 8)) * i for i in range(80)})
    (out / "history.json").write_text(json.dumps({"loss": [2.0, 1.5, 1.2]}))
    assert main(["report", str(out)]) == 0
    html = (out / "report" / "index.html").read_text()
    for fig in ("property_ranking", "clusters_on_the_SFMS_plane", "environment",
                "similarity_search", "training_curves_model", "PCA_projection_coloured_by_property"):
        assert (out / "report" / "figures" / f"{fig}.png").is_file(), fig
    assert "study-comparison" in html and "Provenance" in html and "UMAP" not in html
    assert main(["report", str(tmp_path)]) == 2  # not a results folder
    assert main(["evaluate", str(tmp_path / "emb.ecsv"), "--catalogue", str(tmp_path / "cat.ecsv"),
                 "--out", str(out), "--set", "n_bootstrap=5"]) == 2  # not TASK.KEY


def test_read_table_recognises_ecsv_csv(shared_data):
    from astro_cl.studies import read_table

    cat = read_table(shared_data / "ecalifa" / "ecalifa_global.csv")
    assert cat["log_Mass"].unit == u.dex(u.Msun)
    assert len(cat) == 895


def test_training_curves_put_one_quantity_with_its_unit_on_each_axis():
    history = [{"epoch": e, "lr": 1e-3, "train_loss": 3.0 - e, "val_loss": None,
                "seconds": 2.0 + 0.1 * e, "images_per_s": 100.0 + e} for e in (1, 2, 3)]
    fig = F.plot_training_curves(history, title="training of simclr")
    labels = {ax.get_ylabel(): [line.get_label() for line in ax.get_lines()] for ax in fig.axes}
    assert labels == {"loss": ["train loss"], "learning rate": ["lr"],
                      "epoch time [s]": ["seconds"], "throughput [images/s]": ["images per s"]}
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)


def test_projection_figures_name_their_projection():
    cat = QTable({"log_Mass": np.linspace(9, 11, 20) * u.dex(u.Msun),
                  "environment": ["void", "wall"] * 10})
    xy = np.random.default_rng(0).normal(size=(20, 2))
    fig = F.plot_projection(xy, cat, ["log_Mass"], projection="PCA")
    assert fig.get_suptitle().startswith("PCA projection")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("PCA 1", "PCA 2")
    colorbar = next(a for a in fig.axes if a is not ax)
    assert colorbar.get_ylabel() == "log_Mass [dex(solMass)]"
    env = F.plot_environment(xy, cat["environment"], projection="PCA")
    assert env.axes[0].get_title() == "PCA projection by environment"
    assert "UMAP" not in " ".join(a.get_title() + a.get_xlabel() for a in env.axes)


def _chromium():
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


#: Headless Chromium without any network activity of its own.
_CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync")

#: Appended to a copy of the page: counts the images the browser failed to decode.
_IMAGE_PROBE = ("<script>window.addEventListener('load', () => {"
                "const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);"
                "document.body.setAttribute('data-images', document.images.length);"
                "document.body.setAttribute('data-broken', bad.length);});</script>")


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    """The report of the tasks on the synthetic data, with thumbnails and training curves."""
    from astro_cl.studies import run_tasks

    emb, cat = _data()
    params = {"property-correlation": {"projection": "pca", "n_bootstrap": 5},
              "property-regression": {"n_bootstrap": 5},
              "environment": {"tests": ["energy"], "n_permutations": 19}}
    results = run_tasks(emb, cat, params=params, progress=False)
    results.thumbnails = {f"g{i}": np.full((5, 8, 8), float(i)) for i in range(len(cat))}
    results.history = {"simclr": [{"epoch": e, "train_loss": 3.0 / e, "lr": 1e-3,
                                   "seconds": 1.0, "images_per_s": 50.0} for e in (1, 2, 3)]}
    return results.report(tmp_path_factory.mktemp("report"), title="synthetic report")


def test_report_reads_top_down_and_is_self_contained(synthetic_report):
    """What was done, then results, figures, tables, provenance; nothing from the network."""
    import io
    import re

    from PIL import Image

    page = synthetic_report.read_text(encoding="utf-8")
    order = [page.index(f"<h2 id='{s}'>") for s in ("done", "results", "figures", "tables",
                                                      "provenance")]
    assert order == sorted(order)
    assert "<dt>tasks</dt>" in page and "PCA projection" in page and "UMAP" not in page
    assert "class='scroll'" in page
    assert not re.search(r"https?:|(src|href)=['\"]//|url\(", page)
    sources = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(sources) >= 6
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        assert image.size[0] > 100 and image.size[1] > 100


def test_report_renders_in_headless_chromium(synthetic_report, tmp_path):
    """Chromium renders the page (a non-blank screenshot) and decodes every image."""
    import re
    import subprocess

    from PIL import Image

    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary found (chromium, chromium-browser, google-chrome); "
                    "install it, e.g. `apt-get install -y chromium`, to render the report")
    index = synthetic_report
    shot = tmp_path / "page.png"
    flags = [browser, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2000",
                    index.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1280)
    assert (pixels < 200).mean() > 0.01 and pixels.std() > 10  # text and figures, not blank
    probe = tmp_path / "probe.html"
    probe.write_text(index.read_text(encoding="utf-8").replace("</body>", _IMAGE_PROBE
                                                               + "</body>"), encoding="utf-8")
    dom = subprocess.run([*flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    n_images = len(re.findall(r"<img ", index.read_text(encoding="utf-8")))
    assert f'data-images="{n_images}"' in body and 'data-broken="0"' in body


def test_map_panels_grey_out_the_border_the_network_was_not_trained_on():
    true = {"stellar_mass": np.full((12, 12), 1e8)}
    pred = {"stellar_mass": np.full((12, 12), 1e7)}
    pred["stellar_mass"][:2] = 1e12  # the untrained frame, far off
    shown = [ax.images[0].get_array() for ax in F.plot_map_panels(true, pred, border=2).axes
             if ax.images]
    assert np.ma.count_masked(shown[0]) == 0                 # the truth is drawn whole
    for panel in shown[1:]:                                  # predicted and residual
        assert np.isnan(np.ma.filled(panel, np.nan)[:2]).all()
        np.testing.assert_allclose(np.ma.filled(panel, np.nan)[2:-2, 2:-2],
                                   7.0 if panel is shown[1] else 1.0)


def test_map_metrics_figure():
    from astro_cl.tasks import MapMetrics

    yy, xx = np.mgrid[:32, :32]
    r = np.hypot(xx - 15.5, yy - 15.5)[None] * np.linspace(0.7, 1.3, 6)[:, None, None]
    truth = {"stellar_mass": 1e8 * np.exp(-r / 3) * u.Msun / u.kpc**2}
    pred = {"stellar_mass": truth["stellar_mass"] * 1.2}
    fig = F.plot_map_metrics(MapMetrics().fit(pred, truth).evaluate())
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 3


def test_thumbnail_colours_follow_the_band_names():
    """An image-folder cutout stores i, r, g (the JPEG's red, green, blue): shown as stored;
    a stack named blue to red (g, r, i) is reversed; ugriz shows i, r, g."""
    from astropy.nddata import NDData

    from astro_cl.report.figures import _rgb

    red = np.zeros((3, 4, 4))
    red[0] = 0.8  # the i band: the reddest
    shown = _rgb(NDData(red, meta={"bands": ("i", "r", "g")}))
    assert shown[..., 0].max() == pytest.approx(0.8) and shown[..., 2].max() == 0
    shown = _rgb(NDData(red[::-1].copy(), meta={"bands": ("g", "r", "i")}))
    assert shown[..., 0].max() == pytest.approx(0.8) and shown[..., 2].max() == 0
    ugriz = np.zeros((5, 4, 4))
    ugriz[3] = 0.5  # i
    assert _rgb(ugriz)[..., 0].max() == pytest.approx(0.5)
    # unnamed three-band stacks keep the old convention (blue to red)
    assert _rgb(red)[..., 2].max() == pytest.approx(0.8)
