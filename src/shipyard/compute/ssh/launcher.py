"""The remote half of the ssh target: starts a job's script detached, with its environment from stdin.

This file is copied into the job's folder on the remote host and run there with the host's Python
(standard library only, Python 3.8+; Shipyard is not installed remotely). Why a launcher and not
`nohup env K=V ... &` in a shell: the job's variables include secret values, and anything on the
remote command line is visible to every user of the host (`ps`, /proc/PID/cmdline). Here they
arrive as one JSON object on stdin, live in this process's memory, and go into the script's
environment only.

    python3 launcher.py JOB_DIR PYTHON SCRIPT [ARGS...]   (stdin: {"env": {...}})

It forks a monitor in its own session (process group = its pid, so cancel can signal the script
and everything it started), prints that pid and exits, so the ssh command returns at once. The
monitor runs the script in `JOB_DIR/code` with stdout and stderr in `JOB_DIR/log`, waits for it
and writes its exit code to `JOB_DIR/exit` (through a rename: a reader never sees half a number).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def main() -> None:
    job_dir, python, script, *args = sys.argv[1:]
    env = dict(os.environ)
    env.update(json.load(sys.stdin)["env"])
    if "VIRTUAL_ENV" in env:
        env["PATH"] = os.pathsep.join([os.path.join(env["VIRTUAL_ENV"], "bin"), env.get("PATH", "")])
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        return
    os.setsid()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    log = os.open(os.path.join(job_dir, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        code = subprocess.call([python, script, *args], cwd=os.path.join(job_dir, "code"), env=env)
    except OSError as exc:
        print(f"shipyard: cannot start {python}: {exc}", flush=True)
        code = 127
    tmp = os.path.join(job_dir, "exit.tmp")
    with open(tmp, "w") as out:
        out.write(f"{code}\n")
    os.replace(tmp, os.path.join(job_dir, "exit"))
    os._exit(0)


if __name__ == "__main__":
    main()
