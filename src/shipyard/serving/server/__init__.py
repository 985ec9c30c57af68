"""The HTTP server under every protocol: middleware and the POST /score fast path, key auth,
connection guards, scoring slots, micro-batching, metrics, log lines and worker processes."""
