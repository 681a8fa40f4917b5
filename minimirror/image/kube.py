"""Kubernetes manifests for the mirror's image: a Deployment, a Service and a PodDisruptionBudget.

Pure: :func:`kube_manifests` turns a :class:`KubeSpec` into the three objects (Kubernetes API ``apps/v1``,
``v1`` and ``policy/v1``), :func:`render_yaml` into one YAML stream, keys in the order written here, so the same
options print the same bytes. What the objects promise, and why:

- the pod runs as the image's user 65534, ``runAsNonRoot``, with a read-only root filesystem, every capability
  dropped, no privilege escalation, the runtime's default seccomp profile and no service-account token (the mirror
  calls no API); ``/tmp`` is an emptyDir, the one place a server writes (nginx's pid file and temp directories;
  busybox httpd writes nothing, so it is mounted for every image: one manifest fits both servers);
- readiness and liveness are ``GET /healthz`` on the ``http`` port (:data:`minimirror.image.httpd.READY_PATH`);
- a rolling update never has fewer ready pods than ``replicas`` (``maxUnavailable: 0``, ``maxSurge: 1``), and a
  pod being replaced first leaves the Service's endpoints: ``preStop`` sleeps a few seconds so kube-proxy and the
  ingress stop sending it requests before SIGTERM (which the image obeys at once, docs/image.md). The busybox image
  sleeps with its own busybox; the nginx image has no shell or sleep binary, so it uses the kubelet's ``sleep``
  action (Kubernetes 1.30 or later; ``server="nginx"``);
- the PodDisruptionBudget lets a drain take one pod at a time (``maxUnavailable: 1``; ``minAvailable`` would block
  the drain of a single-replica mirror for ever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from minimirror.errors import UsageError
from minimirror.image.httpd import NOBODY, PORT, READY_PATH

__all__ = ["KubeSpec", "kube_manifests", "render_yaml"]

_PRESTOP_SECONDS = 5  # longer than endpoint propagation to kube-proxy in a healthy cluster (usually ~1 s)
_TMP_SIZE = "64Mi"  # nginx's pid file and empty temp directories: a mirror takes no request bodies


@dataclass(frozen=True, slots=True)
class KubeSpec:
    """What to deploy: the image reference (best pinned: ``HOST/NAME@sha256:...``), how many, under which name."""

    image: str
    replicas: int = 2
    name: str = "minimirror"
    service_port: int = 80
    server: str = "busybox"  # the image's server (``minimirror image --server``): how preStop sleeps


def _check(spec: KubeSpec) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", spec.name):
        raise UsageError(
            f"--name {spec.name!r}: not a Kubernetes name (lower-case letters, digits and '-', at most 63, "
            "starting and ending with a letter or digit)"
        )
    if spec.server not in ("busybox", "nginx"):
        raise UsageError(f"--server {spec.server!r}: busybox or nginx, as the image was built")
    if spec.replicas < 1:
        raise UsageError(f"--replicas {spec.replicas}: give at least 1")
    if not spec.image or any(c.isspace() for c in spec.image):
        raise UsageError(f"--image {spec.image!r}: give an image reference such as HOST/NAME@sha256:HEX")


def _labels(spec: KubeSpec) -> dict[str, str]:
    """A new dict at each use: a shared one would be written as a YAML anchor and alias."""
    return {"app.kubernetes.io/name": "minimirror", "app.kubernetes.io/instance": spec.name}


def _probe(period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": f"/{READY_PATH}", "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(spec: KubeSpec) -> dict[str, Any]:
    return {
        "name": "mirror",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": _probe(period=5, failures=2),
        "livenessProbe": _probe(period=10, failures=3),
        "lifecycle": {"preStop": _pre_stop(spec)},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NOBODY,
            "runAsGroup": NOBODY,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _pre_stop(spec: KubeSpec) -> dict[str, Any]:
    if spec.server == "nginx":
        return {"sleep": {"seconds": _PRESTOP_SECONDS}}
    return {"exec": {"command": ["/bin/busybox", "sleep", str(_PRESTOP_SECONDS)]}}


def _deployment(spec: KubeSpec) -> dict[str, Any]:
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": _PRESTOP_SECONDS + 10,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(spec)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": _TMP_SIZE}}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "labels": _labels(spec)},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": _labels(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": _labels(spec)}, "spec": pod},
        },
    }


def _service(spec: KubeSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "labels": _labels(spec)},
        "spec": {
            "type": "ClusterIP",
            "selector": _labels(spec),
            "ports": [{"name": "http", "port": spec.service_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _disruption_budget(spec: KubeSpec) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": spec.name, "labels": _labels(spec)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(spec)}},
    }


def kube_manifests(spec: KubeSpec) -> list[dict[str, Any]]:
    """The Deployment, Service and PodDisruptionBudget that serve ``spec.image``."""
    _check(spec)
    return [_deployment(spec), _service(spec), _disruption_budget(spec)]


def render_yaml(documents: list[dict[str, Any]]) -> str:
    """One YAML stream (``---`` between documents), keys in the order they were built."""
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, explicit_start=True)
