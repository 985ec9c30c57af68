"""The steps of the loop. Each has a cache key (content hashes of what it depends on), a run
function returning its typed output record (pipeline/outputs.py), and optionally a check that
cached outputs are still usable (a deployment still serving). Heavy imports stay inside `run`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from shipyard.data.report import DataCheckReport
from shipyard.errors import DataCheckFailed, StepFailed
from shipyard.gate.policy import GateDecision
from shipyard.pipeline.context import StepContext
from shipyard.pipeline.outputs import (
    BundleRef,
    DeploymentRef,
    RegisteredModel,
    SmokeTestedEndpoint,
    StepOutput,
    TrainedRun,
)
from shipyard.pipeline.sweep import run_sweep
from shipyard.pipeline.training import train_job, trained_run


class Step:
    name = ""
    output_type: Any  # the record `run` returns; its `from_dict` loads a stored (cached) output

    def cache_key(self, ctx: StepContext) -> str | None:
        """None means: never cached."""
        return None

    def load(self, stored: dict[str, Any]) -> StepOutput:
        """A stored output (a cache hit, maybe written by an earlier version) as its record."""
        return self.output_type.from_dict(stored)

    def still_valid(self, ctx: StepContext, output: Any) -> bool:
        return True

    def reused(self, ctx: StepContext, output: Any, source_run: str) -> StepOutput:
        """A cache hit's output as this run reports it: what the run that made it did (a
        version created, an alias moved, a decision and its reason) is not claimed as done now."""
        return output

    def rejection(self, output: Any) -> GateDecision | None:
        """The gate decision that stops the pipeline after this step, if any."""
        return None

    def run(self, ctx: StepContext) -> StepOutput:
        raise NotImplementedError


class DataCheckStep(Step):
    name = "data_check"
    output_type = DataCheckReport

    def cache_key(self, ctx: StepContext) -> str | None:
        dc = ctx.data_check
        schema_file = dc.data_schema.split(":")[0] if dc.data_schema else None
        return ctx.key(
            self.name,
            {"files": ctx.hash_files([dc.path, schema_file, dc.reference]), "config": dc.model_dump()},
        )

    def run(self, ctx: StepContext) -> DataCheckReport:
        from shipyard.data.checks import check_project_data

        report = check_project_data(ctx.config)
        if not report.passed:
            raise DataCheckFailed(f"data check failed for {ctx.data_check.path}:\n{report.summary()}")
        return report


class TrainStep(Step):
    name = "train"
    output_type = TrainedRun

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
                # Data-parallel training gives another model than one process (absent: keys unchanged).
                **({"distributed": t.distributed.model_dump(mode="json")} if t.distributed else {}),
            },
        )

    def run(self, ctx: StepContext) -> TrainedRun:
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
            tags["shipyard.dataset_hash"] = ctx.output("data_check", DataCheckReport).dataset_hash
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
                # This run is the sweep's parent; each trial a child run; the best one the output.
                output = run_sweep(ctx, run_id, tags, secret_env)
            else:
                # Logs stream into log_path with secret values masked; a failure raises StepFailed
                # with the exit code and the log's tail; Ctrl-C cancels the job on its target first.
                job = train_job(ctx, run_id, log_path, secret_env)
                run_job(get_target(t.compute, ctx.ws, ctx.config), job)
                # A host that could not reach the workspace store logged beside its outputs.
                import_step_tracking(client, run_id, job.outputs_dir)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            client.set_terminated(run_id, status)
        record = output if output is not None else trained_run(ctx, run_id, log_path, tags)
        record = dataclasses.replace(record, load_checked=load_check(ctx, record))
        # store_step_files returns the record's str fields (log and file URIs) by name
        return dataclasses.replace(record, **store_step_files(ctx, self.name, log_path))  # type: ignore[arg-type]


def store_step_files(ctx: StepContext, step: str, log_path: Path) -> dict[str, str]:
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
    output_type = GateDecision

    def cache_key(self, ctx: StepContext) -> str | None:
        from shipyard.gate.promotion import withdrawal
        from shipyard.packaging.loadcheck import load_check_key
        from shipyard.pipeline.records import registered_version
        from shipyard.registry.models import champion_for_cache

        run_id = ctx.output("train", TrainedRun).run_id
        own = registered_version(ctx.ws, ctx.model_name, run_id)
        inputs: dict[str, Any] = {
            "run_id": run_id,
            "gate": ctx.config.gate.model_dump(),
            "model": ctx.model_name,
            "champion": champion_for_cache(ctx.ws, ctx.model_name, "production", own),
        }
        withdrawn = withdrawal(ctx.ws, ctx.model_name, own)
        if withdrawn is not None:  # taken out of production since: decided again (only then keyed)
            inputs["withdrawn"] = withdrawn.id
        # What the load check loads besides the model: a change re-runs evaluate, which checks
        # the model again (keyed whether or not registered since: a re-run hits the same key).
        inputs["load_check"] = load_check_key(ctx.config)
        return ctx.key(self.name, inputs)

    def run(self, ctx: StepContext) -> GateDecision:
        from shipyard.gate.policy import decide
        from shipyard.gate.promotion import decide_against, withdrawal, withdrawn_reason
        from shipyard.gate.records import record_decision
        from shipyard.packaging.loadcheck import load_check_key
        from shipyard.pipeline.records import registered_version
        from shipyard.registry.models import alias_version

        train, gate = ctx.output("train", TrainedRun), ctx.config.gate
        own = registered_version(ctx.ws, ctx.model_name, train.run_id)
        if own is None and train.load_checked != load_check_key(ctx.config):
            load_check(ctx, train)  # the deployment files changed since the (cached) train step
        event = withdrawal(ctx.ws, ctx.model_name, own)
        withdrawn = withdrawn_reason(event, ctx.model_name) if event is not None else None
        if gate.enabled:
            champion = alias_version(ctx.ws, ctx.model_name, "production")
            decision = decide_against(ctx.ws, gate, _candidate(train), champion, withdrawn)
        else:
            decision = decide(
                gate, candidate_run_id=train.run_id, candidate_value=None, candidate_withdrawn=withdrawn
            )
        record_decision(ctx.ws, ctx.model_name, decision, ctx.pipeline_run_id)
        return decision

    def reused(self, ctx: StepContext, output: GateDecision, source_run: str) -> GateDecision:
        return _reused_decision(ctx, output, source_run)

    def rejection(self, output: GateDecision) -> GateDecision | None:
        return None if output.accepted else output


def _reused_decision(ctx: StepContext, decision: GateDecision, source_run: str) -> GateDecision:
    """A gate decision from the cache, with a reason that is true now: it names the run that
    decided (`decided_by`, `decided_reason` keep the original) and says when this candidate has
    become production since (the cached "no production model yet" would no longer be true)."""
    from shipyard.pipeline.records import registered_version
    from shipyard.registry.models import champion_for_cache

    by = decision.decided_by or source_run
    said = decision.decided_reason or decision.reason
    reason = f"decided by pipeline run {by[:8]} (reused, nothing it depends on changed): {said}"
    own = registered_version(ctx.ws, ctx.model_name, decision.candidate_run_id)
    if own is not None and champion_for_cache(ctx.ws, ctx.model_name, "production", None) == own:
        reason = f"this run's model is production already (v{own}); {reason}"
    return dataclasses.replace(decision, reason=reason, decided_by=by, decided_reason=said)


def load_check(ctx: StepContext, train: TrainedRun) -> str | None:
    """Check that the trained model loads and scores the input sample (packaging/loadcheck.py),
    right after training: before the evaluate step reads the champion for its cache key, so the
    check's seconds do not widen the window in which a concurrent run moves production. Returns
    the deployment files' key it passed with; StepFailed, naming what failed, otherwise."""
    from shipyard.packaging.loadcheck import check_candidate, load_check_key

    checked = check_candidate(ctx.ws, ctx.config, train.run_id, train.model_uri)
    if not checked.ok:
        raise StepFailed(
            f"the model of run {train.run_id} failed its load check ({checked.stage}): "
            f"{checked.detail}; nothing was registered and production is unchanged"
        )
    return load_check_key(ctx.config)


