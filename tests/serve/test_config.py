"""serve/serve_config.yaml is what operators deploy: a typo in it must fail here, not on a GPU cluster."""
from __future__ import annotations

import os

import yaml

from serve.app import check_app_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shipped() -> dict:
    with open(os.path.join(ROOT, "serve", "serve_config.yaml")) as f:
        return yaml.safe_load(f)


def test_serve_config_fits_rays_schema_and_our_app_args():
    from ray.serve.schema import ServeDeploySchema
    config = shipped()
    ServeDeploySchema.model_validate(config)                             # Ray's own schema of the file
    (app,) = config["applications"]
    assert app["import_path"] == "serve.app:build_app"
    check_app_args(app["args"])
    assert app["args"]["auth"] is True
    assert config["http_options"]["host"] == "127.0.0.1"                 # exposing it is the operator's edit


def test_one_gpu_per_generator_replica_and_the_ingress_on_cpu():
    deployments = {d["name"]: d for d in shipped()["applications"][0]["deployments"]}
    assert set(deployments) == {"generator", "ingress"}                   # names of serve.app's deployments
    generator, ingress = deployments["generator"], deployments["ingress"]
    assert generator["ray_actor_options"]["num_gpus"] == 1 and generator["ray_actor_options"]["num_cpus"] >= 1
    assert ingress["ray_actor_options"].get("num_gpus", 0) == 0 and ingress["ray_actor_options"]["num_cpus"] > 0
    scaling = generator["autoscaling_config"]
    assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"] and scaling["target_ongoing_requests"] > 0
    assert generator["max_ongoing_requests"] >= scaling["target_ongoing_requests"]
