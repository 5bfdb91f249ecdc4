"""docker-compose.yml: the cluster profile is a real three-node Qdrant cluster the app points at.

No Docker engine runs in CI, so the file is checked as written (PyYAML resolves its anchors) and,
where Debian's docker-compose is installed, by `docker-compose config`, which validates it
against the Compose schema and resolves the profiles without starting anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
NODES = ("qdrant-node1", "qdrant-node2", "qdrant-node3")


def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_the_cluster_profile_has_three_nodes_that_find_each_other() -> None:
    found = services()
    for node in NODES:
        assert found[node]["profiles"] == ["cluster"]
        assert found[node]["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        command = found[node]["command"]
        assert command[command.index("--uri") + 1] == f"http://{node}:6335"
    assert "--bootstrap" not in found["qdrant-node1"]["command"]
    for node in NODES[1:]:
        command = found[node]["command"]
        assert command[command.index("--bootstrap") + 1] == "http://qdrant-node1:6335"
    published = [port for node in NODES for port in found[node].get("ports", [])]
    assert not [port for port in published if port.endswith(":6335")]  # peers' port stays inside


def test_the_cluster_app_spreads_new_collections_over_the_nodes() -> None:
    app = services()["app-cluster"]
    assert app["profiles"] == ["cluster"]
    assert app["environment"]["UME_QDRANT_URL"] == "http://qdrant-node1:6333"
    assert int(app["environment"]["UME_SHARDS"].split(":-")[-1].rstrip("}")) >= len(NODES)
    assert int(app["environment"]["UME_REPLICAS"].split(":-")[-1].rstrip("}")) >= 2
    assert set(app["depends_on"]) == set(NODES)


def test_the_default_services_stay_outside_any_profile() -> None:
    found = services()
    assert "profiles" not in found["qdrant"] and "profiles" not in found["app"]
    assert found["app"]["environment"]["UME_QDRANT_URL"] == "http://qdrant:6333"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
@pytest.mark.parametrize("profile", [None, "cluster", "gpu"])
def test_docker_compose_accepts_the_file(profile: str | None) -> None:
    command = ["docker-compose", "-f", str(COMPOSE)] + (["--profile", profile] if profile else [])
    done = subprocess.run([*command, "config", "-q"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
