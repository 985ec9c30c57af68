"""Data-parallel training on a Ray cluster (`train.distributed: {workers: N}`): the step's script
runs once per worker under Ray Train's TorchTrainer, the equivalent of Azure ML's PyTorch
distribution (`process_count_per_instance`) or a multi-node Databricks job.

The Ray target submits `python -m shipyard.compute.ray.distributed --workers N [--backend B]
[--gpu] SCRIPT ARGS...` as the job's driver (it reserves no CPU of its own); the driver starts a
TorchTrainer whose workers each run SCRIPT as `__main__`, with torch.distributed already
initialised (gloo on CPUs, nccl with --gpu) and the usual RANK, WORLD_SIZE, LOCAL_RANK variables
set. The script is the one that runs alone: it checks `torch.distributed.is_initialized()` and
wraps its model in DistributedDataParallel (examples/digits/train.py).

Only rank 0 logs into the pipeline's run. Every other rank gets a scratch workspace and MLflow
store of its own (a temporary folder, removed when its script ends), so its `shipyard.log_*` and
`mlflow.log_*` calls succeed and go nowhere: one metric value and one model per run, as in
PyTorch Lightning's rank-zero logging. The same holds for the outputs folder.

A worker that raises (or exits non-zero) fails the whole job; Ray Train stops the other workers.
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# What ties a process to the pipeline's run: a rank above 0 gets none of these (and its own stores).
RUN_VARIABLES = ("SHIPYARD_RUN_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")
BACKENDS = ("gloo", "nccl")


def command(workers: int, backend: str, gpu: bool, script: str, args: tuple[str, ...]) -> list[str]:
    """The driver's argument list after `python` (what RayTarget.submit puts in the entrypoint)."""
    flags = ["--workers", str(workers), "--backend", backend, *(["--gpu"] if gpu else [])]
    return ["-m", __name__, *flags, "--", script, *args]


def _scratch(rank: int) -> str:
    """Point this process's tracking and outputs at a folder of its own; returns the folder."""
    scratch = tempfile.mkdtemp(prefix=f"shipyard-rank{rank}-")
    for var in RUN_VARIABLES:
        os.environ.pop(var, None)
    database = f"sqlite:///{os.path.join(scratch, 'shipyard.db')}"
    os.environ.update(  # every store variable, so shipyard.yaml's workspace section cannot win
        SHIPYARD_WORKSPACE=scratch,
        SHIPYARD_DATABASE_URI=database,
        SHIPYARD_ARTIFACT_URI=Path(scratch, "artifacts").as_uri(),
        MLFLOW_TRACKING_URI=database,
        MLFLOW_REGISTRY_URI=database,
        SHIPYARD_OUTPUTS=os.path.join(scratch, "outputs"),
    )
    return scratch


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: run the script as `__main__` (rank 0 logs; the others into scratch)."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    scratch = _scratch(rank) if rank else None
    sys.argv = [config["script"], *config["args"]]
    try:
        runpy.run_path(config["script"], run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"{config['script']} exited with {exc.code} on rank {rank}") from None
    finally:
        from shipyard.tracking.run import end_all_runs

        end_all_runs()  # the script's runs end here, not at the worker process's exit
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shipyard.compute.ray.distributed")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--backend", choices=BACKENDS, default="gloo")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ray.init()  # the job's own cluster (the Jobs API sets RAY_ADDRESS)
    storage = tempfile.mkdtemp(prefix="shipyard-ray-train-")  # no checkpoints: nothing to keep
    try:
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"script": os.path.abspath(opts.script), "args": list(opts.args)},
            scaling_config=ScalingConfig(num_workers=opts.workers, use_gpu=opts.gpu),
            torch_config=TorchConfig(backend=opts.backend),
            run_config=RunConfig(name="shipyard-train", storage_path=storage),
        )
        trainer.fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
