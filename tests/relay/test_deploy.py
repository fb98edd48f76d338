"""docs/deploy.md holds true: its nginx configuration, run by Debian's nginx in front of
a real relay process, carries a whole session over wss://, the WebSocket upgrade, the
real client address, and refuses what it should. Also: every PUENTE_* variable the
deployment files set is one the relay reads.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from protocol import envelope
from protocol.envelope import Role
from relay.cli import build_parser
from tests.support.customer import ScriptedCustomer, technician
from tests.support.relay import RelayProcess, start_relay
from tests.support.services import (
    CertificatePair,
    self_signed_certificate,
    spare_port,
    stop_process,
    wait_for_port,
)
from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy.md"


def documented_nginx_site() -> str:
    """The one ```nginx block of docs/deploy.md, verbatim."""
    blocks = re.findall(r"```nginx\n(.*?)```", DEPLOY.read_text(), re.S)
    assert len(blocks) == 1, "docs/deploy.md should hold exactly one nginx configuration"
    return str(blocks[0])


class Nginx:
    """Debian's nginx running the documented site, adapted only to loopback test ports."""

    def __init__(self, directory: Path, relay_port: int, tls: CertificatePair) -> None:
        self.port = spare_port()
        site = documented_nginx_site()
        replacements = {
            "server 127.0.0.1:8765;": f"server 127.0.0.1:{relay_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{self.port} ssl;",
            "/etc/ssl/puente/relay.crt": str(tls.cert),
            "/etc/ssl/puente/relay.key": str(tls.key),
        }
        for documented, local in replacements.items():
            assert documented in site, f"the documented site no longer says {documented!r}"
            site = site.replace(documented, local)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "site.conf").write_text(site)
        temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        main = f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {directory}/site.conf;
}}
"""
        (directory / "nginx.conf").write_text(main)
        program = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [program, "-p", str(directory), "-c", str(directory / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(self.port)

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)  # type: ignore[arg-type]
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[RelayProcess, Nginx, CertificatePair]]:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (apt install nginx)")
    tls = self_signed_certificate(tmp_path / "tls")
    relay = start_relay(
        tmp_path / "relay-data",
        "--trusted-proxy",
        "127.0.0.1",
        "--public-url",
        "https://relay.example.com",
    )
    try:
        nginx = Nginx(tmp_path / "nginx", relay.port, tls)
    except BaseException:
        relay.stop()
        raise
    try:
        yield relay, nginx, tls
    finally:
        nginx.stop()
        relay.stop()


def test_a_whole_session_through_the_documented_nginx(
    behind_nginx: tuple[RelayProcess, Nginx, CertificatePair], tmp_path: Path
) -> None:
    relay, nginx, tls = behind_nginx
    token = relay.add_technician("Ana Technician")
    out = tmp_path / "diag.json"
    tech = technician(
        nginx.wss, token, "--ca-file", str(tls.cert), "diagnostics", "--ticket", "HD-3",
        "--out", str(out),
    )  # fmt: skip
    code = tech.expect(r"^code: (\d{3,9}-\d{3}-\d{3})$").group(1)
    customer = ScriptedCustomer(
        nginx.wss,
        code,
        tmp_path / "logs",
        answers={"Diagnostics": "y"},
        extra=["--ca-file", str(tls.cert)],
    )
    assert tech.wait(60) == 0, tech.output + tech.stderr
    assert customer.wait(30) == 0, customer.output + customer.stderr
    assert out.exists()
    log = relay.stop()
    assert "session paired" in log and "status=upgrade" in log


def test_nginx_reports_the_real_client_and_refusals_still_hold(
    behind_nginx: tuple[RelayProcess, Nginx, CertificatePair],
) -> None:
    relay, nginx, tls = behind_nginx
    context = ssl.create_default_context(cafile=str(tls.cert))

    async def main() -> None:
        # From 127.0.0.2, claiming to be someone else: nginx replaces the claim.
        async with connect(
            nginx.wss + envelope.WS_PATH,
            ssl=context,
            local_addr=("127.0.0.2", 0),
            additional_headers={"X-Forwarded-For": "203.0.113.9"},
            open_timeout=scaled(5),
        ) as ws:
            await ws.send(envelope.claim(Role.AGENT, "99999"))
            reply = envelope.decode(await asyncio.wait_for(ws.recv(), scaled(5)))
            assert reply["code"] == "unknown_nameplate"
        # A web page from a foreign origin is refused through the proxy too.
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                nginx.wss + envelope.WS_PATH,
                ssl=context,
                origin="https://evil.example",  # type: ignore[arg-type]
                open_timeout=scaled(5),
            ):
                pass
        assert refused.value.response.status_code == 403

    asyncio.run(asyncio.wait_for(main(), scaled(20)))

    # Metrics do not leave the machine through nginx; health does.
    def fetch(path: str) -> int:
        try:
            with urllib.request.urlopen(nginx.wss.replace("wss", "https") + path, context=context):
                return 200
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code

    assert fetch("/metrics") == 404
    assert fetch("//metrics") == 404
    assert fetch("/healthz") == 200
    log = relay.stop()
    assert "claim refused code=unknown_nameplate role=agent nameplate=99999 ip=127.0.0.2" in log
    assert "203.0.113.9" not in log


def test_deployment_files_set_only_variables_the_relay_reads() -> None:
    """A typo in a PUENTE_* name in a manifest would silently be ignored: catch it here."""
    read_by_relay = set(re.findall(r"PUENTE_[A-Z_]+", build_parser().format_help()))
    for action in build_parser()._subparsers._group_actions:  # type: ignore[union-attr]
        for sub in action.choices.values():  # type: ignore[union-attr]
            read_by_relay |= set(re.findall(r"PUENTE_[A-Z_]+", sub.format_help()))
    configuring = [
        ROOT / "installers" / "relay" / "Containerfile",
        ROOT / "installers" / "relay" / "compose.yaml",
        ROOT / "installers" / "kubernetes" / "relay.yaml",
    ]
    for path in {*configuring, *(ROOT / "installers" / "kubernetes").glob("*.yaml")}:
        used = set(re.findall(r"PUENTE_[A-Z_]+", path.read_text()))
        assert used or path not in configuring, f"{path} sets no PUENTE_* variable"
        assert used <= read_by_relay, f"{path} sets unknown variables {used - read_by_relay}"


def test_kubernetes_manifests_and_compose_hang_together() -> None:
    """What the docs promise of the manifests: probes, drain, affinity, PDB, node URLs."""
    import yaml

    kube = ROOT / "installers" / "kubernetes"
    docs = [
        doc
        for name in ("relay.yaml", "redis.yaml", "pdb.yaml")
        for doc in yaml.safe_load_all((kube / name).read_text())
    ]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    relay = by_kind[("Deployment", "puente-relay")]
    service = by_kind[("Service", "puente-relay")]
    pdb = by_kind[("PodDisruptionBudget", "puente-relay")]
    assert ("Deployment", "puente-redis") in by_kind and ("Service", "puente-redis") in by_kind
    kustomization = yaml.safe_load((kube / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == ["pdb.yaml", "redis.yaml", "relay.yaml"]

    labels = relay["spec"]["template"]["metadata"]["labels"]
    assert relay["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["sessionAffinity"] == "None"
    assert pdb["spec"]["minAvailable"] < relay["spec"]["replicas"]

    pod = relay["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["PUENTE_NODE_URL"]["value"] == "ws://$(POD_IP):8765"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["PUENTE_REDIS_URL"]["value"].startswith("redis://puente-redis:")
    assert "secretKeyRef" in env["PUENTE_DATABASE_URL"]["valueFrom"]
    assert "secretKeyRef" in env["PUENTE_METRICS_TOKEN"]["valueFrom"]
    assert pod["terminationGracePeriodSeconds"] > float(env["PUENTE_DRAIN_TIMEOUT"]["value"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    compose = yaml.safe_load((ROOT / "installers" / "relay" / "compose.yaml").read_text())
    assert set(compose["services"]) == {"relay", "redis"}
    relay_service = compose["services"]["relay"]
    assert relay_service["environment"]["PUENTE_REDIS_URL"] == "redis://redis:6379/0"
    assert relay_service["stop_signal"] == "SIGTERM"
    assert any(v.endswith(":/var/lib/puente") for v in relay_service["volumes"])
