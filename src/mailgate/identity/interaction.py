"""How an interactive sign-in reaches a person: device-code prompt, browser + local redirect.

The token code asks an :class:`Interaction` for what only a person can give; the CLI uses
:class:`ConsoleInteraction`, the demo and tests pass a ``open_browser`` that signs in to the
sandbox by HTTP instead of a real browser, so the same redirect server is exercised.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from mailgate.errors import InteractionRequiredError

__all__ = ["ConsoleInteraction", "Interaction", "LocalRedirectServer", "NoInteraction"]

_DONE_PAGE = (
    b"<!doctype html><title>mailgate</title><p>Sign-in finished. You can close this window "
    b"and return to mailgate.</p>"
)


class Interaction(Protocol):
    """What an interactive flow needs from a person."""

    def show_device_code(self, flow: Mapping[str, Any]) -> None:
        """Tell the person where to enter the code (``flow['message']``)."""

    def authorize(self, build_auth_uri: Callable[[str], str], redirect_uri: str) -> dict[str, str]:
        """Send the person to ``build_auth_uri(actual_redirect_uri)``; return the redirect's query.

        ``redirect_uri`` is the registered one; for ``http://localhost`` the interaction picks
        the port it listens on (Entra ignores the port of localhost redirect URIs).
        """


class NoInteraction:
    """For unattended runs: any interactive step is an error telling how to sign in."""

    def __init__(self, credential: str) -> None:
        self.credential = credential

    def _refuse(self) -> InteractionRequiredError:
        return InteractionRequiredError(
            f"credential {self.credential!r} needs an interactive sign-in.",
            f"run `mailgate creds login {self.credential}` once in a terminal.",
        )

    def show_device_code(self, flow: Mapping[str, Any]) -> None:
        raise self._refuse()

    def authorize(self, build_auth_uri: Callable[[str], str], redirect_uri: str) -> dict[str, str]:
        raise self._refuse()


class LocalRedirectServer:
    """A one-shot HTTP server on 127.0.0.1 that catches the authorization redirect."""

    def __init__(self, port: int = 0) -> None:
        import http.server  # on use: only an interactive sign-in listens

        result: dict[str, str] = {}
        arrived = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                if "code" in query or "error" in query:
                    result.update(query)
                    arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(_DONE_PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the query carries the authorization code: never log it

        self._server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        self._result = result
        self._arrived = arrived
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}"

    def __enter__(self) -> LocalRedirectServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        if not self._arrived.wait(timeout):
            raise InteractionRequiredError(
                f"no sign-in arrived at {self.redirect_uri} within {int(timeout)} seconds.",
                "run `mailgate creds login` again and finish the sign-in in the browser.",
            )
        return dict(self._result)


class ConsoleInteraction:
    """Prints to the terminal and opens the browser; waits for the local redirect."""

    def __init__(
        self,
        open_browser: Callable[[str], object] | None = None,
        out: Callable[[str], None] | None = None,
        timeout: float = 300.0,
        show_url: bool = True,
    ) -> None:
        if open_browser is None:
            import webbrowser  # on use: a run that never signs in does not load it

            open_browser = webbrowser.open
        self.open_browser = open_browser
        self.out = out or (lambda text: print(text, file=sys.stderr))
        self.timeout = timeout
        self.show_url = show_url

    def show_device_code(self, flow: Mapping[str, Any]) -> None:
        self.out(str(flow.get("message") or flow.get("user_code")))

    def authorize(self, build_auth_uri: Callable[[str], str], redirect_uri: str) -> dict[str, str]:
        port = urlsplit(redirect_uri).port or 0
        with LocalRedirectServer(port) as server:
            auth_uri = build_auth_uri(server.redirect_uri)
            if self.show_url:
                self.out(f"Sign in in your browser. If it does not open, visit:\n{auth_uri}")
            self.open_browser(auth_uri)
            return server.wait(self.timeout)
