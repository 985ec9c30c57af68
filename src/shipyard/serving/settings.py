"""The scoring server's settings: the `serving:` section of a deployment config, validated here
because the server reads them inside images, where `shipyard.config` is not imported.

`shipyard.config` uses these models in its deployment config (config imports serving, never the
other way round); the server reads them from the JSON file given to ``--settings``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    # As shipyard.config's models: an unknown key is an error, Azure ML's aliases are accepted.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BatchingConfig(_Strict):
    """Adaptive micro-batching: concurrent requests are stacked, scored once and split back."""

    max_batch_size: int = Field(0, ge=0, description="Rows per batch; 0 turns batching off.")
    max_latency_ms: float = Field(5.0, gt=0, description="Longest a request waits for a batch to fill.")


class CaptureConfig(_Strict):
    """Data capture (Azure ML's ModelDataCollector): inputs and outputs to rotating JSONL or Parquet files."""

    enabled: bool = False
    sample_rate: float = Field(1.0, gt=0, le=1, description="Fraction of requests captured.")
    max_file_mb: float = Field(64, gt=0, description="Start a new file past this size.")
    format: Literal["jsonl", "parquet"] = Field("jsonl", description="File format of the captured records.")
    folder: str | None = Field(None, description="Default: <workspace>/capture/<endpoint>.")


class ServingConfig(_Strict):
    """Protection and operation of the scoring server. Azure ML's field names are accepted too."""

    auth: bool | None = Field(
        None, alias="authEnabled", description="Key auth; default on for deployments, off for `serve`."
    )
    max_body_mb: float = Field(5, gt=0, description="Larger request bodies get 413.")
    scoring_timeout_ms: int = Field(
        5000, gt=0, alias="scoringTimeoutMs", description="Slower scoring gets 504."
    )
    max_concurrent_requests: int = Field(
        1,
        ge=1,
        le=256,
        alias="maxConcurrentRequestsPerContainer",
        description="Scoring threads per worker (Azure ML's default); more for models that release the GIL.",
    )
    max_queue_wait_ms: int = Field(
        500, ge=0, alias="maxQueueWaitMs", description="Wait this long for a slot, then 503 + Retry-After."
    )
    inline_below_ms: float = Field(
        2,
        ge=0,
        le=1000,
        description="With one scoring thread, score on the event loop while recent calls took under "
        "this many ms on average (saves the thread hand-off); 0 = always on the scoring thread.",
    )
    workers: int = Field(1, ge=1, le=64, description="Server processes.")
    # Hostile requests (docs/serving.md, "Hostile requests"): parse cost and slow connections.
    max_json_depth: int = Field(64, ge=2, le=256, description="Deeper JSON bodies get 400.")
    max_body_elements: int = Field(
        1_000_000, ge=1, description="Bodies with more values (JSON values, CSV/Parquet cells) get 413."
    )
    max_columns: int = Field(
        1000, ge=1, description="Table bodies with more columns get 413 (at least the signature's width)."
    )
    max_image_pixels: int = Field(
        4096 * 4096,
        ge=1,
        description="Pixels of the images a request decodes to arrays, all together; more get 413.",
    )
    header_timeout_s: float = Field(
        10, gt=0, le=600, description="A request's headers must arrive within this, else 408 and close."
    )
    body_timeout_s: float = Field(
        30, gt=0, le=3600, description="A request's body must arrive within this after its headers, else 408."
    )
    max_connections: int = Field(
        512, ge=1, le=65536, description="Open connections per worker; more get 503 and are closed."
    )
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
