"""The steps of the loop. Each has a cache key (content hashes of what it depends on), a run
function returning a JSON-able output record, and optionally a check that cached outputs are
still usable (a deployment still serving). Heavy imports stay inside `run`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.compute.base import StepJob
from shipyard.errors import DataCheckFailed, StepFailed
from shipyard.pipeline.context import StepContext


class Step:
    name = ""

    def cache_key(self, ctx: StepContext) -> str | None:
        """None means: never cached."""
        return None

    def still_valid(self, ctx: StepContext, outputs: dict[str, Any]) -> bool:
        return True

    def reused(self, ctx: StepContext, outputs: dict[str, Any], source_run: str) -> dict[str, Any]:
        """A cache hit's outputs as this run reports them: what the run that made them did (a
        version created, an alias moved, a decision and its reason) is not claimed as done now."""
        return outputs

    def run(self, ctx: StepContext) -> dict[str, Any]:
        raise NotImplementedError


class DataCheckStep(Step):
    name = "data_check"

    def cache_key(self, ctx: StepContext) -> str | None:
        dc = ctx.data_check
        schema_file = dc.data_schema.split(":")[0] if dc.data_schema else None
        return ctx.key(
            self.name,
            {"files": ctx.hash_files([dc.path, schema_file, dc.reference]), "config": dc.model_dump()},
        )

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from shipyard.data.checks import check_project_data

        report = check_project_data(ctx.config)
        if not report.passed:
            raise DataCheckFailed(f"data check failed for {ctx.data_check.path}:\n{report.summary()}")
        return report.to_dict()


class TrainStep(Step):
    name = "train"

    def cache_key(self, ctx: StepContext) -> str | None:
        t = ctx.config.train
        return ctx.key(
            self.name,
            {
                "code": ctx.hash_files([t.script, *t.code]),
                "params": ctx.params,
                "inputs": ctx.hash_files(list(t.inputs.values())),
                "environment": ctx.environment_key(t.environment),
                "experiment": ctx.config.experiment_name,
                # Names only (a hash of a weak value could be brute-forced); absent when none.
                **({"secrets": sorted(t.secrets)} if t.secrets else {}),
                # Where it ran, when not here (keys of local runs stay as they were).
                **({"compute": t.compute} if t.compute != "local" else {}),
                # The search when there is one, but not max_parallel (how fast, not what).
                **({"sweep": t.sweep.model_dump(mode="json", exclude={"max_parallel"})} if t.sweep else {}),
            },
        )

    def job(
        self,
        ctx: StepContext,
        run_id: str,
        log_path: Path,
        secret_env: dict[str, str],
        *,
        params: dict[str, Any] | None = None,
        outputs: Path | None = None,
    ) -> StepJob:
        """The script's job; a sweep trial passes its own `params` and `outputs` folder."""
        t = ctx.config.train
        outputs = outputs or ctx.ws.subdir("outputs", ctx.pipeline_run_id, "train")
        inputs = {k: str(ctx.config.path(v)) for k, v in t.inputs.items()}
        env = {
            **ctx.ws.environment(),
            "SHIPYARD_RUN_ID": run_id,
            "SHIPYARD_EXPERIMENT": ctx.config.experiment_name,
            "SHIPYARD_PARAMS": json.dumps(ctx.params if params is None else params),
            "SHIPYARD_INPUTS": json.dumps(inputs),
            "SHIPYARD_OUTPUTS": str(outputs),
            "PYTHONUNBUFFERED": "1",
        }
        return StepJob(
            name=self.name,
            project_dir=ctx.config.project_dir,
            script=t.script,
            log_path=log_path,
            outputs_dir=outputs,
            env=env,
            secret_env=secret_env,  # in this process's memory and the child's environment only
            inputs={k: Path(v) for k, v in inputs.items()},
            environment=ctx.config.path(t.environment) if t.environment else None,
            timeout_s=t.timeout_s,
        )

    def record(self, ctx: StepContext, run_id: str, log_path: Path, tags: dict[str, str]) -> dict[str, Any]:
        """The step's output record for the run that trained the model (a sweep's best trial)."""
        run = ctx.ws.mlflow.get_run(run_id)
        artifact = run.data.tags.get("shipyard.model_artifact")
        if not artifact:
            t = ctx.config.train
            raise StepFailed(f"{t.script} logged no model: call shipyard.log_model(model) in the script")
        return {
            "run_id": run_id,
            "experiment_id": run.info.experiment_id,
            "metrics": dict(run.data.metrics),
            "params": dict(run.data.params),
            "model_uri": f"runs:/{run_id}/{artifact}",
            "dataset_hash": tags.get("shipyard.dataset_hash"),
            "log_path": str(log_path),
            "compute": ctx.config.train.compute,
        }

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from mlflow.entities import Param

        from shipyard.compute import get_target, run_job
        from shipyard.secrets import Secrets
        from shipyard.tracking.importer import import_step_tracking

        t = ctx.config.train
        script = ctx.config.path(t.script)
        if not script.is_file():
            raise StepFailed(f"train.script: {script} does not exist")
        client = ctx.ws.mlflow
        tags = {
            "mlflow.parentRunId": ctx.parent_run(),
            "mlflow.source.name": t.script,
            "shipyard.pipeline_run_id": ctx.pipeline_run_id,
            "shipyard.step": self.name,
            "shipyard.compute": t.compute,
        }
        if ctx.git_commit:
            tags["mlflow.source.git.commit"] = ctx.git_commit
        if "data_check" in ctx.outputs:
            tags["shipyard.dataset_hash"] = ctx.outputs["data_check"].get("dataset_hash", "")
        run = client.create_run(ctx.ws.experiment_id(ctx.config.experiment_name), run_name="train", tags=tags)
        run_id = run.info.run_id
        swept = set(t.sweep.parameters) if t.sweep is not None else set()  # each trial logs its own
        client.log_batch(
            run_id, params=[Param(k, str(v)) for k, v in sorted(ctx.params.items()) if k not in swept]
        )
        log_path = ctx.log_dir() / "train.log"
        secret_env = Secrets(ctx.config.secrets, root=ctx.config.project_dir).env_for_step(t.secrets)
        status, output = "FAILED", None
        try:
            if t.sweep is not None:
                from shipyard.pipeline.sweep import run_sweep

                # This run is the sweep's parent; each trial a child run; the best one the output.
                output = run_sweep(ctx, self, run_id, tags, secret_env)
            else:
                # Logs stream into log_path with secret values masked; a failure raises StepFailed
                # with the exit code and the log's tail; Ctrl-C cancels the job on its target first.
                job = self.job(ctx, run_id, log_path, secret_env)
                run_job(get_target(t.compute, ctx.ws, ctx.config), job)
                # A host that could not reach the workspace store logged beside its outputs.
                import_step_tracking(client, run_id, job.outputs_dir)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            client.set_terminated(run_id, status)
        record = output if output is not None else self.record(ctx, run_id, log_path, tags)
        return record | store_step_files(ctx, self.name, log_path)


