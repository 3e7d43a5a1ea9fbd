"""``astro-cl similar EMBEDDINGS SURVEY [PATH] --query ID``: galaxies most like a query."""

__all__ = ["HELP", "add_arguments", "run"]

HELP = ("Find the galaxies most similar to query galaxies in an embedding table; write the "
        "neighbour table and a thumbnail grid.")


def add_arguments(parser):
    """Add this command's options.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
    """
    from astro_cl.cli._options import add_survey_arguments

    parser.add_argument("embeddings", metavar="EMBEDDINGS",
                        help="embedding table written by `astro-cl embed` (ECSV or FITS)")
    add_survey_arguments(parser)
    parser.add_argument("--query", "-q", action="append", required=True, metavar="ID",
                        help="id of a query galaxy (repeatable)")
    parser.add_argument("--k", type=int, default=12, help="neighbours per query (default 12)")
    parser.add_argument("--out", required=True,
                        help="output folder: similar.ecsv (query, rank, id, similarity) and "
                             "similar.png (thumbnails)")


def run(args):
    """Search and write the table and the figure.

    Parameters
    ----------
    args : `argparse.Namespace`

    Returns
    -------
    status : int
    """
    from pathlib import Path

    from astro_cl.cli._options import survey_from_args
    from astro_cl.exceptions import ValidationError
    from astro_cl.report.figures import plot_similarity_grid
    from astro_cl.report.html import figure_png
    from astro_cl.studies import read_table
    from astro_cl.tasks.similarity import SimilaritySearch
    from astro_cl.utils.io import atomic_path, atomic_write

    if args.k < 1:
        msg = f"--k: expected a positive number of neighbours, got {args.k}"
        raise ValidationError(msg)
    table = read_table(args.embeddings)
    if "id" not in table.colnames or "embedding" not in table.colnames:
        msg = (f"{args.embeddings}: expected an embedding table with 'id' and 'embedding' "
               f"columns, got {table.colnames}")
        raise ValidationError(msg)
    known = set(map(str, table["id"]))
    missing = [q for q in args.query if q not in known]
    if missing:
        msg = f"{args.embeddings}: no embedding for query ids {missing}"
        raise ValidationError(msg)
    search = SimilaritySearch(n_neighbors=args.k).fit(table)
    neighbours = search.query(ids=list(args.query), k=args.k)
    survey = survey_from_args(args)
    wanted = set(args.query) | set(map(str, neighbours["id"]))
    images = {gid: survey[gid].images for gid in sorted(wanted) if survey[gid].images is not None}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "similar.ecsv") as tmp:
        neighbours.write(tmp, format="ascii.ecsv", overwrite=True)
    fig = plot_similarity_grid(list(args.query), neighbours, images, n_neighbors=args.k)
    with atomic_write(out / "similar.png", "wb") as fh:
        fh.write(figure_png(fig))
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"wrote {len(neighbours)} neighbours of {len(args.query)} queries to "
          f"{out / 'similar.ecsv'} and {out / 'similar.png'}")
    return 0
