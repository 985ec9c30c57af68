"""Data capture: sampled requests' inputs and outputs to rotating JSONL or Parquet files."""
