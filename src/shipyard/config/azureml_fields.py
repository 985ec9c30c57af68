"""Azure ML's deployment and inference config fields, and what each becomes in Shipyard.

The table behind config/azureml.py (and docs/azureml-configs.md): a canonical field name as the
Azure ML SDK reads it (`section.child` for nested ones) → `To(dotted DeploymentConfig field)`,
`No(reason)` when there is no equivalent, or None when the importer handles it itself; plus the
SDK parameter names accepted as aliases (normalised: lower case, no underscores).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class To:
    """Carried over onto this dotted DeploymentConfig field."""

    path: str


@dataclass(frozen=True)
class No:
    """No equivalent: a warning with this reason when the field asks for something."""

    reason: str


_TLS = No(
    "terminate TLS at the router or ingress (a proxy in front of the endpoint, or the Kubernetes "
    "gateway); the scoring server speaks plain HTTP"
)
_PROBE = No(
    "the Kubernetes target sets its own probes on GET /; deployment.health_timeout_s bounds the "
    "wait for the first healthy answer"
)
_KEY = No(
    "keys are never read from config files: Shipyard makes them and shows them once; replace one "
    "with `shipyard endpoints keys rotate`"
)
_GPU = No("GPUs are not scheduled or built for yet")
_META = No("metadata is not carried over (registry.tags tag the model versions)")
_NET = No("networking belongs to the container engine or cluster, not to the deployment")
_CMK = No("customer-managed keys for Azure's storage have no equivalent")
_SLOTS = No("AKS endpoint versions are deployment slots here: use the endpoint's traffic split")

# Canonical name → handling, with the aliases (already normalised) the SDK's parameters add.
DEPLOY_FIELDS: dict[str, tuple[To | No | None, tuple[str, ...]]] = {
    "computeType": (None, ()),  # special: chooses the target
    "containerResourceRequirements.cpu": (To("resources.cpu_cores"), ("cpucores",)),
    "containerResourceRequirements.memoryInGB": (To("resources.memory_gb"), ("memorygb",)),
    "containerResourceRequirements.cpuLimit": (To("resources.cpu_limit"), ("cpucoreslimit",)),
    "containerResourceRequirements.memoryInGBLimit": (To("resources.memory_limit_gb"), ("memorygblimit",)),
    "containerResourceRequirements.gpu": (_GPU, ()),
    "containerResourceRequirements.fpga": (No("FPGAs are not scheduled"), ()),
    "gpuCores": (_GPU, ()),
    "autoScaler.autoscaleEnabled": (To("autoscale.enabled"), ("autoscaleenabled",)),
    "autoScaler.minReplicas": (To("autoscale.min_replicas"), ("autoscaleminreplicas",)),
    "autoScaler.maxReplicas": (To("autoscale.max_replicas"), ("autoscalemaxreplicas",)),
    "autoScaler.targetUtilization": (To("autoscale.target_cpu_percent"), ("autoscaletargetutilization",)),
    "autoScaler.refreshPeriodInSeconds": (
        No(
            "the HorizontalPodAutoscaler's sync period is a cluster setting "
            "(kube-controller-manager --horizontal-pod-autoscaler-sync-period)"
        ),
        ("autoscalerefreshseconds",),
    ),
    "numReplicas": (To("autoscale.replicas"), ()),
    "authEnabled": (To("serving.auth"), ()),
    "tokenAuthEnabled": (None, ()),  # special: key auth instead
    "appInsightsEnabled": (
        No("no Application Insights: scrape GET /metrics (Prometheus) and read the JSON access log"),
        ("enableappinsights",),
    ),
    "scoringTimeoutMs": (To("serving.scoring_timeout_ms"), ()),
    "maxConcurrentRequestsPerContainer": (
        To("serving.max_concurrent_requests"),
        ("replicamaxconcurrentrequests",),
    ),
    "maxQueueWaitMs": (To("serving.max_queue_wait_ms"), ("maxrequestwaittime",)),
    "dataCollection.storageEnabled": (To("serving.capture.enabled"), ("collectmodeldata",)),
    "sslEnabled": (_TLS, ()),
    "sslCertificate": (_TLS, ("sslcertpemfile",)),
    "sslKey": (_TLS, ("sslkeypemfile",)),
    "cname": (_TLS, ("sslcname",)),
    "location": (
        No(
            "no Azure regions: a deployment runs where its target is (this machine, its container "
            "engine, or the cluster of deployment.kubernetes.context)"
        ),
        (),
    ),
    "dnsNameLabel": (
        No("the endpoint's URL comes from the router (a stable local port) or the gateway's HTTPRoute"),
        (),
    ),
    "namespace": (To("kubernetes.namespace"), ()),
    "livenessProbeRequirements.periodSeconds": (_PROBE, ("periodseconds",)),
    "livenessProbeRequirements.initialDelaySeconds": (_PROBE, ("initialdelayseconds",)),
    "livenessProbeRequirements.timeoutSeconds": (_PROBE, ("timeoutseconds",)),
    "livenessProbeRequirements.successThreshold": (_PROBE, ("successthreshold",)),
    "livenessProbeRequirements.failureThreshold": (_PROBE, ("failurethreshold",)),
    "keys.primaryKey": (_KEY, ("primarykey",)),
    "keys.secondaryKey": (_KEY, ("secondarykey",)),
    "computeTargetName": (
        No("set deployment.kubernetes.context to the kubeconfig context of that cluster"),
        (),
    ),
    "vnetName": (_NET, ()),
    "subnetName": (_NET, ()),
    "vaultBaseUrl": (_CMK, ("cmkvaultbaseurl",)),
    "keyName": (_CMK, ("cmkkeyname",)),
    "keyVersion": (_CMK, ("cmkkeyversion",)),
    "versionName": (_SLOTS, ()),
    "trafficPercentile": (_SLOTS, ()),
    "isDefault": (_SLOTS, ()),
    "description": (_META, ()),
    "tags": (_META, ()),
    "properties": (_META, ()),
    "port": (To("port"), ()),  # computeType: local
}

_ENV = "registered Azure ML environments are not available here: the packages come from condaFile"
INFERENCE_FIELDS: dict[str, tuple[To | No | None, tuple[str, ...]]] = {
    "entryScript": (None, ()),  # special: paths
    "sourceDirectory": (None, ()),
    "condaFile": (None, ()),
    "runtime": (None, ()),
    "environment": (No(_ENV + " (or deployment.requirements)"), ()),
    "baseImage": (To("image.base"), ()),
    "baseImageRegistry.address": (None, ()),  # special: prefixes baseImage
    "baseImageRegistry.username": (
        No(
            "registry credentials are never read from config files: log in with "
            "`podman login` (or docker login) before building"
        ),
        (),
    ),
    "baseImageRegistry.password": (
        No(
            "registry credentials are never read from config files: log in with "
            "`podman login` (or docker login) before building"
        ),
        (),
    ),
    "extraDockerfileSteps": (
        No(
            "the image's Dockerfile is generated: put extra steps into a base image and "
            "set deployment.image.base"
        ),
        (),
    ),
    "schemaFile": (No("the swagger schema comes from the inference-schema decorators in score.py"), ()),
    "enableGpu": (_GPU, ()),
    "cudaVersion": (_GPU, ()),
    "description": (_META, ()),
}

COMPUTE_TARGETS = {"aci": "container", "aks": "kubernetes", "aksendpoint": "kubernetes", "local": "local"}
