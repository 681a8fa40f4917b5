"""``minimirror kube``: the manifests promise what a production mirror needs, print the same bytes each time, and
refuse a bad name in one line. (They run for real under ``podman kube play`` in test_image_runtime.py.)"""

from __future__ import annotations

import pytest
import yaml

from minimirror.cli import main

REF = "127.0.0.1:5000/mirror@sha256:" + "a" * 64


def _print(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["kube", "--image", REF, *args]) == 0
    return capsys.readouterr().out


def test_deployment_service_and_budget(capsys: pytest.CaptureFixture[str]) -> None:
    text = _print(capsys, "--replicas", "3", "--name", "apt-mirror")
    assert "&id" not in text and "*id" not in text  # no YAML anchors: every tool reads it
    deployment, service, budget = yaml.safe_load_all(text)
    spec = deployment["spec"]
    assert (deployment["apiVersion"], deployment["metadata"]["name"], spec["replicas"]) == ("apps/v1", "apt-mirror", 3)
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"] == service["spec"]["selector"]
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == REF and container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    ]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsUser"] == 65534
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[:2] == ["/bin/busybox", "sleep"] and int(sleep[2]) < pod["terminationGracePeriodSeconds"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]  # the one writable place
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert (budget["apiVersion"], budget["spec"]["maxUnavailable"]) == ("policy/v1", 1)
    assert budget["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert _print(capsys, "--replicas", "3", "--name", "apt-mirror") == text  # the same bytes each time


def test_the_nginx_image_sleeps_before_stop_with_the_kubelets_sleep_action(capsys: pytest.CaptureFixture[str]) -> None:
    deployment, _, _ = yaml.safe_load_all(_print(capsys, "--server", "nginx"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}  # no busybox in that image
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--name", "Apt_Mirror"], "not a Kubernetes name"), (["--image", "a b"], "give an image reference")],
)
def test_bad_options_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    argv = ["kube", "--image", REF, *args] if args[0] == "--name" else ["kube", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
