"""Fuzz campaign: seeded corruptions of one small input per survey reader.

Every case corrupts one file of a reader's input (byte flips, truncations,
zeroed blocks, header-card edits, ``.npy`` header edits, HDF5 structure edits,
CSV/ECSV row damage), reads the survey under a per-case deadline and counts
the outcome: ``valid`` record, clean ``error`` naming the corrupted file,
``misattributed`` error, ``partial`` record from a truncated file, ``foreign``
exception, ``hang``, ``crash`` of the worker process that runs the cases. The
goal is zero in the last five columns. The harness
lives in ``tests/fuzz/harness.py`` (the tests run a few hundred of the same
cases by default, thousands with ``-m slow``).

Targets that need the real files in ``../shared/data`` (or ``$ASTRO_CL_TEST_DATA``)
are skipped, with a note, when those are absent.

Usage::

    python benchmarks/fuzz_readers.py [--cases 2400] [--seed 0] [--timeout 20]
        [--targets sdss/cutout manga/maps ...] [--show 20] [--json out.json]

``--cases`` is the campaign total, shared out over the targets in proportion to
their default-run counts (at least 20 each).
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_harness():
    """Import ``tests/fuzz/harness.py`` (the tests directory is not a package)."""
    spec = importlib.util.spec_from_file_location("astro_cl_fuzz_harness",
                                                  ROOT / "tests" / "fuzz" / "harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def share_out(selected, total):
    """Split ``total`` cases over targets in proportion to their default counts."""
    weights = {t.name: max(t.default_cases, 6) for t in selected}
    scale = total / sum(weights.values())
    cases = {name: max(20, round(w * scale)) for name, w in weights.items()}
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2400, help="campaign total")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-case", type=int, default=1000,
                        help="first case number (the default test run uses 0 up)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--show", type=int, default=20, help="failures to list")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--in-process", action="store_true",
                        help="run cases in this process (faster; a crash ends the campaign)")
    args = parser.parse_args(argv)

    harness = load_harness()
    shared = Path(os.environ.get("ASTRO_CL_TEST_DATA", ROOT.parent / "shared" / "data"))
    selected = [t for t in harness.targets() if not args.targets or t.name in args.targets]
    skipped = [t.name for t in selected if t.shared and not shared.is_dir()]
    if skipped:
        print(f"skipping {skipped}: real test data not found at {shared}")
    selected = [t for t in selected if t.name not in skipped]
    cases = share_out(selected, args.cases)
    done = []

    def progress(outcome):
        done.append(outcome)
        if len(done) % 200 == 0:
            print(f"  {len(done)} cases ...", flush=True)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="astro-cl-fuzz-") as workdir:
        outcomes = harness.run_campaign(selected, cases, seed=args.seed, shared=shared,
                                        workdir=workdir, timeout=args.timeout,
                                        progress=progress, first_case=args.first_case,
                                        isolate=not args.in_process)
    elapsed = time.perf_counter() - start
    print(f"\n{len(outcomes)} cases, seed {args.seed}, cases {args.first_case}+ per target, "
          f"{elapsed:.1f} s ({1000 * elapsed / max(1, len(outcomes)):.0f} ms per case)\n")
    print(harness.format_table(outcomes))
    slow = sorted(outcomes, key=lambda o: -o.seconds)[:3]
    print("\nslowest cases: " + "; ".join(f"{o.target} #{o.case} {o.seconds:.2f} s ({o.op})"
                                         for o in slow))
    stray = sorted({w for o in outcomes for w in o.stray_warnings})
    if stray:
        n = sum(1 for o in outcomes if o.stray_warnings)
        print(f"valid records that came with non-astro_cl warnings: {n} ({', '.join(stray)})")
    bad = harness.failures(outcomes)
    for o in bad[: args.show]:
        print(f"\n[{o.kind}] {o.target} case {o.case}: {o.op}\n    {o.message}")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
