"""``minimirror kube``: print Kubernetes manifests that serve a mirror image (:mod:`minimirror.image.kube`)."""

from __future__ import annotations

import click

from minimirror.cli._common import out_console

__all__ = ["kube"]


@click.command("kube")
@click.option(
    "--image",
    "image_ref",
    required=True,
    metavar="REF",
    help="The image to run, best pinned by digest: HOST/NAME@sha256:HEX (what `image --push` prints).",
)
@click.option("--replicas", type=click.IntRange(min=1), default=2, show_default=True, help="Pods serving the mirror.")
@click.option("--name", default="minimirror", show_default=True, help="Name of the Deployment, Service and PDB.")
@click.option(
    "--server",
    type=click.Choice(["busybox", "nginx"]),
    default="busybox",
    show_default=True,
    help="The image's server (`image --server`): the nginx image has no busybox, so preStop uses the kubelet's "
    "sleep action (Kubernetes 1.30+).",
)
def kube(image_ref: str, replicas: int, name: str, server: str) -> None:
    """Print a Deployment (probes on /healthz, non-root, read-only root filesystem, no capabilities, resource
    requests, rolling updates without downtime, an emptyDir at /tmp), a Service on port 80 and a
    PodDisruptionBudget, as YAML.

    Apply with `minimirror kube --image REF | kubectl apply -f -`; a new image digest rolls out pod by pod.
    """
    from minimirror.image.kube import KubeSpec, kube_manifests, render_yaml

    spec = KubeSpec(image_ref, replicas, name, server=server)
    out_console.file.write(render_yaml(kube_manifests(spec)))
