"""The web console in a real browser: Debian's Chromium driven by Playwright (never a downloaded
browser), against the whole platform as `forge up` runs it — the six services as processes behind the
gateway, which also serves the console, and Keycloak's own sign-in page."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from forge_cli.demo import (
    DemoInputs,
    build_inputs,
    create_scheduler_project,
    publish_base_model,
)
from forge_cli.services import Platform
from forge_cli.stack import Stack
from forge_kit.stack_env import StackSettings, read_env_file
from forge_sdk.auth import SignedIn, password_login
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.harness import VIEWER, demo_tenant, forge_up_platform

CHROMIUM = os.environ.get("FORGE_CHROMIUM", "/usr/bin/chromium")
PARTNER = "demo-partner"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


@dataclass
class Console:
    url: str
    env: dict[str, str]
    tenant: str
    base_model: str
    """The hub's base model as the chain form lists it (`name:version`)."""
    scheduler_project: str
    inputs: DemoInputs
    approver: SignedIn
    viewer: SignedIn

    @property
    def password(self) -> str:
        return self.env["FORGE_DEMO_PASSWORD"]


@pytest.fixture(scope="module")
def platform(stack: Stack) -> Iterator[Platform]:
    with forge_up_platform(stack) as running:
        yield running


@pytest.fixture(scope="module")
async def console(
    platform: Platform, stack: Stack, stack_settings: StackSettings, tmp_path_factory: pytest.TempPathFactory
) -> Console:
    """The demo tenant with the demo user (tenant admin, ML engineer, release approver) and a viewer;
    the hub's tiny base model and a scheduler project with a quota, as `forge demo` prepares them (a
    model hub import and quota pages are later issues); everything else the browser does itself."""
    env = read_env_file(stack.env_file)
    gateway = env["FORGE_GATEWAY_URL"]
    http = {
        name: httpx.AsyncClient(base_url=f"{gateway}/api/{name}", timeout=120)
        for name in ("registry", "scheduler")
    }
    try:
        approver, admin = await demo_tenant(env, http["scheduler"])
        partner = await http["scheduler"].post(
            "/tenants", json={"id": PARTNER, "display_name": "A partner of the demo tenant"}, headers=admin
        )
        assert partner.status_code in (201, 409), partner.text  # a tenant to share datasets with
        inputs = build_inputs(tmp_path_factory.mktemp("console-inputs"))
        name = f"tiny-llama-{uuid.uuid4().hex[:6]}"
        await publish_base_model(http, stack_settings, inputs, caller=approver, name=name)
        project = f"console-{uuid.uuid4().hex[:6]}"
        await create_scheduler_project(http["scheduler"], project, caller=approver, admin=admin)
    finally:
        for client in http.values():
            await client.aclose()
    viewer = SignedIn(password_login(env["FORGE_OIDC_ISSUER"], VIEWER, env["FORGE_DEMO_PASSWORD"]), "demo")
    return Console(
        url=f"{gateway}/",
        env=env,
        tenant=str(approver.tenant),
        base_model=f"{name}:1",
        scheduler_project=project,
        inputs=inputs,
        approver=approver,
        viewer=viewer,
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: infra/local/bootstrap.sh installs Debian's chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        await launched.close()


async def signed_in(
    browser: Browser, console: Console, username: str, locale: str = "en-US", sign_in_button: str = "Sign In"
) -> Page:
    """A fresh browser (no cookies) in which `username` signs in on Keycloak's page (in the language the
    console asked for: the button says `sign_in_button`)."""
    context: BrowserContext = await browser.new_context(
        locale=locale, viewport={"width": 1360, "height": 860}
    )
    page = await context.new_page()
    await page.goto(console.url)
    await page.click("[data-testid=sign-in]")
    # Keycloak's page never reaches network idle: wait on its form (recipes/components.md).
    await page.wait_for_selector("#username", timeout=60_000)
    await page.fill("#username", username)
    await page.fill("#password", console.password)
    await expect(page.locator("#kc-login")).to_have_text(sign_in_button)
    await page.click("#kc-login")
    await page.wait_for_selector("[data-testid=user]", timeout=60_000)
    return page


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/console when FORGE_SCREENSHOTS=1 (to refresh the docs' pictures), else the test's folder."""
    if os.environ.get("FORGE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


def copy_inputs(inputs: DemoInputs, folder: Path) -> list[Path]:
    """The demo's three splits named as the chain expects them (train/validation/test.jsonl)."""
    folder.mkdir(parents=True, exist_ok=True)
    named = []
    for name, path in (("train", inputs.train), ("validation", inputs.validation), ("test", inputs.test)):
        target = folder / f"{name}.jsonl"
        shutil.copyfile(path, target)
        named.append(target)
    return named
