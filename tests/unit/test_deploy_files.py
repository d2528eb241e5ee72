"""The deployment files are valid and agree with each other.

No Docker engine runs here, so the compose file, the Dockerfile and the work-pool templates are
checked by parsing them: their structure, that no secret is written in them, and that the names
they share (volumes, networks, pool, image versions, secret variables) match. The shell scripts
of deploy/ are syntax-checked, and the two with logic a user relies on (the image entrypoint
and deploy/secrets.sh) are run.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
WORK_POOLS = DEPLOY / "work-pools"

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{12,}")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")


# -- helpers ----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def strings(node: Any) -> list[str]:
    """Every string value in a parsed YAML document (comments are not values)."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return [node] if isinstance(node, str) else []


def interpolations() -> list[tuple[str, str]]:
    """(variable, modifier) of every ${...} in the compose file's values."""
    return [found for text in strings(compose()) for found in INTERPOLATION.findall(text)]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=value list form
        env = dict(item.partition("=")[::2] for item in env)
    return {str(key): str(value) for key, value in env.items()}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def prefect_default_template(worker_type: str) -> dict[str, Any]:
    """The base job template Prefect ships for a worker type (from its bundled collection
    registry, the same one `prefect work-pool get-default-base-job-template` reads)."""
    import prefect

    registry = Path(prefect.__file__).parent / "server/api/collections_data/views"
    data = json.loads((registry / "aggregate-worker-metadata.json").read_text())
    for workers in data.values():
        for worker in workers.values():
            if worker.get("type") == worker_type:
                return worker["default_base_job_configuration"]
    raise LookupError(worker_type)


@pytest.fixture(scope="module")
def generated_secrets(tmp_path_factory) -> dict[str, Any]:
    """Run deploy/secrets.sh in a scratch repo; return what it wrote, exported and printed."""
    root = tmp_path_factory.mktemp("repo")
    (root / "deploy").mkdir()
    shutil.copy(DEPLOY / "secrets.sh", root / "deploy" / "secrets.sh")
    script = 'source deploy/secrets.sh && python3 -c "import json, os; print(json.dumps(dict(os.environ)))"'
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(root)}
    result = subprocess.run(
        ["bash", "-c", script], cwd=root, env=clean_env, capture_output=True, text=True, check=True
    )
    secrets_file = root / "var" / "secrets.env"
    values = dict(
        line.split("=", 1) for line in secrets_file.read_text().splitlines() if line and line[0] != "#"
    )
    return {
        "root": root,
        "file": secrets_file,
        "values": values,
        "exported": json.loads(result.stdout),
        "stderr": result.stderr,
    }


# -- docker-compose.yml -----------------------------------------------------------------------


