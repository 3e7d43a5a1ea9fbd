"""Tests of the end-to-end demo (`astro_cl.demo.run_demo`) and ``astro-cl demo``."""

import json

import numpy as np
import pytest
from astropy.table import QTable

from astro_cl.demo import (
    ACCEPTANCE,
    ACCEPTANCE_MEDIUM,
    SIZES,
    AcceptanceError,
    acceptance_for,
    format_summary,
    run_demo,
)
from astro_cl.exceptions import ValidationError

# At the tiny size some morphological types have too few galaxies to be scored;
# the property-correlation task says so, which is expected here.
# the same holds for the rarest environment (voids).
# Two epochs of a tiny encoder collapse the embedding: the tasks warn, and the
# tests below check that the demo reports it.
pytestmark = [pytest.mark.filterwarnings("ignore:property-correlation.*skipped"),
              pytest.mark.filterwarnings("ignore:environment. groups.*skipped"),
              pytest.mark.filterwarnings("ignore:the embedding is collapsed")]

#: The smallest pipeline that still exercises every step (seconds, not minutes).
_TINY = {"base": "tiny"}


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    """Run the tiny demo once with ``check=True``; return (out, summary, raised)."""
    out = tmp_path_factory.mktemp("demo")
    try:
        summary = run_demo(out, size=_TINY, seed=3, check=True, progress=False)
        raised = False
    except AcceptanceError as exc:
        summary, raised = exc.summary, True
    return out, summary, raised


def test_tiny_demo_writes_the_report(tiny_demo):
    out, summary, _ = tiny_demo
    index = out / "report" / "index.html"
    assert summary["report"] == str(index)
    html = index.read_text(encoding="utf-8")
    figures = sorted(p.name for p in (out / "report" / "figures").glob("*.png"))
    for stem in ("property_ranking", "PCA_projection_coloured_by_property",
                 "clusters_on_the_SFMS_plane",
                 "environment", "similarity_search", "training_curves_simclr",
                 "training_curves_unet", "maps_typical_held-out_galaxy"):
        hits = [f for f in figures if f.startswith(stem)]
        assert hits, f"no figure {stem}* among {figures}"
        assert hits[0] in html
    tables = {p.stem for p in (out / "report" / "tables").glob("*.ecsv")}
    assert {"property-correlation", "study-comparison", "sfms-clustering", "environment",
            "similarity-search", "property-regression", "map-metrics", "ablation-rankings",
            "property-correlation-no-luminosity", "acceptance", "timings"} <= tables
    # the per-stage time table: every stage, then the imports and the total
    timings = QTable.read(out / "report" / "tables" / "timings.ecsv", format="ascii.ecsv")
    assert list(timings["stage"][:-2]) == list(summary["timings"])
    assert timings["stage"][-1] == "total"
    assert timings["wall_time"][-1].value == pytest.approx(summary["wall_time"])
    assert np.all(timings["wall_time"] >= 0 * timings["wall_time"].unit)
    assert timings.meta["cpu"]
    maps = QTable.read(out / "report" / "tables" / "map-metrics.ecsv", format="ascii.ecsv")
    assert set(maps["property"]) == set(summary["map_metrics"])
    assert np.isfinite(maps["study_sigma"][list(maps["property"]).index("stellar_mass")])
    # the results folder can be rebuilt into a report by `astro-cl report`
    for name in ("run.json", "galaxies.ecsv", "history.json", "thumbnails.npz",
                 "embeddings.ecsv"):
        assert (out / "results" / name).is_file()
    emb = QTable.read(out / "results" / "embeddings.ecsv", format="ascii.ecsv")
    assert emb["embedding"].shape == (summary["n_ecalifa"], SIZES["tiny"]["simclr"]
                                      ["embedding_dim"])
    assert len(list((out / "cache").iterdir())) == 2  # PCA cubes, scaled cutouts + maps


def test_tiny_demo_summary(tiny_demo):
    out, summary, raised = tiny_demo
    assert summary["n_ecalifa"] == SIZES["tiny"]["n_ecalifa"]
    ranked = [r[0] for r in summary["ranking"]]
    assert "EW_Ha_cen" in ranked and "log_Mass" in ranked
    scores = [r[1] for r in summary["ranking"]]
    assert scores == sorted(scores, reverse=True)
    assert -1.0 <= summary["kendall_tau"] <= 1.0
    assert {"kmeans-k2", "kmeans-k3", "gmm-k2", "gmm-k3"} <= set(summary["clustering"])
    for v in summary["clustering"].values():
        assert 0.0 < v["purity"] <= 1.0
    assert set(summary["checks"]) == set(ACCEPTANCE)
    for c in summary["checks"].values():
        assert np.isfinite(c["value"])
    # check=True raised exactly when a threshold was missed
    assert raised == (not summary["passed"])
    assert summary["passed"] == all(c["passed"] for c in summary["checks"].values())
    saved = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert saved["checks"].keys() == summary["checks"].keys()
    assert saved["wall_time"] > 0
    text = format_summary(summary)
    assert "Kendall's tau" in text and "stellar_mass" in text and str(out) in text
    assert "Time per stage" in text
    for name in summary["timings"]:
        assert name in text
    assert set(summary["cpu_timings"]) == set(summary["timings"])


