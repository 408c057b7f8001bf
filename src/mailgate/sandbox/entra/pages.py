"""The few HTML pages a browser sees: sign-in, device login, form_post relay, error.

Plain strings with every value escaped; no template engine is needed for four small forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

__all__ = ["device_login_page", "error_page", "form_post_page", "message_page", "sign_in_page"]

_STYLE = (
    "body{font-family:sans-serif;max-width:28em;margin:3em auto;color:#222}"
    "label{display:block;margin:.6em 0}input[type=text],input[type=password]{width:100%}"
    ".error{color:#a00;white-space:pre-wrap}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}"
        "<p><small>mailgate sandbox — not Microsoft</small></p></body></html>"
    )


def _hidden(values: Mapping[str, str]) -> str:
    return "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in values.items()
    )


def sign_in_page(action: str, params: Mapping[str, str], app_name: str) -> str:
    """The sign-in form; it posts the authorize parameters back with the credentials."""
    hint = params.get("login_hint", "")
    carried = {k: v for k, v in params.items() if k not in ("username", "password", "consent")}
    body = (
        f"<p>Sign in to <b>{escape(app_name)}</b></p>"
        f"<form method='post' action='{escape(action)}'>{_hidden(carried)}"
        f"<label>User name <input type='text' name='username' value='{escape(hint)}'></label>"
        "<label>Password <input type='password' name='password'></label>"
        "<label><input type='checkbox' name='consent' value='yes'> Consent on behalf of"
        " myself to the permissions this app asks for</label>"
        "<button type='submit'>Sign in</button></form>"
    )
    return _page("Sign in", body)


def device_login_page(action: str, error: str = "") -> str:
    """The ``/devicelogin`` page: code, credentials, approve or decline."""
    shown = f"<p class='error'>{escape(error)}</p>" if error else ""
    body = (
        f"{shown}<form method='post' action='{escape(action)}'>"
        "<label>Code <input type='text' name='user_code'></label>"
        "<label>User name <input type='text' name='username'></label>"
        "<label>Password <input type='password' name='password'></label>"
        "<label><input type='checkbox' name='consent' value='yes'> Consent on behalf of"
        " myself</label>"
        "<button type='submit' name='action' value='approve'>Continue</button> "
        "<button type='submit' name='action' value='decline'>Cancel sign-in</button></form>"
    )
    return _page("Enter code", body)


def form_post_page(redirect_uri: str, values: Mapping[str, str]) -> str:
    """``response_mode=form_post``: a form that posts the result to the redirect URI."""
    body = (
        f"<form method='post' action='{escape(redirect_uri)}'>{_hidden(values)}"
        "<noscript><button type='submit'>Continue</button></noscript></form>"
        "<script>document.forms[0].submit()</script>"
    )
    return _page("Working...", body)


def message_page(title: str, text: str) -> str:
    """A page that only tells the user something."""
    return _page(title, f"<p>{escape(text)}</p>")


def error_page(description: str) -> str:
    """The error page shown when a redirect URI cannot be trusted (e.g. AADSTS50011)."""
    return _page(
        "Sorry, but we're having trouble signing you in.",
        (f"<p class='error'>{escape(description)}</p>"),
    )