def store_step_files(ctx: StepContext, step: str, log_path: Path) -> dict[str, Any]:
    """On a remote artifact store, the step's log and its outputs folder (what the script wrote to
    SHIPYARD_OUTPUTS) go to `steps/<pipeline run>/<step>/` in it, so that another machine that
    reuses the step from the cache can read them too; the record says where. A file:// store
    already holds them in the workspace: nothing to do."""
    if ctx.ws.local_artifacts:
        return {}
    import shutil
    import tempfile

    folder = ctx.ws.root / "outputs" / ctx.pipeline_run_id / step
    with tempfile.TemporaryDirectory(prefix="shipyard-step-") as tmp:
        staged = Path(tmp) / step
        if folder.is_dir():
            shutil.copytree(folder, staged / "outputs")
        staged.mkdir(exist_ok=True)
        if log_path.is_file():
            shutil.copy2(log_path, staged / log_path.name)
        prefix = f"steps/{ctx.pipeline_run_id}/{step}"
        stored_hash = ctx.ws.artifact_cache.put_dir(ctx.ws.artifacts, staged, prefix)
    return {"files_uri": ctx.ws.artifacts.uri(prefix), "files_hash": stored_hash}


class EvaluateStep(Step):
    name = "evaluate"

    def cache_key(self, ctx: StepContext) -> str | None:
        from shipyard.gate.promotion import withdrawal
        from shipyard.pipeline.records import registered_version
        from shipyard.registry.models import champion_for_cache

        run_id = ctx.outputs["train"]["run_id"]
        own = registered_version(ctx.ws, ctx.model_name, run_id)
        inputs = {
            "run_id": run_id,
            "gate": ctx.config.gate.model_dump(),
            "model": ctx.model_name,
            "champion": champion_for_cache(ctx.ws, ctx.model_name, "production", own),
        }
        withdrawn = withdrawal(ctx.ws, ctx.model_name, own)
        if withdrawn is not None:  # taken out of production since: decided again (only then keyed)
            inputs["withdrawn"] = withdrawn.id
        return ctx.key(self.name, inputs)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from shipyard.gate.policy import decide
        from shipyard.gate.promotion import as_record, decide_against, withdrawal, withdrawn_reason
        from shipyard.gate.records import record_decision
        from shipyard.pipeline.records import registered_version
        from shipyard.registry.models import alias_version

        train, gate = ctx.outputs["train"], ctx.config.gate
        own = registered_version(ctx.ws, ctx.model_name, train["run_id"])
        event = withdrawal(ctx.ws, ctx.model_name, own)
        withdrawn = withdrawn_reason(event, ctx.model_name) if event is not None else None
        if gate.enabled:
            champion = alias_version(ctx.ws, ctx.model_name, "production")
            decision = decide_against(ctx.ws, gate, _candidate(train), champion, withdrawn)
        else:
            decision = decide(
                gate, candidate_run_id=train["run_id"], candidate_value=None, candidate_withdrawn=withdrawn
            )
        record_decision(ctx.ws, ctx.model_name, decision, ctx.pipeline_run_id)
        return as_record(decision)

    def reused(self, ctx: StepContext, outputs: dict[str, Any], source_run: str) -> dict[str, Any]:
        return _reused_decision(ctx, outputs, source_run)


