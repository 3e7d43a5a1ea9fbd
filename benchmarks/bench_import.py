"""Time ``import astro_cl`` in fresh interpreters and check torch is not imported."""

import statistics
import subprocess
import sys

CODE = ("import time, sys; t = time.perf_counter(); import astro_cl; "
        "dt = time.perf_counter() - t; print(dt, 'torch' in sys.modules)")


def main(repeats=7):
    times, torch_loaded = [], set()
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                             check=True).stdout.split()
        times.append(float(out[0]))
        torch_loaded.add(out[1])
    print(f"import astro_cl: median {statistics.median(times) * 1e3:.0f} ms "
          f"(min {min(times) * 1e3:.0f} ms over {repeats} fresh interpreters); "
          f"torch imported: {torch_loaded}")
    code_torch = (
        "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)")
    t_torch = float(subprocess.run([sys.executable, "-c", code_torch], capture_output=True,
                                   text=True, check=True).stdout)
    print(f"for comparison, import torch: {t_torch * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
