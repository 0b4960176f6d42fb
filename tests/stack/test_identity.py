"""The stack's identity provider: Keycloak's realm `forge`, its clients, and OpenLDAP federated into it.

Every user signs in with a password checked by an LDAP bind (the realm stores none), so a login here
proves the federation; the LDAP group `platform-admins` becomes the realm role `platform-admin`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from forge_cli.identity import service_client_id
from forge_cli.stack import Stack
from forge_kit.stack_env import SERVICES, StackSettings, read_env_file

SEEDED_USERS = {"ada", "demo", "tom", "pat", "eli", "ann", "rey", "sam", "vic", "mal"}


def _token_url(settings: StackSettings) -> str:
    return f"{settings.oidc_issuer}/protocol/openid-connect/token"


def _password_grant(settings: StackSettings, username: str, password: str) -> httpx.Response:
    return httpx.post(
        _token_url(settings),
        data={
            "grant_type": "password",
            "client_id": settings.cli_client_id,
            "username": username,
            "password": password,
        },
        timeout=30,
    )


def _verified_claims(settings: StackSettings, access_token: str) -> dict[str, Any]:
    """The token's claims, after checking its RS256 signature against the realm's JWKS, the issuer and
    the audience, as a service would."""
    keys = jwt.PyJWKClient(f"{settings.oidc_issuer}/protocol/openid-connect/certs")
    key = keys.get_signing_key_from_jwt(access_token)
    claims: dict[str, Any] = jwt.decode(
        access_token,
        key.key,
        algorithms=["RS256"],
        audience=settings.oidc_audience,
        issuer=settings.oidc_issuer,
    )
    return claims


def _sign_in(settings: StackSettings, username: str) -> dict[str, Any]:
    response = _password_grant(settings, username, settings.demo_password.get_secret_value())
    assert response.status_code == 200, response.text
    return _verified_claims(settings, response.json()["access_token"])


def test_the_env_file_names_the_identity_provider(stack: Stack, stack_settings: StackSettings) -> None:
    env = read_env_file(stack.env_file)
    keycloak = f"http://127.0.0.1:{stack.ports.keycloak}"
    assert env["FORGE_KEYCLOAK_URL"] == keycloak
    assert env["FORGE_OIDC_ISSUER"] == f"{keycloak}/realms/forge"
    assert env["FORGE_OIDC_AUDIENCE"] == "forge"
    assert env["FORGE_LDAP_URL"] == f"ldap://127.0.0.1:{stack.ports.ldap}"
    assert env["FORGE_LDAP_BASE_DN"] == "dc=forge,dc=local"
    assert env["FORGE_LDAP_ADMIN_DN"] == "cn=admin,dc=forge,dc=local"
    assert (env["FORGE_CLI_CLIENT_ID"], env["FORGE_CONSOLE_CLIENT_ID"]) == ("forge-cli", "forge-console")
    assert (env["FORGE_KEYCLOAK_ADMIN_USER"], env["FORGE_DEMO_USER"]) == ("admin", "demo")
    for name in ("FORGE_KEYCLOAK_ADMIN_PASSWORD", "FORGE_LDAP_ADMIN_PASSWORD", "FORGE_DEMO_PASSWORD"):
        assert len(env[name]) >= 16, name
    for service in SERVICES:
        client_id, secret = stack_settings.service_client(service)
        assert client_id == f"forge-{service}"
        assert secret.get_secret_value() == env[f"FORGE_{service.upper()}_CLIENT_SECRET"] != ""


def test_discovery_and_an_rs256_signing_key_are_served(stack_settings: StackSettings) -> None:
    discovery = httpx.get(f"{stack_settings.oidc_issuer}/.well-known/openid-configuration", timeout=10)
    assert discovery.status_code == 200
    document = discovery.json()
    assert document["issuer"] == stack_settings.oidc_issuer
    assert "urn:ietf:params:oauth:grant-type:device_code" in document["grant_types_supported"]
    assert "S256" in document["code_challenge_methods_supported"]
    jwks = httpx.get(document["jwks_uri"], timeout=10).json()
    signing = [k for k in jwks["keys"] if k.get("use") == "sig"]
    assert any(k["kty"] == "RSA" and k["alg"] == "RS256" for k in signing), jwks


def test_the_demo_user_signs_in_through_the_cli_client(stack_settings: StackSettings) -> None:
    claims = _sign_in(stack_settings, "demo")  # signature, issuer and audience checked
    assert claims["preferred_username"] == "demo"
    assert claims["azp"] == "forge-cli"
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert "forge" in audience
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sub"]  # the `basic` scope is in the realm


def test_a_wrong_password_is_refused(stack_settings: StackSettings) -> None:
    refused = _password_grant(stack_settings, "tom", "not-the-password")
    assert refused.status_code in (400, 401)
    assert refused.json()["error"] == "invalid_grant"
    # The right password still works (and clears the failure the brute-force detector counted).
    assert _sign_in(stack_settings, "tom")["preferred_username"] == "tom"


def test_the_ldap_group_platform_admins_gives_the_realm_role_platform_admin(
    stack_settings: StackSettings,
) -> None:
    assert "platform-admin" in _sign_in(stack_settings, "ada")["realm_access"]["roles"]
    assert "platform-admin" not in _sign_in(stack_settings, "demo")["realm_access"]["roles"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_a_token_by_client_credentials(stack_settings: StackSettings, service: str) -> None:
    client_id, secret = stack_settings.service_client(service)
    granted = httpx.post(
        _token_url(stack_settings),
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret.get_secret_value(),
        },
        timeout=30,
    )
    assert granted.status_code == 200, granted.text
    claims = _verified_claims(stack_settings, granted.json()["access_token"])
    assert claims["azp"] == service_client_id(service)
    assert claims["preferred_username"] == f"service-account-forge-{service}"

    refused = httpx.post(
        _token_url(stack_settings),
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "wrong"},
        timeout=30,
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized_client"


def test_the_cli_client_starts_a_device_authorization(stack_settings: StackSettings) -> None:
    response = httpx.post(
        f"{stack_settings.oidc_issuer}/protocol/openid-connect/auth/device",
        data={"client_id": stack_settings.cli_client_id},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_code"] and body["device_code"]
    assert body["verification_uri"] == f"{stack_settings.oidc_issuer}/device"


def test_the_console_client_requires_pkce_and_redirects_only_to_the_consoles_origins(
    stack_settings: StackSettings,
) -> None:
    auth = f"{stack_settings.oidc_issuer}/protocol/openid-connect/auth"
    console = f"{stack_settings.gateway_url}/"
    params = {
        "client_id": stack_settings.console_client_id,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": console,
        "state": "s",
    }
    without_pkce = httpx.get(auth, params=params, timeout=30)
    assert without_pkce.status_code == 302
    assert "error=invalid_request" in without_pkce.headers["location"]
    assert without_pkce.headers["location"].startswith(console)

    pkce = {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    for redirect in (console, "http://127.0.0.1:5173/"):  # behind the gateway, and Vite's dev server
        login_page = httpx.get(auth, params={**params, **pkce, "redirect_uri": redirect}, timeout=30)
        assert login_page.status_code == 200, redirect
        assert "kc-form-login" in login_page.text or "username" in login_page.text
    for elsewhere in ("http://example.com/", "http://localhost:3000/", f"{console}elsewhere"):
        refused = httpx.get(auth, params={**params, **pkce, "redirect_uri": elsewhere}, timeout=30)
        assert refused.status_code == 400, elsewhere  # "Invalid parameter: redirect_uri", by Keycloak itself

    # The token endpoint answers the console's origin (CORS), and refuses any other.
    token = f"{stack_settings.oidc_issuer}/protocol/openid-connect/token"
    client = stack_settings.console_client_id
    grant = {"grant_type": "refresh_token", "client_id": client, "refresh_token": "x"}
    allowed = httpx.post(token, data=grant, headers={"origin": stack_settings.gateway_url}, timeout=30)
    assert allowed.headers.get("access-control-allow-origin") == stack_settings.gateway_url
    other = httpx.post(token, data=grant, headers={"origin": "http://example.com"}, timeout=30)
    assert other.status_code == 403 and other.headers.get("access-control-allow-origin") is None


def _ldap(tool: str, settings: StackSettings, tmp_path: Path, *args: str, bind_dn: str, password: str) -> str:
    secret = tmp_path / "bind-password"
    secret.write_text(password)  # -y reads it without a trailing newline; never on the command line
    secret.chmod(0o600)
    result = subprocess.run(
        [tool, "-x", "-H", settings.ldap_url, "-D", bind_dn, "-y", str(secret), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ldap_serves_the_seeded_people_and_the_admin_group(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    admin = {
        "bind_dn": stack_settings.ldap_admin_dn,
        "password": stack_settings.ldap_admin_password.get_secret_value(),
    }
    people = _ldap(
        "ldapsearch",
        stack_settings,
        tmp_path,
        "-LLL",
        "-b",
        f"ou=people,{stack_settings.ldap_base_dn}",
        "(objectClass=inetOrgPerson)",
        "uid",
        **admin,
    )
    uids = {line.split(": ", 1)[1] for line in people.splitlines() if line.startswith("uid: ")}
    assert uids == SEEDED_USERS
    group = _ldap(
        "ldapsearch",
        stack_settings,
        tmp_path,
        "-LLL",
        "-b",
        f"ou=groups,{stack_settings.ldap_base_dn}",
        "(cn=platform-admins)",
        "member",
        **admin,
    )
    assert [line for line in group.splitlines() if line.startswith("member: ")] == [
        f"member: uid=ada,ou=people,{stack_settings.ldap_base_dn}"
    ]
    # A seeded user binds with the demo password: the {SSHA} hash was written as LDAP expects it.
    whoami = _ldap(
        "ldapwhoami",
        stack_settings,
        tmp_path,
        bind_dn=f"uid=demo,ou=people,{stack_settings.ldap_base_dn}",
        password=stack_settings.demo_password.get_secret_value(),
    )
    assert whoami.strip() == f"dn:uid=demo,ou=people,{stack_settings.ldap_base_dn}"
