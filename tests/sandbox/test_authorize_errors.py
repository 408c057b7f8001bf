"""The authorize endpoint refuses a broken request with Entra's error page, never a 500.

Before the sandbox's routes answered AadstsError in one place, a request without client_id
(AADSTS900144) escaped the route as an HTTP 500; Entra ID shows a sign-in error page (400).
"""

from __future__ import annotations

from mailgate.testing import SandboxController


def test_authorize_without_client_id_is_an_error_page(sandbox: SandboxController) -> None:
    params = {"redirect_uri": "http://localhost:9", "scope": "openid", "response_type": "code"}
    with sandbox.http() as client:
        url = f"/{sandbox.tenant()['id']}/oauth2/v2.0/authorize"
        shown = client.get(url, params=params)
        posted = client.post(url, data=params)
    for page in (shown, posted):
        assert page.status_code == 400, page.text
        assert "AADSTS900144" in page.text
        assert page.headers["content-type"].startswith("text/html")
