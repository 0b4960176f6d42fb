"""A user takes a model from upload to delivery in the browser alone: signs in on the identity provider's
page (authorization code + PKCE), creates a dataset and uploads its files with progress, publishes the
version, creates a model project, starts the chain, watches it train and stop at the release gate, and
approves the release; a viewer sees the same chain and is refused the approval, in the page and by the
API. The console also speaks Chinese, remembered per user."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from forge_cli.demo import DemoSetup, chain_body
from playwright.async_api import Browser, Page, Route, expect

from tests.console.conftest import PARTNER, VIEWER, Console, copy_inputs, screenshot_dir, signed_in

STAGE_TIMEOUT_MS = 420_000


async def _stage(page: Page, stage: str) -> None:
    await expect(page.get_by_test_id("chain-stage")).to_have_text(stage, timeout=STAGE_TIMEOUT_MS)


async def test_a_user_takes_a_model_from_upload_to_delivery_in_the_browser_and_a_viewer_cannot_approve(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    page = await signed_in(browser, console, "demo")
    await expect(page.get_by_test_id("user")).to_contain_text("release-approver")
    await expect(page.get_by_test_id("tenant")).to_have_value(console.tenant)

    # A dataset, created and filled in the browser.
    suffix = uuid.uuid4().hex[:6]
    await page.goto(f"{console.url}#/datasets")
    await page.get_by_test_id("new-dataset").click()
    form = page.get_by_test_id("create-dataset")
    await form.locator("input[name=name]").fill(f"support-{suffix}")
    await form.locator("input[name=description]").fill("instructions uploaded from the console")
    await form.locator("button[type=submit]").click()
    await expect(page.get_by_role("heading", name=f"support-{suffix}")).to_be_visible()
    await page.get_by_test_id("new-version").click()
    panel = page.get_by_test_id("version-panel")
    await expect(panel).to_contain_text("draft")
    await page.get_by_test_id("upload-input").set_input_files(copy_inputs(console.inputs, tmp_path / "data"))
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
        await expect(page.get_by_test_id(f"upload-{name}")).to_contain_text("100%")
        await expect(panel.get_by_role("cell", name=name, exact=True)).to_be_visible()
    await page.get_by_test_id("publish").click()
    await expect(panel).to_contain_text("published")
    await expect(panel.locator("pre.preview")).to_contain_text("instruction")  # the records' preview
    stats = panel.get_by_test_id("stats")  # coverage and types of each field
    await expect(stats.get_by_role("row").filter(has_text="instruction")).to_contain_text("string")
    await page.screenshot(path=str(shots / "dataset.png"), full_page=True)

    # A model project, then the chain from the form.
    await page.goto(f"{console.url}#/models")
    await page.get_by_test_id("new-model-project").click()
    await page.get_by_test_id("create-model-project").locator("input[name=name]").fill(f"support-{suffix}")
    await page.get_by_test_id("create-model-project").locator("button[type=submit]").click()
    await expect(page.get_by_role("heading", name=f"support-{suffix}")).to_be_visible()
    gate = page.get_by_test_id("gate")  # a tenant admin sets the project's release gate
    await gate.locator("textarea").fill('{"perplexity": {"max": 1}}')
    await gate.get_by_role("button").click()
    await page.reload()
    await expect(page.get_by_test_id("gate").locator("textarea")).to_have_value(re.compile('"max": 1'))

    await page.goto(f"{console.url}#/chains/new")
    chain_form = page.get_by_test_id("chain-form")
    await chain_form.locator("select[name=dataset_id]").select_option(label=f"support-{suffix}")
    await expect(chain_form.locator("select[name=dataset_version_id] option")).to_have_count(2)  # latest, v1
    await chain_form.locator("select[name=base_model_id]").select_option(label=console.base_model)
    await chain_form.locator("select[name=model_project_id]").select_option(label=f"support-{suffix}")
    scheduler_project = chain_form.locator("select[name=scheduler_project_id]")
    await scheduler_project.select_option(label=console.scheduler_project)
    await chain_form.locator("input[name=model_name]").fill(f"support-{suffix}")
    await chain_form.locator("input[name=max_steps]").fill("8")
    await chain_form.locator("input[name=max_perplexity]").fill("1")  # no model of ours gets there
    await page.screenshot(path=str(shots / "chain-form.png"), full_page=True)
    await page.get_by_test_id("start-chain").click()
    await page.wait_for_url(re.compile(r"#/chains/[0-9a-f-]{36}$"))
    chain_id = page.url.rsplit("/", 1)[1]

    # It trains (progress and loss shown), is evaluated, and waits at the gate.
    await _stage(page, "awaiting_approval")
    await expect(page.get_by_test_id("job-progress")).to_contain_text("8/8")
    await expect(page.get_by_test_id("chain-metrics")).to_contain_text("perplexity")
    stages = await page.get_by_test_id("chain-stages").inner_text()
    for stage in ("allocating", "training", "evaluating", "registering", "gating", "awaiting_approval"):
        assert stage in stages, stages
    link = await page.get_by_test_id("temporal-link").get_attribute("href")
    assert link is not None and f"model-chain%3A{console.tenant}%3A{chain_id}" in link
    await page.screenshot(path=str(shots / "chain-awaiting-approval.png"), full_page=True)

    # A viewer sees the chain but not an approval: the page says why, and the API refuses it.
    viewing = await signed_in(browser, console, VIEWER)
    await viewing.goto(f"{console.url}#/chains/{chain_id}")
    await expect(viewing.get_by_test_id("chain-stage")).to_have_text("awaiting_approval")
    await expect(viewing.get_by_test_id("approve-refused")).to_contain_text("release approvers")
    await expect(viewing.get_by_test_id("approve")).to_have_count(0)
    await expect(viewing.get_by_test_id("new-chain")).to_have_count(0)  # nor start one (no training.run)
    async with httpx.AsyncClient(timeout=30) as http:
        refused = await http.post(
            f"{console.env['FORGE_GATEWAY_URL']}/api/training/chains/{chain_id}/approve-release",
            json={"reason": "a viewer tries"},
            headers=console.viewer,
        )
    assert refused.status_code == 403, refused.text
    await viewing.context.close()

    # The approver releases it; it is delivered, and the audit names the approver.
    await page.get_by_test_id("approve-reason").fill("reviewed by hand on the support set")
    await page.get_by_test_id("approve").click()
    await _stage(page, "delivered")
    await expect(page.get_by_test_id("approved-by")).to_have_text("demo")
    await expect(page.get_by_test_id("bundle-uri")).to_contain_text("s3://")
    await page.screenshot(path=str(shots / "chain-delivered.png"), full_page=True)

    await page.get_by_test_id("model-version-link").click()  # from the chain to what it registered
    audit = page.get_by_test_id("version-audit")
    await expect(audit).to_contain_text("reviewed by hand on the support set")
    await expect(audit).to_contain_text("demo")
    for _ in range(30):  # the registry builds the lineage graph from the services' events
        if "dataset_version" in await page.get_by_test_id("lineage").inner_text():
            break
        await page.reload()
        await page.wait_for_timeout(1000)
    await expect(page.get_by_test_id("lineage")).to_contain_text("dataset_version")

    await expect(page.get_by_test_id("lineage-graph")).to_contain_text("training_job")
    await page.screenshot(path=str(shots / "model-version.png"), full_page=True)

    # The audit trail has the viewer's refused approval, found by the actor.
    await page.goto(f"{console.url}#/audit")
    await page.get_by_test_id("audit-filter").get_by_label("Actor").fill(VIEWER)
    await page.get_by_test_id("audit-filter").get_by_role("button").click()
    trail = page.get_by_test_id("audit")
    for _ in range(30):  # the directory reads the trail from Kafka
        if "approve-release" in (await trail.inner_text() if await trail.count() else ""):
            break
        await page.get_by_test_id("audit-filter").get_by_role("button").click()
        await page.wait_for_timeout(1000)
    await expect(trail).to_contain_text("approve-release")
    await expect(trail).to_contain_text("denied")
    await expect(trail).not_to_contain_text("demo")
    await page.screenshot(path=str(shots / "audit.png"), full_page=True)

    for name, path in (("overview", "#/"), ("chains", "#/chains"), ("jobs", "#/jobs")):
        await page.goto(f"{console.url}{path}")
        await page.wait_for_selector("main table", timeout=30_000)
        await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    await page.context.close()


async def test_the_console_speaks_chinese_remembered_per_user(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    page = await signed_in(
        browser, console, "demo", locale="zh-CN", sign_in_button="登录"
    )  # browser's language
    nav = page.locator("nav.side")
    await expect(nav).to_contain_text("数据集")
    await page.get_by_test_id("locale").select_option("en")
    await expect(nav).to_contain_text("Datasets")
    await page.reload()
    await expect(nav).to_contain_text("Datasets")  # the user's choice outlives the browser's language
    await page.get_by_test_id("locale").select_option("zh-CN")
    await page.goto(f"{console.url}#/chains")
    await expect(page.get_by_role("heading", name="模型流水线")).to_be_visible()
    await page.screenshot(path=str(screenshot_dir(tmp_path) / "chains-zh-CN.png"), full_page=True)
    await page.context.close()


def test_the_console_is_served_by_the_gateway_without_a_token_under_a_strict_policy(
    console: Console,
) -> None:
    index = httpx.get(console.url, timeout=30)
    assert index.status_code == 200 and '<div id="root">' in index.text
    policy = index.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert console.env["FORGE_OIDC_ISSUER"].split("/realms")[0] in policy  # the token endpoint's origin
    assert index.headers["cache-control"] == "no-cache"
    settings = httpx.get(f"{console.url}config.json", timeout=30).json()
    assert settings["issuer"] == console.env["FORGE_OIDC_ISSUER"]
    assert settings["client_id"] == "forge-console"
    script = re.search(r'src="(/assets/[^"]+\.js)"', index.text)
    assert script is not None
    asset = httpx.get(f"{console.url}{script.group(1).lstrip('/')}", headers={"accept-encoding": "gzip"})
    assert asset.headers["content-encoding"] == "gzip"
    assert "immutable" in asset.headers["cache-control"]
    outside = httpx.get(f"{console.url}assets/../../etc/passwd", timeout=30)
    assert outside.status_code in (400, 404)
    assert httpx.get(f"{console.url}api/nothing/here", timeout=30).status_code == 404  # not the console's


async def test_a_job_is_submitted_from_a_yaml_config_file_and_followed_to_the_end_with_its_logs(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    dataset_id, version_id, project_id, base_model_id = await _published_dataset(console, tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text(
        f"""# a LoRA job, as a team keeps it in its repository
