"""schemathesis against the app's own OpenAPI schema: no 500s, responses match the schema.

The schemathesis CLI runs against the real app served on loopback (its pytest plugin does not
support this pytest version); a failing check makes it exit non-zero with a report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from chainlens.settings import Settings, TierLimits
from tests.fake_http import running_http_server
from tests.fake_sendgrid import API_KEY as SENDGRID_KEY
from tests.fake_sendgrid import FakeSendGrid
from tests.fake_stripe import FakeStripe
from tests.live_server import LiveServer
from tests.tools_fakes import FakeSources, fast_http
from web.auth import SESSION_COOKIE, session_cookie_value

pytestmark = pytest.mark.slow
ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[LiveServer]:
    """The app with every feature on: fake data sources, Stripe and SendGrid on loopback."""
    limits = dict(settings.tier_limits)
    limits["free"] = TierLimits(daily=100_000, minute=100_000)  # explore, don't hit quotas
    with (
        running_http_server(FakeStripe) as stripe_url,
        running_http_server(FakeSendGrid) as sendgrid_url,
    ):
        configured = settings.model_copy(
            update={
                "tier_limits": limits,
                "stripe_secret_key": SecretStr("sk_test_fake"),
                "stripe_webhook_secret": SecretStr("whsec_test_secret_0123456789"),
                "stripe_price_pro": "price_pro",
                "stripe_price_enterprise": "price_ent",
                "stripe_api_base": stripe_url,
                "sendgrid_api_key": SecretStr(SENDGRID_KEY),
                "sendgrid_api_base": sendgrid_url,
            }
        )
        server = LiveServer(
            configured, transport=FakeSources().transport(), configure=fast_http
        ).start()
        yield server
        server.stop()


@pytest.mark.timeout(600)
def test_api_conforms_to_its_schema(live: LiveServer, tmp_path: Path) -> None:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is installed with the test extra"
    proc = subprocess.run(
        [
            executable,
            "run",
            f"{live.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,"
            "content_type_conformance,response_schema_conformance",
            "--max-examples",
            "12",
            "--seed",
            "1",
            "--generation-deterministic",
            "--header",
            f"X-Admin-Key: {ADMIN_KEY}",
            # A signed-in visitor, so account-only operations (API keys) are reached too.
            "--header",
            f"Cookie: {SESSION_COOKIE}="
            f"{session_cookie_value(live.settings, 'web:schema@example.com')}",
            # Signature checks are covered with real Stripe signatures in the billing tests.
            "--exclude-path",
            "/api/stripe/webhook",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=tmp_path,
        check=False,
    )
    report = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, report
