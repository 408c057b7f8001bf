"""Every error mailgate raises, each with a diagnosis and the remedy for the user.

Hierarchy::

    MailgateError                 message + remedy; CLI exit code 1 unless said otherwise
    ├── ConfigurationError        the user's input or configuration is wrong (exit code 2)
    │   └── InvalidInputError     one field has the wrong form: names the field and the form
    ├── VaultError                the credential vault cannot be read or written
    │   ├── CredentialNotFoundError
    │   └── MasterKeyError        wrong or missing master key
    ├── AuthenticationError       no token could be obtained
    │   ├── IdentityUnavailableError  the identity platform kept failing (5xx/429) after retries
    │   └── TokenRequestError     the identity platform refused (an AADSTS code); subclasses
    │       ├── TenantNotFoundError, ApplicationNotFoundError, ClientCredentialError,
    │       ├── PublicClientFlowsDisabledError, UserCredentialError, AccountBlockedError,
    │       ├── InteractionRequiredError, ConsentRequiredError, InvalidScopeError,
    │       └── ResourceNotFoundError
    ├── AuthorizationError        a token was obtained but does not grant what is needed
    ├── ProtocolError             a server answered something we cannot use
    ├── TransportError            the network or TLS failed
    └── StoreError                the state store failed

Rules: every error carries a ``remedy`` the user can act on; messages never contain a secret;
errors from dependencies are converted with ``raise ... from exc`` so the cause is kept.
"""

from __future__ import annotations

__all__ = [
    "AccountBlockedError",
    "ApplicationNotFoundError",
    "AuthenticationError",
    "AuthorizationError",
    "ClientCredentialError",
    "ConfigurationError",
    "ConsentRequiredError",
    "CredentialNotFoundError",
    "IdentityUnavailableError",
    "InteractionRequiredError",
    "InvalidInputError",
    "InvalidScopeError",
    "MailgateError",
    "MasterKeyError",
    "ProtocolError",
    "PublicClientFlowsDisabledError",
    "ResourceNotFoundError",
    "SecretExpiringWarning",
    "StoreError",
    "TenantNotFoundError",
    "TokenRequestError",
    "TransportError",
    "UserCredentialError",
    "VaultError",
]


class SecretExpiringWarning(UserWarning):
    """The secret or certificate of a credential in use expires within 14 days or has expired.

    Issued (``warnings.warn``) whenever a token is requested for such a credential, so that
    every caller of the Python API hears of it; the CLI prints it as a ``warning:`` line.
    """


class MailgateError(Exception):
    """Base of all mailgate errors: a one-line diagnosis plus what the user should do."""

    exit_code = 1

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message} Fix: {self.remedy}"
        return self.message


class ConfigurationError(MailgateError):
    """The user's input or configuration is wrong; nothing was sent anywhere."""

    exit_code = 2


class InvalidInputError(ConfigurationError):
    """One field has the wrong form. The message names the field and the expected form."""

    def __init__(self, field: str, expected: str, got: str | None = None) -> None:
        shown = f" (got {got!r})" if got is not None else ""
        super().__init__(
            f"{field}: expected {expected}{shown}.",
            f"correct the value of {field}.",
        )
        self.field = field
        self.expected = expected


class VaultError(MailgateError):
    """The credential vault cannot be read or written."""


class CredentialNotFoundError(VaultError):
    """No credential profile has the given name."""

    exit_code = 2


class MasterKeyError(VaultError):
    """The master key is missing, malformed, or not the one the vault was written with."""


class AuthenticationError(MailgateError):
    """No token could be obtained."""


class IdentityUnavailableError(AuthenticationError):
    """The identity platform answered a transient failure (HTTP 5xx or 429) to every attempt.

    ``status`` is the last HTTP status, ``attempts`` how many requests were made. Nothing is
    wrong with the credential; the remedy is to try again later.
    """

    def __init__(self, message: str, remedy: str = "", *, status: int = 0, attempts: int = 0):
        super().__init__(message, remedy)
        self.status = status
        self.attempts = attempts


class TokenRequestError(AuthenticationError):
    """The identity platform refused a token request with an error (usually an AADSTS code).

    ``code`` is the AADSTS number (0 when there was none), ``error`` the OAuth error string;
    ``trace_id`` and ``correlation_id`` are what Microsoft support asks for.
    """

    def __init__(
        self,
        message: str,
        remedy: str = "",
        *,
        code: int = 0,
        error: str = "",
        description: str = "",
        trace_id: str = "",
        correlation_id: str = "",
    ) -> None:
        super().__init__(message, remedy)
        self.code = code
        self.error = error
        self.description = description
        self.trace_id = trace_id
        self.correlation_id = correlation_id

    def __str__(self) -> str:
        text = super().__str__()
        ids = []
        if self.trace_id:
            ids.append(f"trace id {self.trace_id}")
        if self.correlation_id:
            ids.append(f"correlation id {self.correlation_id}")
        return f"{text} ({', '.join(ids)})" if ids else text


class TenantNotFoundError(TokenRequestError):
    """The tenant (directory) does not exist in this cloud or its name is malformed."""


class ApplicationNotFoundError(TokenRequestError):
    """The application (client) id is not registered in the tenant."""


class ClientCredentialError(TokenRequestError):
    """The client secret or certificate was refused (wrong, expired, or malformed assertion)."""


class PublicClientFlowsDisabledError(TokenRequestError):
    """A password or device-code flow was used on an app that does not allow public client flows."""


class UserCredentialError(TokenRequestError):
    """The user name or password is wrong, or the user does not exist."""


class AccountBlockedError(TokenRequestError):
    """The user account is locked, disabled, or its password has expired."""


class InteractionRequiredError(TokenRequestError):
    """The user must sign in interactively (MFA, Conditional Access, revoked session)."""


class ConsentRequiredError(TokenRequestError):
    """Nobody has consented to the permissions the app asks for."""


class InvalidScopeError(TokenRequestError):
    """The scope string was refused by the identity platform."""


class ResourceNotFoundError(TokenRequestError):
    """The resource (API) named in the scope does not exist in the tenant."""


class AuthorizationError(MailgateError):
    """A token was obtained but it does not grant what the operation needs."""


class ProtocolError(MailgateError):
    """A server answered something mailgate cannot use."""


class TransportError(MailgateError):
    """The network or TLS connection failed."""


class StoreError(MailgateError):
    """The state store failed."""