def _candidate(train: TrainedRun):
    from shipyard.gate.promotion import Candidate

    return Candidate(train.run_id, train.metrics)


class RegisterStep(Step):
    name = "register"
    output_type = RegisteredModel

    def cache_key(self, ctx: StepContext) -> str | None:
        gate = ctx.output("evaluate", GateDecision)
        return ctx.key(
            self.name,
            {
                "run_id": ctx.output("train", TrainedRun).run_id,
                "registry": ctx.config.registry.model_dump(),
                "verdict": gate.verdict,
                "champion": gate.champion_version,
            },
        )

    def still_valid(self, ctx: StepContext, output: RegisteredModel) -> bool:
        return not output.rejected  # a lost race is decided again, never replayed

    def reused(self, ctx: StepContext, output: RegisteredModel, source_run: str) -> RegisteredModel:
        """Nothing was registered and no alias moved in this run: model.json says `created: false`."""
        return dataclasses.replace(
            output, created=False, alias_moves=[], gate=_reused_decision(ctx, output.gate, source_run)
        )

    def rejection(self, output: RegisteredModel) -> GateDecision | None:
        return output.gate if output.rejected else None

    def run(self, ctx: StepContext) -> RegisteredModel:
        from shipyard.gate.promotion import promote, recheck
        from shipyard.registry.models import actor, register, set_alias

        reg = ctx.config.registry
        train, gate = ctx.output("train", TrainedRun), ctx.output("evaluate", GateDecision)
        tags = dict(reg.tags)
        tags.update(
            {
                "shipyard.run_id": train.run_id,
                "shipyard.experiment": ctx.config.experiment_name,
                "shipyard.pipeline_run_id": ctx.pipeline_run_id,
            }
        )
        if train.dataset_hash:
            tags["shipyard.dataset_hash"] = train.dataset_hash
        if ctx.git_commit:
            tags["shipyard.git_commit"] = ctx.git_commit
        for metric in reg.metric_tags:
            if metric in train.metrics:
                tags[f"metric.{metric}"] = f"{train.metrics[metric]:.6g}"
        candidate = _candidate(train)
        if gate.accepted and reg.promote_on_pass:
            # Production may have moved since evaluate: a candidate that lost is not registered.
            gate = recheck(ctx.ws, ctx.config.gate, ctx.model_name, candidate, gate, ctx.pipeline_run_id)
            if not gate.accepted:
                return RegisteredModel(run_id=train.run_id, gate=gate, rejected=True)
        info, created = register(
            ctx.ws, ctx.model_name, train.run_id, train.model_uri, tags, reuse_existing=True
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
        if gate.accepted and reg.promote_on_pass:
            gate, move = promote(
                ctx.ws,
                ctx.config.gate,
                info.name,
                info.version,
                candidate,
                gate,
                actor=actor(),
                pipeline_run_id=ctx.pipeline_run_id,
            )
            rejected = move is None
            if move is not None:
                moves.append(move.to_dict())
        return RegisteredModel(
            model_name=info.name,
            version=info.version,
            run_id=train.run_id,
            created=created,
            source=info.source,
            alias_moves=[m for m in moves if m["moved"]],
            aliases=sorted({m["alias"] for m in moves}),
            gate=gate,
            # Production moved to a better model after this version was registered; it stays
            # registered without the alias and the pipeline stops as rejected.
            rejected=rejected,
        )


class PackageStep(Step):
    name = "package"
    output_type = BundleRef

    def cache_key(self, ctx: StepContext) -> str | None:
        d = ctx.deployment
        reg = ctx.output("register", RegisteredModel)
        return ctx.key(
            self.name,
            {
                "model": [reg.model_name, reg.version, reg.source],
                "files": ctx.hash_files([d.entry_script, d.requirements, d.input_sample]),
                "environment": ctx.environment_key(None),
            },
        )

    def still_valid(self, ctx: StepContext, output: BundleRef) -> bool:
        from shipyard.packaging.bundle import bundle_stored

        # Its content, not the folder the recording machine had: another machine fetches it.
        return bundle_stored(ctx.ws, output.bundle_id)

    def run(self, ctx: StepContext) -> BundleRef:
        from shipyard.packaging.bundle import bundle_for_deployment
        from shipyard.registry.models import resolve

        reg = ctx.output("register", RegisteredModel)
        model = resolve(ctx.ws, f"{reg.model_name}:{reg.version}")
        bundle = bundle_for_deployment(ctx.ws, model, ctx.config)
        return BundleRef(bundle_id=bundle.id, path=bundle.path, content_hash=bundle.content_hash)


def _serving(ctx: StepContext, output: DeploymentRef | SmokeTestedEndpoint) -> bool:
    """A cached deploy or smoke test still holds while its deployment still serves."""
    from shipyard.deploy.endpoints import deployment_is_serving

    return deployment_is_serving(ctx.ws, output.deployment_id)


class DeployStep(Step):
    name = "deploy"
    output_type = DeploymentRef

    def cache_key(self, ctx: StepContext) -> str | None:
        d = ctx.deployment
        return ctx.key(
            self.name, {"bundle": ctx.output("package", BundleRef).bundle_id, "config": d.model_dump()}
        )

    def still_valid(self, ctx: StepContext, output: DeploymentRef) -> bool:
        return _serving(ctx, output)

    def run(self, ctx: StepContext) -> DeploymentRef:
        from shipyard.deploy.facade import deploy_bundle
        from shipyard.packaging.bundle import get_bundle

        bundle = get_bundle(ctx.ws, ctx.output("package", BundleRef).bundle_id)
        # Started only: the smoke_test step checks it and switches the endpoint over.
        result = deploy_bundle(ctx.ws, ctx.config, bundle, deployment=ctx.deployment, smoke_test=False)
        dep = result.deployment
        assert dep is not None
        if result.new_keys:
            ctx.secrets["endpoint_keys"] = result.new_keys
        return DeploymentRef(
            deployment_id=dep.id,
            endpoint=dep.endpoint,
            url=dep.url,
            slot=dep.slot,
            pid=dep.pid,
            port=dep.port,
        )


class SmokeTestStep(Step):
    name = "smoke_test"
    output_type = SmokeTestedEndpoint

    def cache_key(self, ctx: StepContext) -> str | None:
        return ctx.key(self.name, {"deployment": ctx.output("deploy", DeploymentRef).deployment_id})

    def still_valid(self, ctx: StepContext, output: SmokeTestedEndpoint) -> bool:
        return _serving(ctx, output)

    def run(self, ctx: StepContext) -> SmokeTestedEndpoint:
        from shipyard.deploy.endpoints import auth_enabled, run_smoke_test
        from shipyard.packaging.bundle import get_bundle

        d = ctx.deployment
        payload = get_bundle(ctx.ws, ctx.output("package", BundleRef).bundle_id).manifest.get("input_sample")
        deployment_id = ctx.output("deploy", DeploymentRef).deployment_id
        dep = run_smoke_test(ctx.ws, deployment_id, payload, d.smoke_test.timeout_s)
        url = dep.endpoint_url or dep.url  # the endpoint's stable URL (nginx) when it has one
        assert url is not None  # the smoke test has just scored through it
        return SmokeTestedEndpoint(
            deployment_id=dep.id,
            url=url,
            deployment_url=dep.url,
            slot=dep.slot,
            smoke=dep.smoke_detail,
            payload=payload,
            auth=auth_enabled(ctx.ws, dep),
        )


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
