import base64
import json

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from matplotlib.figure import Figure

from astro_cl.report import figures as F
from astro_cl.report.html import figure_png, write_report


@pytest.fixture
def data():
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
    emb.write(tmp_path / "emb.ecsv")
    cat.write(tmp_path / "cat.ecsv")
    out = tmp_path / "results"
    status = main(["evaluate", str(tmp_path / "emb.ecsv"), "--catalogue", str(tmp_path / "cat.ecsv"),
                   "--out", str(out), "--no-progress",
                   "--param", 'property-correlation.projection="pca"',
                   "--param", "property-correlation.n_bootstrap=5",
                   "--param", "property-regression.n_bootstrap=5",
                   "--param", "environment.n_permutations_classifier=3",
                   "--param", "environment.cv=3"])
    assert status == 0
    assert "ranking:" in capsys.readouterr().out
    for name in ("property-correlation", "study-comparison", "property-regression",
                 "sfms-clustering", "environment", "similarity-search"):
        assert (out / "tables" / f"{name}.ecsv").is_file()
    galaxies = QTable.read(out / "galaxies.ecsv")
    assert {"umap_1", "sfms_class", "cluster_kmeans_k2"} <= set(galaxies.colnames)
    run_info = json.loads((out / "run.json").read_text())
    assert "main_sequence" in run_info["results"]
    assert len(run_info["provenance"]["catalogue_sha256"]) == 64
    np.savez(out / "thumbnails.npz", **{f"g{i}": np.ones((5, 8, 8)) * i for i in range(80)})
    (out / "history.json").write_text(json.dumps({"loss": [2.0, 1.5, 1.2]}))
    assert main(["report", str(out)]) == 0
    html = (out / "report" / "index.html").read_text()
    for fig in ("property_ranking", "clusters_on_the_SFMS_plane", "environment",
                "similarity_search", "training_curves", "projection_by_property"):
        assert (out / "report" / "figures" / f"{fig}.png").is_file(), fig
    assert "study-comparison" in html and "provenance" in html
    assert main(["report", str(tmp_path)]) == 2  # not a results folder


def test_read_table_recognises_ecsv_csv(shared_data):
    from astro_cl.cli.evaluate import read_table

    cat = read_table(shared_data / "ecalifa" / "ecalifa_global.csv")
    assert cat["log_Mass"].unit == u.dex(u.Msun)
    assert len(cat) == 895
