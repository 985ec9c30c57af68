"""The Open Inference Protocol (KServe V2): typed tensors and the /v2 routes."""
