"""cluster.yaml passes Ray's own cluster-launcher validation, as `ray up` runs it (no cluster started)."""

from __future__ import annotations

import copy

import yaml

from tests.raynodes import ROOT


def validated(config: dict) -> dict:
    """What `ray up` does before it touches a machine: prepare (defaults, the local provider's node
    type), fill node resources, then validate against Ray's JSON schema and cross-field rules."""
    from ray.autoscaler._private.providers import _get_node_provider_cls
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(config))
    provider = _get_node_provider_cls(config["provider"])
    config = provider.fillout_available_node_types_resources(config)
    validate_config(config)
    return provider.bootstrap_config(config)


def test_cluster_yaml_is_valid():
    """The shipped cluster.yaml validates, and keeps what a sweep needs on every node."""
    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config = validated(raw)
    assert config["provider"]["type"] == "local"
    node_type = config["available_node_types"][config["head_node_type"]]
    assert node_type["min_workers"] == node_type["max_workers"] == len(raw["provider"]["worker_ips"])
    assert any("pip install" in c for c in config["setup_commands"])
    assert any("--include-dashboard=true --dashboard-port=8265" in c for c in config["head_start_ray_commands"])


def test_validation_rejects_a_broken_config():
    """The check has teeth: an unknown top-level field fails Ray's schema."""
    import jsonschema
    import pytest

    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    raw["max_wrokers"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_wrokers"):
        validated(raw)


def test_cloud_variant_in_comments_is_valid():
    """The AWS variant shown in the comments, swapped in, passes the same schema (no AWS call made)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    text = (ROOT / "cluster.yaml").read_text()
    comment = text[text.index("# Cloud variant") :].splitlines()
    cloud = yaml.safe_load("\n".join(line[4:] for line in comment if line.startswith("#   ")))
    config = {
        k: v for k, v in yaml.safe_load(text).items() if k not in ("provider", "auth", "min_workers", "max_workers")
    }
    config.update(cloud)
    config = prepare_config(config)
    validate_config(config)
    assert config["provider"]["type"] == "aws" and config["available_node_types"]["worker"]["max_workers"] == 8