def _reused_decision(ctx: StepContext, decision: dict[str, Any], source_run: str) -> dict[str, Any]:
    """A gate decision from the cache, with a reason that is true now: it names the run that
    decided (`decided_by`, `decided_reason` keep the original) and says when this candidate has
    become production since (the cached "no production model yet" would no longer be true)."""
    from shipyard.pipeline.records import registered_version
    from shipyard.registry.models import champion_for_cache

    by = decision.get("decided_by") or source_run
    said = decision.get("decided_reason") or decision["reason"]
    reason = f"decided by pipeline run {by[:8]} (reused, nothing it depends on changed): {said}"
    own = registered_version(ctx.ws, ctx.model_name, decision["candidate_run_id"])
    if own is not None and champion_for_cache(ctx.ws, ctx.model_name, "production", None) == own:
        reason = f"this run's model is production already (v{own}); {reason}"
    return decision | {"reason": reason, "decided_by": by, "decided_reason": said}


def _candidate(train: dict[str, Any]):
    from shipyard.gate.promotion import Candidate

    return Candidate(train["run_id"], train["metrics"])


class RegisterStep(Step):
    name = "register"

    def cache_key(self, ctx: StepContext) -> str | None:
        gate = ctx.outputs["evaluate"]
        return ctx.key(
            self.name,
            {
                "run_id": ctx.outputs["train"]["run_id"],
                "registry": ctx.config.registry.model_dump(),
                "verdict": gate["verdict"],
                "champion": gate.get("champion_version"),
            },
        )

    def still_valid(self, ctx: StepContext, outputs: dict[str, Any]) -> bool:
        return not outputs.get("rejected")  # a lost race is decided again, never replayed

    def reused(self, ctx: StepContext, outputs: dict[str, Any], source_run: str) -> dict[str, Any]:
        """Nothing was registered and no alias moved in this run: model.json says `created: false`."""
        return outputs | {
            "created": False,
            "alias_moves": [],
            "gate": _reused_decision(ctx, outputs["gate"], source_run),
        }

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from shipyard.gate.promotion import promote, recheck
        from shipyard.registry.models import actor, register, set_alias

        reg = ctx.config.registry
        train, gate = ctx.outputs["train"], ctx.outputs["evaluate"]
        tags = dict(reg.tags)
        tags.update(
            {
                "shipyard.run_id": train["run_id"],
                "shipyard.experiment": ctx.config.experiment_name,
                "shipyard.pipeline_run_id": ctx.pipeline_run_id,
            }
        )
        if train.get("dataset_hash"):
            tags["shipyard.dataset_hash"] = train["dataset_hash"]
        if ctx.git_commit:
            tags["shipyard.git_commit"] = ctx.git_commit
        for metric in reg.metric_tags:
            if metric in train["metrics"]:
                tags[f"metric.{metric}"] = f"{train['metrics'][metric]:.6g}"
        candidate = _candidate(train)
        if gate["accepted"] and reg.promote_on_pass:
            # Production may have moved since evaluate: a candidate that lost is not registered.
            gate = recheck(ctx.ws, ctx.config.gate, ctx.model_name, candidate, gate, ctx.pipeline_run_id)
            if not gate["accepted"]:
                return {"rejected": True, "gate": gate, "run_id": train["run_id"]}
        info, created = register(
            ctx.ws, ctx.model_name, train["run_id"], train["model_uri"], tags, reuse_existing=True
        )
        moves = []
        if reg.register_alias:
            moves.append(
                set_alias(
                    ctx.ws,
                    info.name,
                    reg.register_alias,
                    info.version,
                    reason=f"registered by pipeline run {ctx.pipeline_run_id}",
                    pipeline_run_id=ctx.pipeline_run_id,
                )
            )
        rejected = False
        if gate["accepted"] and reg.promote_on_pass:
            gate, move = promote(
                ctx.ws, ctx.config.gate, info.name, info.version, candidate, gate,
                actor=actor(), pipeline_run_id=ctx.pipeline_run_id,
            )  # fmt: skip
            rejected = move is None
            if move is not None:
                moves.append(move.to_dict())
        return {
            "model_name": info.name,
            "version": info.version,
            "run_id": train["run_id"],
            "created": created,
            "source": info.source,
            "alias_moves": [m for m in moves if m["moved"]],
            "aliases": sorted({m["alias"] for m in moves}),
            "gate": gate,
            # Production moved to a better model after this version was registered; it stays
            # registered without the alias and the pipeline stops as rejected.
            "rejected": rejected,
        }


