"""Deployment files, checked offline: Kubernetes manifests against the API schemas
(kubernetes-validate), the kustomize overlay built by kustomize itself where it is installed,
docker-compose.yml against the Compose Specification schema, the Dockerfile's rules, and the
ConfigMap/Secret templates against chainlens/settings.py.

The overlay is also rendered here by a small kustomize subset (resources, patches with
strategic merge, labels, images, namespace: exactly the features deploy/k8s uses, anything
else refused), so the schema checks run even where no kustomize binary exists; where one
exists, its output must equal this rendering.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from pydantic import SecretStr

from chainlens.cli import main as cli_main
from chainlens.settings import Settings, SettingsError, load_settings
from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
PRODUCTION = K8S / "overlays" / "production"
SECRETS_TEMPLATE = K8S / "secrets.example.yaml"
CONFIGMAP_TEMPLATE = K8S / "base" / "configmap.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE = "registry.example.com/chainlens/chainlens:0.1.0"
# The oldest Kubernetes these manifests are written for, and the newest schema bundled.
K8S_VERSIONS = ("1.29.0", latest_version())

# Plain-string settings that still carry credentials (user:password@host).
CREDENTIAL_URLS = {"DATABASE_URL", "REDIS_URL"}
# Real values a filled-in Secret would hold (the template's placeholders are refused).
FILLED_SECRETS = {
    "SECRET_KEY": "k" * 48,
    "DATABASE_URL": "postgresql://chainlens:pw@postgres.internal:5432/chainlens",
    "REDIS_URL": "redis://:pw@redis.internal:6379/0",
}


# --- a small kustomize -------------------------------------------------------------------

CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "IngressClass",
    "CustomResourceDefinition",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _split_image(image: str) -> tuple[str, str]:
    """("registry:5000/a/b", ":tag") from "registry:5000/a/b:tag" (the tag part may be "")."""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def strategic_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Kubernetes strategic merge for what the patches here use: maps merge key by key,
    lists of named items (containers, ports, volumes...) merge by `name`, other lists and
    scalars are replaced. Directives ($patch, $retainKeys...) are refused, not ignored."""
    for key, value in patch.items():
        if key.startswith("$"):
            raise NotImplementedError(f"strategic-merge directive {key}")
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value)
        elif (
            isinstance(value, list)
            and isinstance(current, list)
            and value
            and all(isinstance(item, dict) and "name" in item for item in value + current)
        ):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    strategic_merge(by_name[item["name"]], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def render(directory: Path) -> list[dict[str, Any]]:
    """What `kustomize build directory` gives, for the features deploy/k8s uses."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unsupported = set(spec) - {
        "apiVersion",
        "kind",
        "namespace",
        "resources",
        "patches",
        "labels",
        "images",
    }
    if unsupported:
        raise NotImplementedError(f"kustomization fields {sorted(unsupported)}")
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        docs.extend(render(path) if path.is_dir() else load_docs(path))
    for patch_entry in spec.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise NotImplementedError(f"patch form {sorted(patch_entry)}")
        for patch in load_docs(directory / patch_entry["path"]):
            targets = [
                doc
                for doc in docs
                if doc["kind"] == patch["kind"]
                and doc["metadata"]["name"] == patch["metadata"]["name"]
            ]
            assert len(targets) == 1, f"patch {patch_entry['path']} matches {len(targets)}"
            strategic_merge(targets[0], patch)
    for doc in docs:
        if "namespace" in spec and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = spec["namespace"]
        for label in spec.get("labels", []):
            if set(label) != {"pairs"}:
                raise NotImplementedError(f"labels options {sorted(label)}")
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
        for image in spec.get("images", []):
            for container in _containers(doc):
                name, tag = _split_image(container["image"])
                if name == image["name"]:
                    new_tag = f":{image['newTag']}" if "newTag" in image else tag
                    container["image"] = image.get("newName", name) + new_tag
    return docs


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] not in POD_TEMPLATE_KINDS:
        return None
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod_spec(doc)
    if pod is None:
        return []
    return [*pod.get("initContainers", []), *pod["containers"]]


def _by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    keyed = {
        (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]): doc
        for doc in docs
    }
    assert len(keyed) == len(docs), "two resources with one kind, namespace and name"
    return keyed


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@functools.cache
def _production_rendered() -> str:
    return json.dumps(render(PRODUCTION) + render(PRODUCTION / "migrate"))


def _production() -> dict[tuple[str, str, str], dict[str, Any]]:
    """The production overlay and its migration Job, rendered once (a fresh copy each call)."""
    return _by_key(json.loads(_production_rendered()))


def _find(kind: str, name: str) -> dict[str, Any]:
    return _production()[(kind, "chainlens", name)]


# --- Kubernetes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "directory",
    [K8S / "base", K8S / "migrate", PRODUCTION, PRODUCTION / "migrate"],
    ids=lambda p: str(p.relative_to(K8S)),
)
def test_kustomize_build_equals_the_rendering_checked_here(directory: Path) -> None:
    command = _kustomize_command()
    if command is None:
        pytest.skip(
            "neither kustomize nor kubectl is installed (optional; the schema tests "
            "below use this module's rendering)"
        )
    built = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    from_kustomize = _by_key([doc for doc in yaml.safe_load_all(built.stdout) if doc])
    assert from_kustomize == _by_key(render(directory))


def test_every_manifest_passes_the_kubernetes_schemas() -> None:
    docs = [
        *render(PRODUCTION),
        *render(PRODUCTION / "migrate"),
        *render(K8S / "base"),
        *render(K8S / "migrate"),
        *load_docs(SECRETS_TEMPLATE),
    ]
    kinds = {doc["kind"] for doc in docs}
    assert kinds >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "Job",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
    }
    for version in K8S_VERSIONS:
        for doc in docs:
            # strict: a field the API does not know (a typo) fails too
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_refuses_a_typo_and_a_wrong_type() -> None:
    web = _find("Deployment", "chainlens-web")
    typo = copy.deepcopy(web)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"periodSeconds": 5}
    wrong_type = copy.deepcopy(web)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_production_overlay_pins_the_image_and_namespace() -> None:
    docs = _production()
    for (kind, namespace, name), doc in docs.items():
        assert namespace == ("" if kind == "Namespace" else "chainlens"), (kind, name)
        for container in _containers(doc):
            assert container["image"] == IMAGE
            assert container["resources"]["requests"] and container["resources"]["limits"]
        pod = _pod_spec(doc)
        if pod is not None:
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == _dockerfile_user()
            assert pod["enableServiceLinks"] is False


def test_web_probes_service_autoscaling_and_disruption_budget() -> None:
    web = _find("Deployment", "chainlens-web")
    pod = web["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["chainlens", "serve"]
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    # liveness must not depend on PostgreSQL/Redis: /metrics is answered by the process alone
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    assert "replicas" not in web["spec"], "the HPA owns the replica count"
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert int(container["lifecycle"]["preStop"]["exec"]["command"][1]) < grace
    assert container["resources"]["requests"]["cpu"], "the HPA's CPU target needs a request"

    service = _find("Service", "chainlens-web")
    selected = service["spec"]["selector"].items()
    assert selected <= pod["metadata"]["labels"].items()
    for name in ("chainlens-worker", "chainlens-discord-bot"):
        other = _find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert not selected <= other.items(), f"the web Service must not route to {name}"
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]

    hpa = _find("HorizontalPodAutoscaler", "chainlens-web")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "chainlens-web",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2

    pdb = _find("PodDisruptionBudget", "chainlens-web")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pdb["spec"]["minAvailable"] >= 1
    ingress = _find("Ingress", "chainlens")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "chainlens-web", "port": {"name": "http"}}


def _env_sources(name: str, kind: str = "Deployment") -> set[str]:
    [container] = _find(kind, name)["spec"]["template"]["spec"]["containers"]
    return {next(iter(ref.values()))["name"] for ref in container["envFrom"]}


def test_each_process_gets_the_tokens_it_uses_and_no_other() -> None:
    # Only the discord-bot pod has the Discord token, so only it opens the gateway; the web
    # replicas answer Telegram through the webhook; the worker sends through both REST APIs.
    assert _env_sources("chainlens-web") == {
        "chainlens-config",
        "chainlens-secrets",
        "chainlens-telegram",
    }
    assert _env_sources("chainlens-discord-bot") == {
        "chainlens-config",
        "chainlens-secrets",
        "chainlens-discord",
    }
    assert _env_sources("chainlens-worker") == {
        "chainlens-config",
        "chainlens-secrets",
        "chainlens-telegram",
        "chainlens-discord",
    }
    # the Job runs before the application's first apply: it needs the Secret alone
    assert _env_sources("chainlens-migrate", "Job") == {"chainlens-secrets"}
    secrets = {
        doc["metadata"]["name"]: set(doc["stringData"]) for doc in load_docs(SECRETS_TEMPLATE)
    }
    assert "DISCORD_BOT_TOKEN" in secrets["chainlens-discord"]
    assert "TELEGRAM_BOT_TOKEN" in secrets["chainlens-telegram"]
    assert not {"DISCORD_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"} & secrets["chainlens-secrets"]
    config = _find("ConfigMap", "chainlens-config")["data"]
    assert config["TELEGRAM_WEBHOOK_URL"].startswith(config["PUBLIC_BASE_URL"])
    assert config["TELEGRAM_WEBHOOK_URL"].endswith("/api/telegram/webhook")
    assert config["SERVE_WORKER"] == "false"


def test_worker_discord_bot_and_migration_job() -> None:
    worker = _find("Deployment", "chainlens-worker")
    assert worker["spec"]["template"]["spec"]["containers"][0]["command"] == ["chainlens", "worker"]
    assert (
        _find("HorizontalPodAutoscaler", "chainlens-worker")["spec"]["scaleTargetRef"]["name"]
        == "chainlens-worker"
    )

    bot = _find("Deployment", "chainlens-discord-bot")
    assert bot["spec"]["replicas"] == 1
    assert bot["spec"]["strategy"] == {"type": "Recreate"}
    targets = {
        doc["spec"]["scaleTargetRef"]["name"]
        for (kind, _, _), doc in _production().items()
        if kind == "HorizontalPodAutoscaler"
    }
    assert "chainlens-discord-bot" not in targets, "one gateway connection per token"

    job = _find("Job", "chainlens-migrate")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["chainlens", "migrate"]
    assert pod["restartPolicy"] == "Never"
    env = {item["name"]: item["value"] for item in pod["containers"][0]["env"]}
    assert env["ENVIRONMENT"] == "production"
    assert float(env["DB_COMMAND_TIMEOUT_S"]) >= 300, "migrations outlast a request's timeout"
    assert job["spec"]["backoffLimit"] >= 1
    # The Job is not part of the main overlay: a Job's template is immutable, so it is
    # replaced and waited for before each rollout (README, Deploy).
    assert ("Job", "chainlens", "chainlens-migrate") not in _by_key(render(PRODUCTION))


def _commands_used() -> set[str]:
    commands = set()
    for doc in _production().values():
        for container in _containers(doc):
            argv = container["command"]
            assert argv[0] == "chainlens"
            commands.add(argv[1])
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    for service in compose["services"].values():
        argv = service.get("command", [])
        if argv and argv[0] == "chainlens":
            commands.add(argv[1])
    return commands


def test_every_command_used_exists() -> None:
    from chainlens.cli import _register_optional_commands

    _register_optional_commands()  # commands of other packages are listed lazily
    existing = set(cli_main.commands)
    missing = _commands_used() - existing
    assert not missing, f"no such chainlens command: {sorted(missing)}"


# --- the settings templates ----------------------------------------------------------------

COMMENTED = re.compile(r'^\s*#\s*([A-Z][A-Z0-9_]+):\s*(".*")\s*$')


def _template_keys(path: Path, kind: str) -> tuple[dict[str, str], dict[str, str]]:
    """(active, commented) keys of the ConfigMap or Secret documents in `path`."""
    field = "data" if kind == "ConfigMap" else "stringData"
    active: dict[str, str] = {}
    for doc in load_docs(path):
        assert doc["kind"] == kind
        for key, value in (doc.get(field) or {}).items():
            assert isinstance(value, str), f"{key}: every value is a string"
            assert key not in active, f"{key} twice"
            active[key] = value
    commented: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = COMMENTED.match(line)
        if match:
            assert match[1] not in commented and match[1] not in active, f"{match[1]} twice"
            commented[match[1]] = yaml.safe_load(match[2])
    return active, commented


def _settings_fields() -> dict[str, bool]:
    """Every setting's variable name -> whether it belongs in a Secret."""
    fields = {}
    for name, info in Settings.model_fields.items():
        secret = "SecretStr" in str(info.annotation) or info.annotation is SecretStr
        fields[name.upper()] = secret or name.upper() in CREDENTIAL_URLS
    return fields


def test_templates_name_every_setting_in_the_right_place() -> None:
    config_active, config_commented = _template_keys(CONFIGMAP_TEMPLATE, "ConfigMap")
    secret_active, secret_commented = _template_keys(SECRETS_TEMPLATE, "Secret")
    in_config = set(config_active) | set(config_commented)
    in_secret = set(secret_active) | set(secret_commented)
    assert not in_config & in_secret
    fields = _settings_fields()
    missing = set(fields) - in_config - in_secret
    assert not missing, f"settings missing from the ConfigMap/Secret templates: {missing}"
    unknown = (in_config | in_secret) - set(fields)
    assert not unknown, f"not settings: {sorted(unknown)}"
    expected = {k: "secret" if v else "config" for k, v in fields.items()}
    for key in in_config:
        assert expected[key] == "config", f"{key} is a secret: it belongs in the Secret"
    for key in in_secret:
        assert expected[key] == "secret", f"{key} is not a secret: it belongs in the ConfigMap"
    # the overlay only changes values, every key it sets is in the base template too
    overlay = load_docs(PRODUCTION / "config.yaml")[0]["data"]
    assert set(overlay) <= in_config


def _load_with_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    fields = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.upper() in fields:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings(_env_file=None)


def test_unedited_secret_template_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _find("ConfigMap", "chainlens-config")["data"]
    secret_active, _ = _template_keys(SECRETS_TEMPLATE, "Secret")
    with pytest.raises(SettingsError) as refused:
        _load_with_env(monkeypatch, {**config, **secret_active})
    for variable in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert f"invalid setting {variable}" in str(refused.value)


def test_filled_in_templates_load_as_production(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _find("ConfigMap", "chainlens-config")["data"]
    secret_active, _ = _template_keys(SECRETS_TEMPLATE, "Secret")
    settings = _load_with_env(monkeypatch, {**config, **secret_active, **FILLED_SECRETS})
    assert settings.environment == "production"
    assert settings.host == "0.0.0.0" and settings.port == 8000  # noqa: S104 - the config read
    assert str(settings.public_base_url) == "https://chainlens.example.com/"
    assert str(settings.chainlens_data_dir) == "/var/lib/chainlens"
    assert settings.secret_key.get_secret_value() == FILLED_SECRETS["SECRET_KEY"]
    assert settings.cors_origins == ["https://chainlens.example.com"]


def test_migration_job_loads_from_the_secret_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    [container] = _find("Job", "chainlens-migrate")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    secret_active, _ = _template_keys(SECRETS_TEMPLATE, "Secret")
    settings = _load_with_env(monkeypatch, {**secret_active, **FILLED_SECRETS, **env})
    assert settings.environment == "production"
    assert settings.db_command_timeout_s == 600


def test_every_commented_value_loads_and_shows_the_real_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = {**_template_keys(CONFIGMAP_TEMPLATE, "ConfigMap")[0], **FILLED_SECRETS}
    commented = {
        **_template_keys(CONFIGMAP_TEMPLATE, "ConfigMap")[1],
        **_template_keys(SECRETS_TEMPLATE, "Secret")[1],
    }
    fields = Settings.model_fields
    checked = 0
    for key, value in commented.items():
        name = key.lower()
        if name not in fields:
            continue  # a pending setting (another branch): checked once it exists
        settings = _load_with_env(monkeypatch, {**base, key: value})
        default = fields[name].get_default(call_default_factory=True)
        if default not in (None, [], {}, ""):
            assert getattr(settings, name) == default, f"# {key}: is not the default"
        else:
            assert getattr(settings, name) not in (None, [], ""), key
        checked += 1
    assert checked >= 40


# --- docker compose ------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def test_compose_services_and_their_channels() -> None:
    services = _compose()["services"]
    assert {"postgres", "redis", "web", "worker", "discord-bot"} <= set(services)
    assert services["web"]["command"][:2] == ["chainlens", "serve"]
    assert services["worker"]["command"] == ["chainlens", "worker"]
    assert services["discord-bot"]["command"][:2] == ["chainlens", "serve"]
    # web applies the migrations (advisory-locked) before it is healthy; the others wait
    assert set(services["web"]["depends_on"]) == {"postgres", "redis"}
    for name in ("worker", "discord-bot"):
        assert services[name]["depends_on"] == {"web": {"condition": "service_healthy"}}
    for name in ("web", "worker", "discord-bot"):
        assert services[name]["environment"]["SERVE_WORKER"] == "false"
        assert services[name]["environment"]["ENVIRONMENT"] == "production"
    # one Discord gateway: web's token is blanked, the bot's Telegram token too
    assert services["web"]["environment"]["DISCORD_BOT_TOKEN"] == ""
    assert services["discord-bot"]["environment"]["TELEGRAM_BOT_TOKEN"] == ""
    assert "DISCORD_BOT_TOKEN" not in services["worker"]["environment"]
    assert "deploy" not in services["discord-bot"] and "scale" not in services["discord-bot"]
    fields = {name.upper() for name in Settings.model_fields}
    for name in ("web", "worker", "discord-bot"):
        assert set(services[name]["environment"]) <= fields, name


@functools.cache
def _compose_validator() -> Any:
    """The Compose Specification's JSON schema as vendored by check-jsonschema (its
    `vendor.compose-spec` builtin, refreshed from compose-spec/compose-spec upstream)."""
    from importlib import resources

    import jsonschema

    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    ).read_text(encoding="utf-8")
    schema = json.loads(text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def _compose_errors(compose: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _compose_validator().iter_errors(compose)
    )


def test_compose_file_follows_the_compose_specification() -> None:
    assert _compose_errors(_compose()) == []


def test_the_compose_schema_check_refuses_what_compose_refuses() -> None:
    # the check is real: a misspelt key, a wrong type and a bad condition are each refused
    for path, value in (
        (("services", "web", "comand"), ["chainlens", "serve"]),
        (("services", "worker", "restart"), ["always"]),
        (("services", "worker", "depends_on", "web", "condition"), "healthy"),
    ):
        broken = copy.deepcopy(_compose())
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert _compose_errors(broken), path


def test_blank_token_turns_a_bot_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # what compose relies on to keep the gateway out of `web`
    from chainlens.serve import channel_plan

    settings = _load_with_env(
        monkeypatch, {**FILLED_SECRETS, "DISCORD_BOT_TOKEN": "", "TELEGRAM_BOT_TOKEN": ""}
    )
    plan = channel_plan(settings)
    assert any(line.startswith("discord: off") for line in plan)
    assert any(line.startswith("telegram: off") for line in plan)


# --- Dockerfile ----------------------------------------------------------------------------


def _dockerfile_stages() -> list[list[dockerfile.Command]]:
    """The Dockerfile's instructions, parsed by BuildKit's own parser, one list per stage."""
    stages: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            stages.append([])
        stages[-1].append(command)
    return stages


def _args(stage: list[dockerfile.Command], instruction: str) -> list[str]:
    return [" ".join(c.flags + c.value) for c in stage if c.cmd == instruction]


def _dockerfile_user() -> int:
    return int(_args(_dockerfile_stages()[-1], "USER")[-1].split(":")[0])


def _healthcheck_code() -> str:
    [check] = [c for c in _dockerfile_stages()[-1] if c.cmd == "HEALTHCHECK"]
    assert check.json and check.value[:3] == ("CMD", "python", "-c")
    return str(check.value[3])


def test_dockerfile_installs_the_wheel_as_a_non_root_production_image() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "a build stage and a run stage"
    for stage in stages:
        for run in _args(stage, "RUN"):
            assert not re.search(r"pip install[^&]*(\s-e\s|--editable)", run), run
    build, run_stage = stages[0], stages[-1]
    assert any("pip wheel" in a for a in _args(build, "RUN"))
    assert any(a.startswith("--from=build") for a in _args(run_stage, "COPY"))
    [install] = [a for a in _args(run_stage, "RUN") if "pip install" in a]
    assert ".whl" in install and "-c /tmp/requirements.lock" in install
    assert not any(a.split()[0] == "." for a in _args(run_stage, "COPY")), (
        "the source tree stays out of the run stage"
    )
    env = [c.value for c in run_stage if c.cmd == "ENV"]
    assert any(
        pair == ("ENVIRONMENT", "production")
        for value in env
        for pair in zip(value[::2], value[1::2], strict=True)
    )
    assert _dockerfile_user() != 0
    order = [c.cmd for c in run_stage]
    assert order.index("USER") > len(order) - 1 - order[::-1].index("RUN"), (
        "USER after the last RUN"
    )
    assert "/api/v1/health" in _healthcheck_code()
    [cmd] = [c for c in run_stage if c.cmd == "CMD"]
    assert cmd.json and cmd.value[:2] == ("chainlens", "serve")


def test_dockerignore_keeps_local_state_out_and_the_build_inputs_in() -> None:
    entries = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {
        ".venv",
        ".env",
        ".git",
        "test-artifacts",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    } <= entries
    assert {"**/__pycache__", "**/*.py[cod]"} <= entries  # __pycache__ and *.pyc anywhere
    for needed in (
        "pyproject.toml",
        "README.md",
        "requirements.lock",
        "migrations",
        "chainlens",
        "web",
    ):
        assert needed not in entries


@pytest.mark.slow
def test_healthcheck_command_passes_on_a_healthy_app_and_fails_on_none(settings: Settings) -> None:
    code = _healthcheck_code()
    live = LiveServer(settings).start()
    try:
        env = {**os.environ, "PORT": str(live.port)}
        ok = subprocess.run(
            [sys.executable, "-c", code], env=env, timeout=30, check=False, capture_output=True
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        live.stop()
    env["PORT"] = str(live.port)  # nothing listens there any more
    down = subprocess.run(
        [sys.executable, "-c", code], env=env, timeout=30, check=False, capture_output=True
    )
    assert down.returncode != 0