def test_compose_has_the_stack_services_each_with_an_image_or_a_build():
    services = compose()["services"]
    assert set(services) == {"prefect-db", "prefect-server", "worker", "labelstudio-db", "labelstudio", "api"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_compose_dependencies_exist_and_wait_for_health():
    services = compose()["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert condition == {"condition": "service_healthy"}, name
            assert "healthcheck" in services[dependency]


def test_compose_named_volumes_are_declared():
    document = compose()
    declared = set(document.get("volumes") or {})
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_compose_writes_no_secret_literally():
    for name, service in compose()["services"].items():
        for key, value in environment(service).items():
            for password in URL_PASSWORD.findall(value):
                assert INTERPOLATION.fullmatch(password), f"{name}: {key} holds a literal password"
            if SECRET_NAME.search(key) and value not in {"true", "false"}:  # not ..._API_TOKEN flags
                assert INTERPOLATION.search(value), f"{name}: {key} is not a ${{...}} interpolation"
                literal = INTERPOLATION.sub("", value)
                assert not TOKEN_LIKE.search(literal), f"{name}: {key} holds a literal secret"
    # a missing secret stops compose (${VAR:?}) instead of starting with an empty one
    for variable, modifier in interpolations():
        assert modifier.startswith(":?"), f"${{{variable}{modifier}}} has no :? guard"


def test_compose_needs_only_secrets_that_deploy_secrets_sh_generates(generated_secrets):
    needed = {variable for variable, _ in interpolations()}
    assert needed
    assert needed <= set(generated_secrets["values"]), needed - set(generated_secrets["values"])


def test_compose_pins_the_versions_the_local_stack_uses():
    services = compose()["services"]
    prefect_version = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())["prefect-version"]
    assert services["prefect-server"]["image"] == f"prefecthq/prefect:{prefect_version}-python3.11"
    ls_version = re.search(
        r"LABEL_STUDIO_VERSION:-([0-9.]+)", (DEPLOY / "labelstudio" / "install.sh").read_text()
    )
    assert services["labelstudio"]["image"] == f"heartexlabs/label-studio:{ls_version.group(1)}"
    prefect_env = environment(services["prefect-server"])
    assert prefect_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    ls_env = environment(services["labelstudio"])
    assert ls_env["DJANGO_DB"] == "default"
    assert ls_env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"


def test_compose_labelgate_services_share_the_label_store():
    document = compose()
    for name in ("worker", "api"):
        service = document["services"][name]
        assert (COMPOSE_FILE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert "labelgate-data:/data" in service["volumes"]
        env = environment(service)
        assert env["LABELGATE_STORE"].startswith("/data/")
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"


def test_compose_worker_applies_the_deployments_to_their_pool():
    command = " ".join(compose()["services"]["worker"]["command"])
    pools = {
        deployment["work_pool"]["name"]
        for deployment in yaml.safe_load((DEPLOY / "prefect.yaml").read_text())["deployments"]
    }
    assert "--prefect-file deploy/prefect.yaml" in command
    for pool in pools:
        assert f"worker start --pool {pool} --type process" in command


# -- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_runs_as_a_non_root_user_with_the_labelgate_entrypoint():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    entrypoints = [json.loads(args) for keyword, args in instructions if keyword == "ENTRYPOINT"]
    assert entrypoints == [["labelgate-entrypoint"]]
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "deploy/docker-entrypoint.sh /usr/local/bin/labelgate-entrypoint" in runs
    assert "pip install" in runs


def test_dockerfile_copies_only_what_exists_and_is_not_dockerignored():
    ignored = {
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword != "COPY":
            continue
        *sources, _destination = args.split()
        for source in sources:
            assert (REPO / source).exists(), source
            assert source.rstrip("/") not in ignored, f"{source} is excluded by .dockerignore"


def test_image_entrypoint_runs_labelgate_or_the_program_a_worker_names(tmp_path):
    for program in ("labelgate", "prefect"):
        stub = tmp_path / program
        stub.write_text(f'#!/bin/sh\necho {program} "$@"\n')
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}

    def run(*args: str) -> str:
        result = subprocess.run(
            ["sh", str(DEPLOY / "docker-entrypoint.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    assert run("serve", "--host", "0.0.0.0") == "labelgate serve --host 0.0.0.0"
    assert run("prefect", "flow-run", "execute") == "prefect flow-run execute"  # Docker/K8s workers
    assert run("labelgate", "labelsets", "list") == "labelgate labelsets list"
    assert run("--help") == "labelgate --help"


# -- work pools -------------------------------------------------------------------------------


@pytest.mark.parametrize("worker_type", ["docker", "kubernetes"])
def test_work_pool_template_is_valid_for_prefect(worker_type):
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect.utilities.schema_tools.validation import validate

    template = json.loads((WORK_POOLS / f"{worker_type}.json").read_text())
    assert {"job_configuration", "variables"} <= set(template)
    # the server's own check: every {{ placeholder }} of job_configuration is a declared variable
    WorkPoolCreate(name=f"labelgate-{worker_type}", type=worker_type, base_job_template=template)
    # our defaults fit the variables' schema
    defaults = {
        key: spec["default"] for key, spec in template["variables"]["properties"].items() if "default" in spec
    }
    validate(defaults, template["variables"], raise_on_error=True, ignore_required=True)
    # nothing of Prefect's default template for that worker type was dropped
    default = prefect_default_template(worker_type)
    assert set(default["job_configuration"]) <= set(template["job_configuration"])
    assert set(default["variables"]["properties"]) <= set(template["variables"]["properties"])


def test_docker_pool_runs_flows_like_the_compose_worker():
    template = json.loads((WORK_POOLS / "docker.json").read_text())
    defaults = {key: spec.get("default") for key, spec in template["variables"]["properties"].items()}
    document = compose()
    assert defaults["image"] == document["services"]["worker"]["image"]
    data_volume = document["volumes"]["labelgate-data"]["name"]
    assert defaults["volumes"] == [f"{data_volume}:/data"]
    assert defaults["networks"] == [document["networks"]["default"]["name"]]
    env = defaults["env"]
    worker_env = environment(document["services"]["worker"])
    for key, value in env.items():
        if SECRET_NAME.search(key):
            # a Prefect Secret block, resolved by the worker when it starts the run
            assert re.fullmatch(r"\{\{ prefect\.blocks\.secret\.[a-z0-9-]+ \}\}", value), key
        else:  # a flow run in its own container sees what the compose worker's runs see
            assert value == worker_env[key], key
    assert {"LABELGATE_STORE", "LABEL_STUDIO_API_KEY", "LABELGATE_WEBHOOK_SECRET"} <= set(env)


def test_kubernetes_pool_takes_secrets_from_the_cluster_and_runs_non_root():
    template = json.loads((WORK_POOLS / "kubernetes.json").read_text())
    manifest = template["job_configuration"]["job_manifest"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "labelgate-secrets"}} in container["envFrom"]
    assert container["securityContext"]["runAsNonRoot"] is True
    env_defaults = template["variables"]["properties"]["env"].get("default", {})
    assert not any(SECRET_NAME.search(key) for key in env_defaults)


# -- shell scripts ----------------------------------------------------------------------------

SCRIPTS = sorted([*DEPLOY.glob("*.sh"), *DEPLOY.glob("*/*.sh")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(REPO)))
def test_deploy_script_parses(script):
    shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
    result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_start_scripts_are_executable():
    for script in SCRIPTS:
        if script.name != "secrets.sh" and script.name != "service-lib.sh":  # sourced, not run
            assert os.access(script, os.X_OK), f"{script.relative_to(REPO)} is not executable"


@contextlib.contextmanager
def _other_service(body: bytes):
    """An HTTP server on a free loopback port that answers every GET with 200 and ``body``."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("script", "env", "body"),
    [
        # Label Studio's /health on the API's port: the status alone would pass it for the API
        (
            "api/start.sh",
            {"LABELGATE_API_PORT": "{port}", "LABELGATE_API_STATE": "{state}"},
            b'{"status": "UP"}',
        ),
        (
            "prefect/start.sh",
            {"PREFECT_PORT": "{port}", "PREFECT_STATE_DIR": "{state}"},
            b"<html>Label Studio</html>",
        ),
    ],
)
def test_a_start_script_refuses_a_port_another_service_answers_on(tmp_path, script, env, body):
    """start_service (deploy/service-lib.sh) knows its server by the body of its health answer:
    a port where another service answers 200 is an error naming it, and nothing is started."""
    with _other_service(body) as port:
        filled = {k: v.format(port=port, state=tmp_path / "state") for k, v in env.items()}
        result = subprocess.run(
            ["bash", str(DEPLOY / script)],
            env={**os.environ, **filled},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "answers HTTP 200 from another service: its port is taken by something that is not" in result.stderr
    )
    assert f"127.0.0.1:{port}/" in result.stderr
    assert not list((tmp_path / "state").glob("*.pid"))  # nothing was started


# -- deploy/secrets.sh ------------------------------------------------------------------------


def test_secrets_are_generated_private_and_never_printed(generated_secrets):
    values = generated_secrets["values"]
    assert stat.S_IMODE(generated_secrets["file"].stat().st_mode) == 0o600
    assert {
        "LABEL_STUDIO_USERNAME",
        "LABEL_STUDIO_PASSWORD",
        "LABEL_STUDIO_API_KEY",
        "LABELGATE_WEBHOOK_SECRET",
        "LABELGATE_API_TOKEN_SUBMIT",
        "LABELGATE_API_TOKEN_READ",
    } <= set(values)
    printed = generated_secrets["stderr"]
    for key, value in values.items():
        if key != "LABEL_STUDIO_USERNAME":
            assert len(value) >= 20
            assert value not in printed


def test_secrets_export_the_api_token_table_with_scopes(generated_secrets):
    exported, values = generated_secrets["exported"], generated_secrets["values"]
    tokens = json.loads(exported["LABELGATE_API_TOKENS"])
    assert tokens == {
        values["LABELGATE_API_TOKEN_SUBMIT"]: ["read", "submit"],
        values["LABELGATE_API_TOKEN_READ"]: ["read"],
    }
    assert exported["LABEL_STUDIO_API_KEY"] == values["LABEL_STUDIO_API_KEY"]


def test_secrets_file_from_an_older_version_keeps_its_values_and_gains_the_new_keys(tmp_path):
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "secrets.sh", tmp_path / "deploy" / "secrets.sh")
    (tmp_path / "var").mkdir()
    old = "LABEL_STUDIO_USERNAME=me@example.org\nLABEL_STUDIO_PASSWORD=old-password-value\n"
    (tmp_path / "var" / "secrets.env").write_text(old)
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    for _ in range(2):  # the second run adds nothing
        subprocess.run(
            ["bash", "-c", "source deploy/secrets.sh"],
            cwd=tmp_path,
            env=clean_env,
            check=True,
            capture_output=True,
        )
    text = (tmp_path / "var" / "secrets.env").read_text()
    assert text.startswith(old)
    keys = [line.split("=", 1)[0] for line in text.splitlines() if line and line[0] != "#"]
    assert len(keys) == len(set(keys))
    assert "LABELGATE_API_TOKEN_SUBMIT" in keys
