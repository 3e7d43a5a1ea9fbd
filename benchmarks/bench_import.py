"""Start-up costs in fresh interpreters: ``import astro_cl``, ``astro-cl --help`` and ``plugins``.

Targets: ``import astro_cl`` imports neither torch nor astropy; ``astro-cl
--help`` and ``astro-cl plugins`` take under 0.5 s (whole process, interpreter
start-up included) on an idle machine. Each command runs in its own fresh
interpreter, the commands interleaved so that a slow spell of a shared machine
hits them alike; the script prints wall and CPU time (the CPU time of the
child processes, which load from other jobs inflates much less than the wall
time) with the load average, and the slowest imports of each command
(``python -X importtime``).

Usage::

    python benchmarks/bench_import.py [--repeats 7]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

# which heavy modules the command imported, printed even when argparse exits
CHECK = ("import sys\ntry:\n    {code}\nfinally:\n"
         "    print(sorted({{'astropy', 'torch'}} & set(sys.modules)), file=sys.stderr)")

COMMANDS = {
    "import astro_cl": "import astro_cl",
    "astro-cl --help": "from astro_cl.cli import main; sys.argv = ['astro-cl', '--help']; main()",
    "astro-cl plugins": "from astro_cl.cli import main; main(['plugins'])",
}


def _run(code, *, importtime=False):
    """Run ``code`` in a fresh interpreter; return (wall s, CPU s, stderr)."""
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise RuntimeError(f"{code!r} exited with {out.returncode}: {out.stderr[-2000:]}")
    return wall, cpu, out.stderr


def _slowest_imports(stderr, n=5):
    """Outermost imports by cumulative time (us), from ``-X importtime`` output."""
    top = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if len(name) - len(name.lstrip()) == 1:  # nested imports are indented further
            top.append((int(cumulative), name.strip()))
    return sorted(top, reverse=True)[:n]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    times = {label: [] for label in COMMANDS}
    heavy = {}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for label, code in COMMANDS.items():  # interleaved
            wall, cpu, err = _run(CHECK.format(code=code))
            times[label].append((wall, cpu))
            heavy[label] = err.strip().splitlines()[-1]
    load_after = os.getloadavg()
    print(f"{args.repeats} fresh interpreters per command, interleaved; load average "
          f"{', '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{', '.join(f'{x:.2f}' for x in load_after)} after")
    for label, pairs in times.items():
        walls, cpus = [w for w, _ in pairs], [c for _, c in pairs]
        target = "" if label == "import astro_cl" else " (target < 0.5 s idle)"
        print(f"{label:18s}: wall median {statistics.median(walls) * 1e3:6.0f} ms "
              f"(min {min(walls) * 1e3:5.0f}), CPU median {statistics.median(cpus) * 1e3:6.0f} ms"
              f"{target}; heavy modules imported: {heavy[label]}")
    for label, code in COMMANDS.items():
        _, _, err = _run(CHECK.format(code=code), importtime=True)
        top = ", ".join(f"{name} {us / 1e3:.0f} ms" for us, name in _slowest_imports(err))
        print(f"  -X importtime, {label}: {top}")
    wall_torch, cpu_torch, _ = _run("import torch")
    wall_astropy, cpu_astropy, _ = _run("import astropy.table")
    print(f"for comparison: import torch {wall_torch * 1e3:.0f} ms wall / {cpu_torch * 1e3:.0f} ms "
          f"CPU; import astropy.table {wall_astropy * 1e3:.0f} ms wall / "
          f"{cpu_astropy * 1e3:.0f} ms CPU")


if __name__ == "__main__":
    main()
