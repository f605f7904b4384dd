"""The web console in a real browser (Debian's chromium, driven by Playwright): cookie
login, a session's life seen live on the event stream, and an EventSource that resumes
after an API restart without duplicates. docs/console.md."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from playwright.async_api import Browser, Page, async_playwright, expect

from kubernel import resource as r
from kubernel_api import keypairs as kp
from kubernel_testkit.processes import REPO
from kubernel_testkit.waiting import wait_until

from ..api_process import ApiProcess
from ..conftest import create_keypairs

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / ".local" / "artifacts"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium (make test installs it)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def served(kubeconfig: str, namespace: str, kube: client.ApiClient, operator, tmp_path: Path):
    keypairs = await create_keypairs(kube, namespace)
    api = ApiProcess(kubeconfig, namespace, tmp_path)
    api.start()
    yield api, keypairs
    api.stop()


async def log_in(page: Page, base_url: str, keypair: kp.Keypair) -> None:
    await page.goto(base_url + "/console/")
    await page.get_by_label("Access key").fill(keypair.access_key)
    await page.get_by_label("Secret key").fill(keypair.secret_key)
    await page.get_by_role("button", name="Log in").press("Enter")  # from the keyboard
    await expect(page.locator("#who")).to_have_text(f"{keypair.access_key} (user)")
    await expect(page.locator("#stream-state")).to_have_text("live")


def timeline(page: Page):
    return page.locator("#timeline li")


async def test_a_sessions_life_in_the_console(
    browser: Browser, served: tuple[ApiProcess, dict[str, kp.Keypair]], kube: client.ApiClient, namespace: str
) -> None:
    api, keypairs = served
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(page, api.base_url, keypairs["alice"])

    # A wrong input is shown with the API's problem title.
    await page.get_by_label("Session name").fill("web-01")
    await page.get_by_label("Memory").fill("64x")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("alert")).to_contain_text("Missing or invalid API parameters.")

    await page.get_by_label("Memory").fill("1g")
    await page.get_by_role("button", name="Create").click()
    row = page.locator('tr[data-session="web-01"]')
    await expect(row.locator(".status")).to_have_text("RUNNING", timeout=30_000)
    await page.get_by_role("button", name="Timeline of web-01").click()
    await expect(timeline(page).filter(has_text="kernel_started")).to_have_count(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

    await page.get_by_role("button", name="Restart web-01").click()
    await expect(timeline(page).filter(has_text="kernel_started (restarting)")).to_have_count(
        1, timeout=30_000
    )

    # The API restarts under the open console; meanwhile the session is restarted again
    # (straight on its KernelSession). EventSource reconnects with Last-Event-ID and
    # gets what it missed, once.
    before = await timeline(page).count()
    api.stop()
    await expect(page.locator("#stream-state")).to_have_text("reconnecting")
    custom = client.CustomObjectsApi(kube)
    name = r.session_name(keypairs["alice"].access_key, "web-01")
    await custom.patch_namespaced_custom_object(
        r.GROUP,
        r.VERSION,
        namespace,
        r.PLURAL,
        name,
        {"spec": {"restartCount": 2}},
        _content_type="application/merge-patch+json",
    )

    async def restarted_twice() -> bool:
        body = await custom.get_namespaced_custom_object(r.GROUP, r.VERSION, namespace, r.PLURAL, name)
        return (body.get("status") or {}).get("observedRestart") == 2 and body["status"]["phase"] == "Running"

    await wait_until(restarted_twice, timeout=30, what="the second restart done while the API was down")
    api.start()
    await expect(page.locator("#stream-state")).to_have_text("live", timeout=20_000)
    await expect(timeline(page).filter(has_text="kernel_started (restarting)")).to_have_count(
        2, timeout=20_000
    )

    await page.get_by_role("button", name="Destroy web-01").click()
    await expect(timeline(page).filter(has_text="kernel_terminated")).to_have_count(1, timeout=30_000)
    await expect(row.locator(".status")).to_have_text("TERMINATED")
    ids = await page.evaluate("[...document.querySelectorAll('#timeline li')].map((li) => li.dataset.id)")
    assert len(ids) > before and len(ids) == len(set(ids)), f"duplicated stream messages: {ids}"
    assert errors == []