name: support-yaml-{uuid.uuid4().hex[:6]}
project_id: {project_id}
base_model: {{id: {base_model_id}}}
dataset:
  dataset_id: {dataset_id}
  version_id: {version_id}
  train_file: train.jsonl
  validation_file: validation.jsonl
hyperparameters:
  max_steps: 6
  learning_rate: 0.02
  lr_schedule: constant
  batch_size: 16
  eval_every_steps: 3
lora: {{rank: 4, alpha: 8}}
"""
    )
    page = await signed_in(browser, console, "demo")
    await page.goto(f"{console.url}#/jobs")
    await page.get_by_test_id("new-job").click()
    await page.get_by_test_id("from-file").check()
    await page.get_by_test_id("config-file").set_input_files(config)
    await expect(page.get_by_test_id("config")).to_have_value(re.compile('"eval_every_steps": 3'))
    await page.get_by_test_id("submit-config").click()
    await page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    await expect(page.locator(".badge").first).to_have_text("succeeded", timeout=STAGE_TIMEOUT_MS)
    await expect(page.get_by_test_id("job-progress")).to_contain_text("6/6")
    await expect(page.get_by_test_id("job-logs")).to_contain_text("step")
    await expect(page.locator("svg.chart").first).to_have_attribute("aria-label", re.compile("eval_loss"))
    await expect(page.locator("svg.chart[aria-label=learning_rate]")).to_have_count(1)  # its own scale
    await page.screenshot(path=str(screenshot_dir(tmp_path) / "job.png"), full_page=True)

    # A config the service refuses shows the problem, and nothing is created.
    await page.goto(f"{console.url}#/jobs/new")
    await page.get_by_test_id("from-file").check()
    await page.get_by_test_id("config").fill('{"name": "no dataset"}')
    await page.get_by_test_id("submit-config").click()
    await expect(page.get_by_role("alert")).to_contain_text("422")
    await page.context.close()


async def _published_dataset(console: Console, tmp_path: Path) -> tuple[str, str, str, str]:
    """A published dataset version with the demo's splits, a model project and the hub's base model,
    made through the API (the browser test above makes them in the page)."""
    gateway = console.env["FORGE_GATEWAY_URL"]
    headers = dict(console.approver)
    async with httpx.AsyncClient(base_url=f"{gateway}/api", timeout=120, headers=headers) as http:
        suffix = uuid.uuid4().hex[:6]
        body = {"name": f"yaml-{suffix}", "modality": "text", "secrecy": "internal", "licence": "cc0-1.0"}
        dataset = (await http.post("/dataset/datasets", json={**body, "source": "upload"})).json()
        version = (await http.post(f"/dataset/datasets/{dataset['id']}/versions")).json()
        base = f"/dataset/datasets/{dataset['id']}/versions/{version['id']}"
        for path in copy_inputs(console.inputs, tmp_path / "splits"):
            put = await http.put(f"{base}/files/{path.name}", content=path.read_bytes())
            assert put.status_code < 300, put.text
        published = await http.post(f"{base}/publish")
        assert published.status_code == 200, published.text
        project = (await http.post("/registry/model-projects", json={"name": f"yaml-{suffix}"})).json()
        models = (await http.get("/registry/base-models")).json()
        base_model = next(m for m in models if f"{m['name']}:{m['version']}" == console.base_model)
    return dataset["id"], version["id"], project["id"], base_model["id"]


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 48), colour).save(path)
    return path


async def test_an_image_dataset_shows_its_pictures_diffs_two_versions_and_is_shared_in_the_browser(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    page = await signed_in(browser, console, "demo")
    name = f"pets-{uuid.uuid4().hex[:6]}"
    await page.goto(f"{console.url}#/datasets")
    await page.get_by_test_id("new-dataset").click()
    form = page.get_by_test_id("create-dataset")
    await form.locator("input[name=name]").fill(name)
    await form.locator("select[name=modality]").select_option("image")
    await form.locator("select[name=secrecy]").select_option("public")
    await form.locator("button[type=submit]").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()

    images = [_png(tmp_path / "cat.png", (200, 120, 40)), _png(tmp_path / "dog.png", (40, 90, 200))]
    for number, dog_label in ((1, "dog"), (2, "puppy")):  # v2 changes one record's label
        records = tmp_path / f"v{number}" / "labels.jsonl"
        records.parent.mkdir()
        records.write_text(
            '{"id": 1, "image": "cat.png", "label": "cat"}\n'
            f'{{"id": 2, "image": "dog.png", "label": "{dog_label}"}}\n'
        )
        await page.get_by_test_id("new-version").click()
        panel = page.get_by_test_id("version-panel")
        await expect(panel).to_contain_text(f"v{number}")
        await page.get_by_test_id("upload-input").set_input_files([*images, records])
        await expect(panel.get_by_role("cell", name="labels.jsonl", exact=True)).to_be_visible()
        await page.get_by_test_id("publish").click()
        await expect(panel).to_contain_text("published")

    # The pictures, fetched with the user's token (an <img> cannot send it) as thumbnails.
    tiles = page.get_by_test_id("media").locator("img")
    await expect(tiles).to_have_count(2)
    width = await tiles.first.evaluate("image => image.naturalWidth")
    assert 0 < width <= 160

    diff = page.get_by_test_id("diff")
    await diff.get_by_placeholder("Key field (optional)").fill("id")
    await page.get_by_test_id("run-diff").click()
    await expect(page.get_by_test_id("diff-summary")).to_contain_text("changed: 1", timeout=120_000)
    await diff.locator("select").last.select_option("changed")
    await expect(diff.locator("pre.preview")).to_contain_text("puppy")
    await page.screenshot(path=str(screenshot_dir(tmp_path) / "dataset-diff.png"), full_page=True)

    sharing = page.get_by_test_id("sharing")
    await sharing.get_by_placeholder("Tenant").fill(PARTNER)
    await sharing.get_by_role("button", name="Share").click()
    await expect(sharing.locator("table")).to_contain_text(PARTNER)
    await sharing.get_by_role("button", name="Revoke").click()
    await expect(sharing.locator("table")).to_have_count(0)  # no grant left
    await page.context.close()


async def test_a_platform_admin_sets_a_quota_in_any_tenant_and_a_tenant_admin_switches_projects(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    admin = await signed_in(browser, console, console.env.get("FORGE_PLATFORM_ADMIN_USER", "ada"))
    await admin.get_by_test_id("tenant").select_option(console.tenant)  # not a member: a platform admin
    await admin.goto(f"{console.url}#/scheduler")
    card = admin.get_by_test_id(f"project-{console.scheduler_project}")
    await card.get_by_label("CPU").fill("3")
    await card.get_by_label("GiB").fill("12")
    await card.get_by_role("button", name="Set quota").click()
    await expect(card.locator("table")).to_contain_text("3.0 CPU")
    await expect(card.locator("table")).to_contain_text("12.0 GiB")
    await admin.screenshot(path=str(screenshot_dir(tmp_path) / "scheduler.png"), full_page=True)
    await admin.context.close()

    tenant_admin = await signed_in(browser, console, "demo")
    await tenant_admin.goto(f"{console.url}#/scheduler")
    card = tenant_admin.get_by_test_id(f"project-{console.scheduler_project}")
    await expect(card.locator("table")).to_contain_text("3.0 CPU")
    await expect(card.get_by_role("button", name="Set quota")).to_have_count(0)  # quotas are the platform's
    name = f"team-{uuid.uuid4().hex[:6]}"
    await tenant_admin.get_by_test_id("project-name").fill(name)  # projects are the tenant's
    await tenant_admin.get_by_test_id("create-project").click()
    await expect(tenant_admin.get_by_test_id(f"project-{name}")).to_be_visible()

    # The project switcher: the pages show the chosen project's resources only.
    chain_id, model_name = await _chain_in(console, console.scheduler_project, tmp_path)
    await tenant_admin.reload()
    await tenant_admin.get_by_test_id("project").select_option(label=name)
    await expect(tenant_admin.get_by_test_id(f"project-{name}")).to_be_visible()
    await expect(tenant_admin.get_by_test_id(f"project-{console.scheduler_project}")).to_have_count(0)
    await tenant_admin.goto(f"{console.url}#/chains")
    await expect(tenant_admin.get_by_role("heading", name="Chains")).to_be_visible()
    await expect(tenant_admin.get_by_test_id("chains")).to_have_count(0)  # none in the new project
    await tenant_admin.get_by_test_id("project").select_option(label=console.scheduler_project)
    await expect(tenant_admin.get_by_test_id("chains")).to_contain_text(model_name)  # the chain's project
    await tenant_admin.goto(f"{console.url}#/chains/new")
    chosen = tenant_admin.get_by_test_id("chain-form").locator("select[name=scheduler_project_id]")
    await expect(chosen.locator("option:checked")).to_have_text(console.scheduler_project)
    await tenant_admin.context.close()
    async with httpx.AsyncClient(timeout=30, headers=dict(console.approver)) as http:
        gateway = console.env["FORGE_GATEWAY_URL"]
        await http.post(f"{gateway}/api/training/chains/{chain_id}/cancel", json={})


async def _chain_in(console: Console, project_name: str, tmp_path: Path) -> tuple[str, str]:
    """A long chain started through the API in the scheduler project named `project_name`: (id, model)."""
    dataset_id, version_id, model_project_id, base_model_id = await _published_dataset(console, tmp_path)
    api = f"{console.env['FORGE_GATEWAY_URL']}/api"
    async with httpx.AsyncClient(base_url=api, timeout=120, headers=dict(console.approver)) as http:
        projects = (await http.get("/scheduler/projects")).json()
        project_id = next(p["id"] for p in projects if p["name"] == project_name)
        setup = DemoSetup(
            console.tenant, "", base_model_id, dataset_id, version_id, model_project_id, project_id
        )
        body = chain_body(setup, {"perplexity": {"max": 1e9}}, max_steps=5000)
        body.pop("base_model_uri")
        started = await http.post("/training/chains", json=body)
        assert started.status_code == 201, started.text
    return started.json()["chain_id"], body["model_name"]


async def test_a_large_file_goes_up_in_parts_a_lost_part_is_resent_and_a_cut_upload_resumes(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    big = tmp_path / "big.jsonl"
    line = '{"text": "' + "x" * 1000 + '"}\n'
    big.write_text(line * (40 * 1024**2 // len(line) + 1))  # 40 MiB: parts of 16, 16 and 8 MiB
    page = await signed_in(browser, console, "demo")
    await page.goto(f"{console.url}#/datasets")
    await page.get_by_test_id("new-dataset").click()
    name = f"big-{uuid.uuid4().hex[:6]}"
    await page.get_by_test_id("create-dataset").locator("input[name=name]").fill(name)
    await page.get_by_test_id("create-dataset").locator("button[type=submit]").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()
    await page.get_by_test_id("new-version").click()
    await expect(page.get_by_test_id("version-panel")).to_contain_text("draft")

    parts: list[str] = []
    page.on("request", lambda r: parts.append(r.url.rsplit("/", 1)[1]) if "/parts/" in r.url else None)
    cut = {"2": 1, "3": 3}  # part 2 is lost once (sent again at once); part 3 three times: the upload stops

    async def lossy(route: Route) -> None:
        number = route.request.url.rsplit("/", 1)[1]
        if cut.get(number, 0) > 0:
            cut[number] -= 1
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/uploads/*/parts/*", lossy)
    await page.get_by_test_id("upload-input").set_input_files(big)
    await expect(page.get_by_role("alert")).to_contain_text("interrupted", timeout=60_000)
    assert parts == ["1", "2", "2", "3", "3", "3"], parts

    # The tab is reloaded and the same file chosen again: only the missing part goes up.
    await page.unroute("**/uploads/*/parts/*")
    parts.clear()
    await page.reload()
    await page.get_by_test_id("open-version-1").click()
    await page.get_by_test_id("upload-input").set_input_files(big)
    panel = page.get_by_test_id("version-panel")
    await expect(panel.get_by_role("cell", name="big.jsonl", exact=True)).to_be_visible(timeout=60_000)
    await expect(page.get_by_test_id("upload-big.jsonl")).to_contain_text("100%")
    assert parts == ["3"], parts
    await expect(panel).to_contain_text("40.0 MiB")
    await page.context.close()
