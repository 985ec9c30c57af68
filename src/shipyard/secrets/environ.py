"""The environment a long-lived process starts with: named variables only, never the caller's whole
environment.

A scoring server outlives the command that started it, often by weeks. Had it inherited that
command's environment, every token the user or the CI job had exported (cloud keys, the database
password, MLFLOW_TRACKING_TOKEN) would sit in `/proc/<pid>/environ` for the deployment's life,
readable by the user and by anything the model's code runs. So a server gets what an interpreter
needs to run (the allow-list below) plus what the caller passes explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# What Python, locales, temp files, TLS and the numeric libraries read; no credentials.
ALLOWED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
        "PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV",
        "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
        "SHIPYARD_HOST_ID",
    }
)  # fmt: skip
ALLOWED_PREFIXES = ("LC_",)


def explicit_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowed variables of this process's environment, then `extra` on top."""
    env = {k: v for k, v in os.environ.items() if k in ALLOWED or k.startswith(ALLOWED_PREFIXES)}
    env.update(extra or {})
    return env
