"""End to end: a secret goes from a reference in shipyard.yaml into a real step process's
environment and nowhere else Shipyard keeps.

The step script prints its secrets (plain, in JSON, in a URL, through logging) and writes one to
its outputs folder on purpose. After the captured log is redacted, every file of the workspace is
searched, by `scan_for_values` and independently by grep: the value is found in that one output
file and nowhere else — not in the config, the log, Shipyard's own log or the step's argv.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from tools import require_tool

from shipyard.secrets import RedactingFilter, Secrets, scan_for_values

pytestmark = pytest.mark.integration

API_TOKEN = "sk-live-4f9a/b+c=d&e"
DB_PASSWORD = 'pa"ss wörd\\123'

STEP = """
import json, logging, os, sys
from pathlib import Path
from urllib.parse import quote_plus

outputs = Path(sys.argv[1])
token, password = os.environ["API_TOKEN"], os.environ["DB_PASSWORD"]
print("token:", token)
print(json.dumps({"password": password}))
print(f"GET https://api.invalid/v1?token={quote_plus(token)}", flush=True)
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
logging.info("connecting with password %s", password)
(outputs / "token.txt").write_text(token)
(outputs / "argv.json").write_text(json.dumps(sys.argv))
(outputs / "metrics.json").write_text(json.dumps({"rmse": 1.5}))
"""


def test_secret_reaches_the_step_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grep = require_tool("grep", "grep")
    # The user's side: one secret in the shell environment, one in a private file outside the project.
    monkeypatch.setenv("SHIPYARD_TEST_API_TOKEN", API_TOKEN)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "db").write_text(DB_PASSWORD + "\n")
    (private / "db").chmod(0o600)

    workspace = tmp_path / "workspace"
    outputs, logs = workspace / "outputs" / "train", workspace / "logs"
    for folder in (outputs, logs):
        folder.mkdir(parents=True)
    section = {"API_TOKEN": "env:SHIPYARD_TEST_API_TOKEN", "DB_PASSWORD": f"file:{private / 'db'}"}
    (workspace / "shipyard.yaml").write_text(
        "secrets:\n" + "".join(f"  {name}: {ref}\n" for name, ref in section.items())
    )
    script = workspace / "steps" / "train.py"
    script.parent.mkdir()
    script.write_text(STEP)

    # Shipyard's side: resolve for the step, run it with the values in its environment only.
    secrets = Secrets(section, root=workspace)
    env = {"PATH": os.environ["PATH"], **secrets.env_for_step(["API_TOKEN", "DB_PASSWORD"])}
    step_log = logs / "train.log"
    with open(step_log, "wb") as log_file:
        done = subprocess.run(
            [sys.executable, str(script), str(outputs)], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    assert done.returncode == 0, step_log.read_text()
    assert API_TOKEN in step_log.read_text()  # the step really printed it: redaction has work to do

    redactor = secrets.redactor()
    assert redactor.redact_file(step_log) == 4
    assert step_log.read_text().splitlines() == [
        "token: ***",
        '{"password": "***"}',
        "GET https://api.invalid/v1?token=***",
        "INFO connecting with password ***",
    ]

    # Shipyard's own log, through the filter, in the workspace too.
    handler = logging.FileHandler(logs / "shipyard.log")
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("shipyard.test.secrets_redaction")
    logger.addHandler(handler)
    try:
        logger.warning("step train used token %s and %s", API_TOKEN, quote_plus(DB_PASSWORD))
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (logs / "shipyard.log").read_text() == "step train used token *** and ***\n"

    # The guard: the only file holding a value is the one the step wrote on purpose.
    assert json.loads((outputs / "argv.json").read_text()) == [str(script), str(outputs)]
    values = list(secrets.resolve_all().values())
    assert scan_for_values(workspace, values) == [outputs / "token.txt"]
    assert scan_for_values(workspace, values, isolated=True) == [outputs / "token.txt"]

    # An independent check with grep; its patterns come from a file outside the workspace.
    patterns = private / "patterns"
    patterns.write_text("\n".join(values) + "\n")
    hits = subprocess.run(
        [grep, "-rlF", "-f", str(patterns), str(workspace)], capture_output=True, text=True, check=False
    )
    assert hits.returncode == 0, hits.stderr
    assert hits.stdout.splitlines() == [str(outputs / "token.txt")]

    # And once that file is gone, the workspace is clean.
    (outputs / "token.txt").unlink()
    assert scan_for_values(workspace, values) == []
