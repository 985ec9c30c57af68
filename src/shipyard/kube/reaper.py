"""The TTL reaper: a CronJob (and the RBAC it needs) that deletes an expired slot, itself included.

The expiry is on every object as the annotation ai.shipyard/expires-at (ISO time) and a label of
the same name (epoch seconds, so a cluster-wide reaper can find expiring objects by label). The
CronJob fires once, in the expiry minute (UTC), and runs `kubectl delete` by the slot's label
selector; since it carries the same labels it deletes itself too, so it never fires again.
"""

from __future__ import annotations

from typing import Any

from shipyard.kube.manifests import RUN_AS_USER, SlotSpec, labels, meta, selector, utc

# What the reaper deletes: every kind a slot renders to.
REAPED_KINDS = "deployment,service,hpa,pdb,configmap,secret,cronjob,serviceaccount,role,rolebinding"


def reaper_objects(spec: SlotSpec) -> list[dict[str, Any]]:
    """A CronJob (and the RBAC it needs) that deletes the slot, itself included, at its expiry.

    The schedule names the expiry minute in UTC; the job deletes by the slot's label selector with
    the image of `kubernetes.reaper_image`.
    """
    assert spec.expires_at is not None
    when = utc(spec.expires_at)
    name = f"{spec.name}-reaper"
    sel = ",".join(f"{k}={v}" for k, v in selector(spec.endpoint, spec.slot).items())
    rules = [
        {
            "apiGroups": [""],
            "resources": ["services", "configmaps", "secrets", "serviceaccounts"],
            "verbs": ["get", "list", "delete"],
        },
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "delete"]},
        {
            "apiGroups": ["autoscaling"],
            "resources": ["horizontalpodautoscalers"],
            "verbs": ["get", "list", "delete"],
        },
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["get", "list", "delete"]},
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list", "delete"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "rolebindings"],
            "verbs": ["get", "list", "delete"],
        },
    ]
    command = [
        "kubectl",
        "delete",
        REAPED_KINDS,
        "--namespace",
        spec.namespace,
        "--selector",
        sel,
        "--ignore-not-found",
        "--wait=false",
    ]
    job_pod = {
        "serviceAccountName": name,
        "restartPolicy": "OnFailure",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "reaper",
                "image": spec.config.kubernetes.reaper_image,
                "command": command,
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "200m", "memory": "128Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(spec, name)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(spec, name),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(spec, name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": spec.namespace}],
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta(spec, name),
            "spec": {
                "schedule": f"{when.minute} {when.hour} {when.day} {when.month} *",
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 3,
                        "template": {"metadata": {"labels": labels(spec)}, "spec": job_pod},
                    }
                },
            },
        },
    ]
