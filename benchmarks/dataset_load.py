"""Time and memory of loading a dataset into contrl's in-memory layout, in a fresh process.

    python benchmarks/dataset_load.py hopper-medium-expert-v0 [--out benchmarks/results/dataset_load.md]

Reports the wall time of ``load_dataset`` and the process's peak resident memory (the
interpreter and numpy included; nothing else is imported).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import atomic_write_text, report_header

CHILD = """
import json, resource, sys, time
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from contrl.data.datasets import CACHE_NAME, load_dataset, minari_root
cached = (minari_root() / sys.argv[1] / "data" / CACHE_NAME).is_file()
t = time.perf_counter()
ds = load_dataset(sys.argv[1])
dt = time.perf_counter() - t
nbytes = sum(a.nbytes for a in (ds.observations, ds.actions, ds.rewards, ds.terminals,
                                 ds.timeouts, ds.next_observations, ds.episode_ends))
print(json.dumps({"seconds": dt, "transitions": len(ds), "array_mb": nbytes / 2**20,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": base / 1024, "episodes": int(ds.episode_ends.sum()),
                  "flat_copy": cached}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    rows = []
    for name in a.datasets:
        for r in range(a.repeats):
            out = subprocess.run([sys.executable, "-c", CHILD, name], capture_output=True,
                                 text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["dataset"], res["repeat"] = name, r
            print(json.dumps(res), flush=True)
            rows.append(res)
    if a.out:
        lines = report_header("Dataset loading", "dataset_load.py", minutes=True) + [
                 "Each load runs in a fresh process; peak RSS is the whole process's (Python, "
                 "numpy, JAX imported by contrl). Without a flat copy the load reads the Minari "
                 "file episode by episode and then writes the copy (contrl_flat.npz); contrl "
                 "writes it when it collects a dataset, so only datasets made elsewhere pay "
                 "this once.", "",
                 "| dataset | transitions | episodes | flat copy present | load time (s) | arrays (MB) | peak RSS (MB) |",
                 "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['transitions']:,} | {r['episodes']} | "
                  f"{'yes' if r['flat_copy'] else 'no'} | {r['seconds']:.2f} | "
                  f"{r['array_mb']:.0f} | {r['peak_rss_mb']:.0f} |" for r in rows]
        atomic_write_text(a.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
