"""Image benchmark: size over the base, cold build, rebuild after a model-only change.

Uses the local base image (scripts/build-base-image.sh) and podman. The first build runs in a new
workspace (wheels downloaded again); podman's layer cache is shared with earlier builds, so the
table says how many steps it took from that cache. The cold build is the same build context
built again with `--no-cache` (every layer built, wheels already on the host).
Run: `python benchmarks/images/bench_image.py` (writes the "Images" section of docs/benchmarks.md).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import Ridge

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]

from bundles import make_bundle  # noqa: E402
from report import write_section  # noqa: E402

from shipyard.config.models import WorkspaceSettings  # noqa: E402
from shipyard.config.targets import ImageConfig  # noqa: E402
from shipyard.images import build_image  # noqa: E402
from shipyard.images.builders.podman import PodmanBuilder  # noqa: E402
from shipyard.workspace import Workspace  # noqa: E402

BASE = "localhost/shipyard-base:bookworm"


def _size(tag: str) -> int:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True
    )
    return int(out.stdout.strip())


def main() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "build-base-image.sh")], check=True, capture_output=True)
    cfg = ImageConfig(base=BASE, builder="podman")
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-img-") as tmp:
        root = Path(tmp)
        ws = Workspace.get_or_create(WorkspaceSettings(root=str(root / "ws")))
        bundle, _ = make_bundle(root / "b1")
        # The example's own requirements (what `shipyard package --image` puts in its image).
        example_requirements = (ROOT / "examples" / "diabetes" / "requirements.txt").read_text()
        (bundle / "requirements.txt").write_text(example_requirements)
        started = time.monotonic()
        first = build_image(ws, bundle, cfg)
        cold = time.monotonic() - started
        bundle2, _ = make_bundle(root / "b2")
        (bundle2 / "requirements.txt").write_text(example_requirements)
        x = np.random.default_rng(7).normal(size=(40, 10))
        joblib.dump(
            Ridge(alpha=3.0).fit(x, x.sum(axis=1)), bundle2 / "model" / "diabetes-ridge" / "3" / "model.pkl"
        )
        started = time.monotonic()
        second = build_image(ws, bundle2, cfg)
        rebuild = time.monotonic() - started
        args = PodmanBuilder().build_args(Path(first.context_dir), "localhost/shipyard-bench:cold")
        args.insert(-1, "--no-cache")
        started = time.monotonic()
        subprocess.run(["podman", *args], check=True, capture_output=True)
        no_cache = time.monotonic() - started
        subprocess.run(["podman", "rmi", "localhost/shipyard-bench:cold"], capture_output=True)
    over = (_size(first.tag) - _size(BASE)) / 1e6
    lines = [
        "| measure | value | target |",
        "|---|---|---|",
        f"| image size over the base (diabetes Ridge; the example's requirements: scikit-learn, numpy, "
        f"pandas, joblib) | {over:.0f} MB | < 300 MB |",
        f"| base image (Debian bookworm minbase + python3) | {_size(BASE) / 1e6:.0f} MB | |",
        f"| cold build (`--no-cache`, wheels on the host) | {no_cache:.1f} s | |",
        f"| first build, new workspace ({first.cached_steps} steps cached) | {cold:.1f} s | |",
        f"| rebuild, model-only change ({second.cached_steps} steps cached) | {rebuild:.1f} s | < 10 s |",
    ]
    print("\n".join(lines))
    write_section("Images", lines, "make bench-images")


if __name__ == "__main__":
    main()