def test_acceptance_by_size():
    """The default size checks the first impression; medium holds the science thresholds."""
    assert acceptance_for("small") is ACCEPTANCE and acceptance_for("tiny") is ACCEPTANCE
    assert acceptance_for("medium") is ACCEPTANCE_MEDIUM
    assert acceptance_for("study") is ACCEPTANCE_MEDIUM
    assert ACCEPTANCE["sigma_stellar_mass"][0] == 0.15
    assert ACCEPTANCE["bias_stellar_mass"][:2] == (0.05, "<=")
    assert ACCEPTANCE_MEDIUM["sigma_stellar_mass"][0] == 0.10
    assert ACCEPTANCE_MEDIUM["skill_age_mw"][0] == ACCEPTANCE_MEDIUM["skill_metallicity"][0] == 0.5
    assert set(ACCEPTANCE) < set(ACCEPTANCE_MEDIUM)


def test_invalid_size(tmp_path):
    with pytest.raises(ValidationError, match="size must be one of"):
        run_demo(tmp_path, size="huge", progress=False)


def test_cli_exit_status(tiny_demo, monkeypatch, capsys):
    """``--check`` turns a missed threshold into exit status 1; the summary is printed."""
    import astro_cl.demo
    from astro_cl.cli import main

    _, summary, _ = tiny_demo
    calls = []

    def fake(out, **kwargs):
        calls.append((out, kwargs))
        if kwargs["check"]:
            raise AcceptanceError("demo acceptance failed: fake", summary)
        return summary

    monkeypatch.setattr(astro_cl.demo, "run_demo", fake)
    assert main(["demo", "--out", "somewhere", "--size", "tiny", "--seed", "5",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Report:" in printed and "checks the plumbing only" in printed
    assert calls[-1] == ("somewhere", {"size": "tiny", "seed": 5, "catalogue": None,
                                       "check": False, "progress": False})
    assert main(["demo", "--check", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "Acceptance" in captured.out and "acceptance failed" in captured.err
    with pytest.raises(SystemExit):
        main(["demo", "--size", "huge"])


def test_tiny_demo_says_it_checks_plumbing_only(tiny_demo):
    """Tiny misses the thresholds by design and says so; it does not print [FAIL]."""
    out, summary, _ = tiny_demo
    assert summary["plumbing_only"] is True
    text = format_summary(summary)
    assert "only checks the plumbing" in text and "[FAIL]" not in text
    assert "not expected at this size" in text and "--check" in text
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "only checks the plumbing" in page.split("<h2")[0]  # a note above every section
    default = dict(summary, plumbing_only=False)
    assert "[FAIL]" in format_summary(default) or summary["passed"]


def test_tiny_demo_reports_its_collapsed_embedding(tiny_demo):
    """Two epochs of a tiny SimCLR collapse the embedding; the demo says so, everywhere."""
    out, summary, _ = tiny_demo
    embedding = summary["embedding"]
    assert embedding["collapsed"] and embedding["relative_spread"] < 0.1
    assert "WARNING: the embedding is collapsed" in format_summary(summary)
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "The embedding is collapsed" in page.split("<h2")[0]
    run = json.loads((out / "results" / "run.json").read_text(encoding="utf-8"))
    assert run["results"]["embedding"]["collapsed"] is True


def test_tiny_demo_report_reads_top_down(tiny_demo):
    out, _, _ = tiny_demo
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    sections = [page.index(f"<h2 id='{s}'>") for s in ("done", "results", "figures", "tables",
                                                         "provenance")]
    assert sections == sorted(sections)
    done = page[sections[0]:sections[1]]
    for item in ("data", "preprocessing", "augmentations", "model", "training", "tasks"):
        assert f"<dt>contrastive study: {item}</dt>" in done
        assert f"<dt>maps study: {item}</dt>" in done
    results = page[sections[1]:sections[2]]
    assert results.count("\u2718 miss") + results.count("\u2714 pass") >= 5
    assert "0.090 dex" in results  # PICASSSO's stellar-mass scatter beside ours
    assert "UMAP" not in page  # the tiny size projects with PCA


@pytest.mark.slow
def test_default_demo_meets_acceptance(tmp_path):
    """The acceptance thresholds of the default size (minutes on a 2-core CPU)."""
    summary = run_demo(tmp_path, size="small", seed=0, check=False, progress=False)
    failed = {k: c["value"] for k, c in summary["checks"].items() if not c["passed"]}
    assert not failed, f"missed: {failed}\n{format_summary(summary)}"


def test_stellar_mass_bias_is_checked_in_absolute_value():
    import astropy.units as u

    from astro_cl.studies import acceptance_values, check_acceptance

    for mu, passed in ((-0.07, False), (0.07, False), (-0.03, True)):
        maps = QTable({"property": ["stellar_mass"], "sigma": [0.08] * u.dex,
                       "mu": [mu] * u.dex})
        values = acceptance_values({"map-metrics": maps})
        assert values["bias_stellar_mass"] == pytest.approx(abs(mu))
        checks = check_acceptance(values)
        assert checks["bias_stellar_mass"]["passed"] is passed
        assert checks["sigma_stellar_mass"]["passed"]


def test_timing_table_never_shows_negative_setup_time():
    """Stages are rounded to 0.01 s: their sum may exceed the total without a negative row."""
    from astro_cl.demo import _timing_table

    table = _timing_table({"wall_time": 1.0, "timings": {"a": 0.5, "b": 0.51},
                           "cpu_timings": {"a": 0.4, "b": 0.4}})
    assert list(table["stage"]) == ["a", "b", "imports and setup", "total"]
    assert table["wall_time"][2].value == 0.0
    assert table["cpu_time"][-1].value == pytest.approx(0.8)
