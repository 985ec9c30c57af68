"""Batch scoring: score a whole file with a bundle, mini-batch by mini-batch, in parallel.

The seeds' Azure ML ``ParallelRunStep`` done locally: the input (CSV or Parquet) is streamed in
mini-batches, each scored with the bundle's own contract (``score.py`` run() or the MLflow
model) by a pool of workers that load the model once, and the predictions are written to one
timestamped file with a JSON summary beside it. Failed mini-batches are tolerated up to a
threshold and reported. Backends (``backends/``) decide where the workers run: local processes
or Ray Data on a cluster (`--compute NAME`). Every job is recorded in the workspace store.
"""

from __future__ import annotations

from shipyard.batch.job import BatchFailed, batch_score
from shipyard.batch.result import BatchResult, FailedBatch, Threshold, parse_threshold

__all__ = ["BatchFailed", "BatchResult", "FailedBatch", "Threshold", "batch_score", "parse_threshold"]
