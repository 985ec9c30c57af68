"""The Kubernetes target: render an endpoint slot to manifests (plain YAML and a Helm chart), apply them.

Rendering is pure (dicts in, YAML files out, byte-identical for the same input) so it can be reviewed,
committed or handed to GitOps; applying is a thin server-side-apply client on top of the same
dicts. See docs/kubernetes.md.
"""

from shipyard.kube.gateway import http_route
from shipyard.kube.manifests import SlotSpec
from shipyard.kube.render import load_manifests, render, render_objects, slot_objects

__all__ = ["SlotSpec", "http_route", "load_manifests", "render", "render_objects", "slot_objects"]