class PackageStep(Step):
    name = "package"

    def cache_key(self, ctx: StepContext) -> str | None:
        d = ctx.deployment
        reg = ctx.outputs["register"]
        return ctx.key(
            self.name,
            {
                "model": [reg["model_name"], reg["version"], reg["source"]],
                "files": ctx.hash_files([d.entry_script, d.requirements, d.input_sample]),
                "environment": ctx.environment_key(None),
            },
        )

    def still_valid(self, ctx: StepContext, outputs: dict[str, Any]) -> bool:
        from shipyard.packaging.bundle import bundle_stored

        # Its content, not the folder the recording machine had: another machine fetches it.
        return bundle_stored(ctx.ws, outputs.get("bundle_id", ""))

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from shipyard.packaging.bundle import bundle_for_deployment
        from shipyard.registry.models import resolve

        reg = ctx.outputs["register"]
        model = resolve(ctx.ws, f"{reg['model_name']}:{reg['version']}")
        bundle = bundle_for_deployment(ctx.ws, model, ctx.config)
        return {"bundle_id": bundle.id, "path": bundle.path, "content_hash": bundle.content_hash}


class DeployStep(Step):
    name = "deploy"

    def cache_key(self, ctx: StepContext) -> str | None:
        d = ctx.deployment
        return ctx.key(self.name, {"bundle": ctx.outputs["package"]["bundle_id"], "config": d.model_dump()})

    def still_valid(self, ctx: StepContext, outputs: dict[str, Any]) -> bool:
        from shipyard.deploy.endpoints import deployment_is_serving

        return deployment_is_serving(ctx.ws, outputs.get("deployment_id", ""))

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from shipyard.deploy.facade import deploy_bundle
        from shipyard.packaging.bundle import get_bundle

        bundle = get_bundle(ctx.ws, ctx.outputs["package"]["bundle_id"])
        # Started only: the smoke_test step checks it and switches the endpoint over.
        result = deploy_bundle(ctx.ws, ctx.config, bundle, deployment=ctx.deployment, smoke_test=False)
        dep = result.deployment
        assert dep is not None
        if result.new_keys:
            ctx.secrets["endpoint_keys"] = result.new_keys
        return {
            "deployment_id": dep.id,
            "endpoint": dep.endpoint,
            "url": dep.url,
            "slot": dep.slot,
            "pid": dep.pid,
            "port": dep.port,
        }


class SmokeTestStep(Step):
    name = "smoke_test"

    def cache_key(self, ctx: StepContext) -> str | None:
        return ctx.key(self.name, {"deployment": ctx.outputs["deploy"]["deployment_id"]})

    still_valid = DeployStep.still_valid

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from shipyard.deploy.endpoints import auth_enabled, run_smoke_test
        from shipyard.packaging.bundle import get_bundle

        d = ctx.deployment
        payload = get_bundle(ctx.ws, ctx.outputs["package"]["bundle_id"]).manifest.get("input_sample")
        dep = run_smoke_test(ctx.ws, ctx.outputs["deploy"]["deployment_id"], payload, d.smoke_test.timeout_s)
        return {
            "deployment_id": dep.id,
            "url": dep.endpoint_url or dep.url,  # the endpoint's stable URL (nginx) when it has one
            "deployment_url": dep.url,
            "slot": dep.slot,
            **dep.smoke_detail,
            "passed": True,
            "payload": payload,
            "auth": auth_enabled(ctx.ws, dep),
        }


ALL_STEPS: list[type[Step]] = [
    DataCheckStep,
    TrainStep,
    EvaluateStep,
    RegisterStep,
    PackageStep,
    DeployStep,
    SmokeTestStep,
]
STEP_NAMES = [s.name for s in ALL_STEPS]
