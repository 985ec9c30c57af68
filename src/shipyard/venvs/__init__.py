"""Python environments built from environment specs: the spec and its hash (spec), where its
packages come from (sources), the cache of built environments (cache), and the Python a local
scoring server runs in (serving). Used by the venv compute target and the local deploy target,
which do not import each other."""
