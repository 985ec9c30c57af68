"""Benchmark `shipyard run` on the example: cold, cached re-run, beside the bare `python train.py`.

Absolute times on a shared 2-core machine are noise; the ratios in the same run are the figures.
Writes the "## Pipeline" section of docs/benchmarks.md. Run with `make bench-run`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from report import write_section  # noqa: E402

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(repeats: int = 3) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        colds, cacheds, bares = [], [], []
        for i in range(repeats):
            proj = Path(tmp) / f"p{i}"
            shutil.copytree(
                ROOT / "examples" / "diabetes",
                proj,
                ignore=shutil.ignore_patterns(".shipyard", "outputs", "__pycache__"),
            )
            env = dict(os.environ, SHIPYARD_WORKSPACE=str(proj / ".shipyard"))
            bare_env = dict(os.environ, SHIPYARD_WORKSPACE=str(proj / ".bare"))
            bares.append(timed([sys.executable, "train.py"], proj, bare_env))
            try:
                colds.append(timed([SHIPYARD, "run"], proj, env))
                cacheds.append(timed([SHIPYARD, "run"], proj, env))
            finally:
                subprocess.run(
                    [SHIPYARD, "endpoints", "delete", "dev"],
                    cwd=proj,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
        bare, cold, cached = (statistics.median(x) for x in (bares, colds, cacheds))
        rows = [
            ("`python train.py` alone (the script, standalone tracking)", bare, 1.0),
            ("`shipyard run` cold (all 7 steps, incl. deploy + smoke test)", cold, cold / bare),
            ("`shipyard run` again, nothing changed (all steps cached)", cached, cached / bare),
        ]
    lines = [
        f"Median of {repeats} runs on the diabetes example; targets: cold < 20 s, cached < 3 s.",
        "",
        "| what | seconds | × bare script |",
        "|---|---|---|",
        *[f"| {name} | {secs:.2f} | {ratio:.2f} |" for name, secs, ratio in rows],
    ]
    write_section("Pipeline", lines, "make bench-run")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
