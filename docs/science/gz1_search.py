"""Search the real Galaxy Zoo 1 images with the commands a user types.

The shipped configuration ``examples/configs/gz1_simclr.toml`` goes through
``astro-cl train``, ``astro-cl embed`` (the trunk's features of the trained
encoder, ``--readout features``) and ``astro-cl similar`` (one query galaxy of
each Galaxy Zoo 1 class, seeded), exactly as on the command line; then every
labelled galaxy is used as a query once to measure how often its nearest
neighbours share its class (precision at k, the galaxy itself left out),
against the chance of drawing that class from the rest of the sample.

Run from the repository root with the shared data beside it::

    python docs/science/gz1_search.py

It writes ``gz1_similar.png`` (the queries and their neighbours),
``gz1_search.json`` and ``gz1_search.rst`` (the precision table, the
commands and their wall times) into ``docs/science/_static``; the model,
embeddings and neighbour table stay in ``--work`` (default ``runs/gz1_search``).
Credit: SDSS imaging, Galaxy Zoo 1 classifications (Lintott et al. 2008, 2011).
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["CLASS_NAMES", "SURVEY_SETTINGS", "main", "neighbour_precision", "query_ids",
           "results_rst", "run_search"]

#: Galaxy Zoo 1 classes searched and scored ("don't know", 4, stays in the search pool).
CLASS_NAMES = {0: "elliptical", 1: "clockwise spiral", 2: "anticlockwise spiral",
               3: "edge-on", 5: "merger"}

#: The image-folder settings the configuration trains with (and `embed` must repeat).
SURVEY_SETTINGS = {"crop": 96, "size": 32, "resample": "block"}

_ROOT = Path(__file__).resolve().parents[2]


def query_ids(ids, classes, *, seed=0):
    """Return one seeded random galaxy of each class of `CLASS_NAMES`, in that order.

    Parameters
    ----------
    ids : array-like of str
    classes : array-like of int
        Galaxy Zoo 1 class of each galaxy.
    seed : int, optional

    Returns
    -------
    queries : dict of int to str
        Class to galaxy id, for the classes present.
    """
    rng = np.random.default_rng(seed)
    ids, classes = np.asarray(ids).astype(str), np.asarray(classes)
    return {c: str(rng.choice(ids[classes == c])) for c in CLASS_NAMES if (classes == c).any()}


def neighbour_precision(embedding, classes, *, k=12, groups=None):
    """Return, per class, how often a galaxy's ``k`` nearest neighbours share its class.

    Parameters
    ----------
    embedding : array-like
        ``(N, D)``; compared by cosine similarity.
    classes : array-like of int
        Class of each galaxy; galaxies of classes outside ``groups`` are in
        the search pool but are not queries (and never count as matches).
    k : int, optional
    groups : dict of int to int, optional
        Merge classes before scoring (e.g. both spirals as one); default:
        `CLASS_NAMES` as they are.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``class``, ``n`` (queries), ``precision`` (mean fraction of the ``k``
        neighbours of the same class), ``chance`` (that class's share of
        the other galaxies), ``lift`` (precision / chance).
    """
    from astropy.table import QTable
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(embedding, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    groups = groups or {c: c for c in CLASS_NAMES}
    label = np.array([groups.get(int(c), -1) for c in np.asarray(classes)])
    _, idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x)
    same = label[idx[:, 1:]] == label[:, None]     # column 0 is the galaxy itself
    rows = []
    for g in sorted(set(groups.values())):
        q = label == g
        n = int(q.sum())
        if n == 0:
            continue
        chance = (n - 1) / (len(label) - 1)
        precision = float(same[q].mean())
        rows.append((g, n, precision, chance, precision / chance))
    table = QTable(rows=rows, names=("class", "n", "precision", "chance", "lift"))
    table.meta["k"] = int(k)
    return table


def _cli(args, log, names):
    """Run one ``astro-cl`` command in-process; record it and its wall time.

    ``names`` maps this machine's paths to the short names the record shows
    (the data folder as ``gz1``, the work folder as ``runs/gz1_search``).
    """
    from astro_cl.cli import main as astro_cl

    t0 = time.perf_counter()
    status = astro_cl([str(a) for a in args])
    seconds = time.perf_counter() - t0
    if status != 0:
        msg = f"astro-cl {' '.join(map(str, args))} exited with {status}"
        raise RuntimeError(msg)
    command = "astro-cl " + " ".join(map(str, args))
    for path, name in names.items():
        command = command.replace(path, name)
    log.append({"command": command, "seconds": seconds})


def run_search(data_dir, work, *, epochs=60, k=12, seed=0, progress=True):
    """Train, embed and search the GZ1 folder through the CLI; score the neighbours.

    Parameters
    ----------
    data_dir : str or `~pathlib.Path`
        A folder of cutouts with ``labels.csv`` (the shared data's ``gz1``).
    work : str or `~pathlib.Path`
        Where the model, embeddings and neighbour table go.
    epochs : int, optional
        SimCLR epochs (the configuration's 60 by default).
    k : int, optional
        Neighbours per query.
    seed : int, optional
        Seed of the query choice.
    progress : bool, optional

    Returns
    -------
    result : dict
        ``commands`` (command as typed, with the data folder shown as ``gz1``
        and ``work`` as ``runs/gz1_search``; seconds), ``queries``,
        ``precision_5``, ``precision_3`` (lists of rows), ``figure`` (path of
        the grid), ``work``.
    """
    from astro_cl.studies import read_table
    from astro_cl.surveys.image_folder import ImageFolderSurvey

    data_dir, work = Path(data_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    config = _ROOT / "examples" / "configs" / "gz1_simclr.toml"
    settings = [x for key, value in SURVEY_SETTINGS.items() for x in ("--set", f"{key}={value}")]
    log = []
    names = {str(config): "examples/configs/gz1_simclr.toml", str(work): "runs/gz1_search",
             str(data_dir): "gz1"}
    model = work / "model.pt"
    _cli(["train", config, "--set", f'survey.path="{data_dir}"',
          "--set", f"training.epochs={int(epochs)}",
          "--set", f'training.checkpoint_dir="{work}"', "--set", f'training.output="{model}"',
          "--set", f"training.progress={'true' if progress else 'false'}"], log, names)
    _cli(["embed", model, "image-folder", data_dir, *settings, "--readout", "features",
          "--out", work / "emb"], log, names)
    cat = ImageFolderSurvey(path=data_dir).catalogue
    ids, classes = np.asarray(cat["id"]).astype(str), np.asarray(cat["class"]).astype(int)
    queries = query_ids(ids, classes, seed=seed)
    # thumbnails at the crop's native resolution: the search ran on 32 px, people look at 96
    _cli(["similar", work / "emb.ecsv", "image-folder", data_dir, "--set",
          f"crop={SURVEY_SETTINGS['crop']}",
          *[x for q in queries.values() for x in ("--query", q)], "--k", k,
          "--out", work / "similar"], log, names)
    emb = read_table(work / "emb.ecsv")
    order = {g: i for i, g in enumerate(np.asarray(emb["id"]).astype(str))}
    x = np.asarray(emb["embedding"])[[order[g] for g in ids]]
    five = neighbour_precision(x, classes, k=k)
    three = neighbour_precision(x, classes, k=k, groups={0: 0, 1: 1, 2: 1, 3: 3})
    return {"commands": log, "queries": {CLASS_NAMES[c]: q for c, q in queries.items()},
            "precision_5": _rows(five), "precision_3": _rows(three), "k": int(k),
            "n_galaxies": len(ids), "epochs": int(epochs),
            "figure": str(work / "similar" / "similar.png"), "work": str(work)}


def _rows(table):
    """Table rows as plain dicts (for JSON)."""
    return [{c: (v.item() if hasattr(v, "item") else v) for c, v in zip(
        table.colnames, row, strict=True)} for row in table]


def results_rst(result):
    """Return the docs-page table of a `run_search` result (reStructuredText).

    Parameters
    ----------
    result : dict

    Returns
    -------
    text : str
    """
    lines = [f"Precision at k = {result['k']} ({result['n_galaxies']} galaxies, every labelled "
             "galaxy a query once, itself left out):", "",
             "=====================  =====  =========  ======  ======",
             "class                  n      precision  chance  lift",
             "=====================  =====  =========  ======  ======"]
    three = {r["class"]: r for r in result["precision_3"]}
    for r in result["precision_5"]:
        lines.append(f"{CLASS_NAMES[r['class']]:<21s}  {r['n']:<5d}  {r['precision']:<9.3f}  "
                     f"{r['chance']:<6.3f}  {r['lift']:.2f}")
    spiral = three.get(1)
    if spiral is not None:
        lines.append(f"{'spiral (either sense)':<21s}  {spiral['n']:<5d}  "
                     f"{spiral['precision']:<9.3f}  {spiral['chance']:<6.3f}  "
                     f"{spiral['lift']:.2f}")
    lines += ["=====================  =====  =========  ======  ======", "",
              "Commands (wall time on the machine of the run):", ""]
    lines += [f"* ``{c['command']}``: {c['seconds']:.0f} s" for c in result["commands"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Run the search from the command line and write its outputs.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    status : int
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(_ROOT.parent / "shared" / "data" / "gz1"),
                        help="folder of GZ1 cutouts with labels.csv")
    parser.add_argument("--work", default="runs/gz1_search")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "_static"))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run_search(args.data, args.work, epochs=args.epochs, k=args.k, seed=args.seed,
                        progress=not args.quiet)
    from astro_cl.utils.io import atomic_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "gz1_search.json") as tmp:
        # machine-specific paths stay out of the record
        tmp.write_text(json.dumps({k: v for k, v in result.items() if k not in ("figure", "work")},
                                  indent=1))
    with atomic_path(out / "gz1_search.rst") as tmp:
        tmp.write_text(results_rst(result))
    with atomic_path(out / "gz1_similar.png") as tmp:
        shutil.copyfile(result["figure"], tmp)
    print(results_rst(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
