"""EWS on the running sandbox, driven by unmodified exchangelib with sandbox tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from exchangelib import (
    DELEGATE,
    IMPERSONATION,
    OAUTH2,
    Account,
    Configuration,
    FailFast,
    FaultTolerance,
    Folder,
    Mailbox,
    Message,
    OAuth2AuthorizationCodeCredentials,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorInvalidExchangeImpersonationHeaderData,
    ErrorServerBusy,
    UnauthorizedError,
)
from exchangelib.protocol import BaseProtocol, close_connections

from mailgate.testing import SandboxController

from .conftest import DOMAIN, EXCHANGE_DEFAULT, SHARED, Tokens, mailbox, seed_folder

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning"),
]


@pytest.fixture(autouse=True)
def _trust_sandbox_ca(sandbox: SandboxController) -> Iterator[None]:
    # exchangelib's documented seam for custom TLS: its HTTP adapter class.
    ca_file = sandbox.ca_file

    class SandboxAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            kwargs["verify"] = ca_file
            return super().send(request, **kwargs)

    previous = BaseProtocol.HTTP_ADAPTER_CLS
    BaseProtocol.HTTP_ADAPTER_CLS = SandboxAdapter
    yield
    close_connections()
    BaseProtocol.HTTP_ADAPTER_CLS = previous


def account(
    sandbox: SandboxController,
    token: str,
    address: str = SHARED,
    access_type: str = IMPERSONATION,
    retry_policy: Any = None,
) -> Account:
    credentials = OAuth2AuthorizationCodeCredentials(
        access_token={"access_token": token, "token_type": "Bearer"}
    )
    config = Configuration(
        service_endpoint=sandbox.description["mail"]["ews_url"],
        credentials=credentials,
        auth_type=OAUTH2,
        retry_policy=retry_policy or FailFast(),
    )
    return Account(address, access_type=access_type, config=config, autodiscover=False)


@pytest.fixture
def shared(sandbox: SandboxController, tokens: Tokens) -> Account:
    """servicedesk@ through app-only impersonation (full_access_as_app)."""
    return account(sandbox, tokens.app(EXCHANGE_DEFAULT))


def test_folders_and_version(sandbox: SandboxController, shared: Account) -> None:
    assert shared.version.build.major_version == 15
    assert shared.inbox.name == "Inbox" and shared.inbox.total_count >= 3
    names = {f.name for f in shared.msg_folder_root.children}
    assert {"Inbox", "Deleted Items", "Sent Items"} <= names
    created = Folder(parent=shared.inbox, name="Escalations")
    created.save()
    assert created.id
    assert "Escalations" in {f.name for f in shared.inbox.children}
    stored = mailbox(sandbox).folder("Inbox/Escalations")
    assert stored.folder_id == created.id


def test_find_filter_paging_and_mime(sandbox: SandboxController, shared: Account) -> None:
    folder = seed_folder(sandbox, 25, parent="inbox")
    target = shared.inbox / folder.name.rpartition("/")[2]
    query = target.all().order_by("-datetime_received")
    query.page_size = 10
    subjects = [item.subject for item in query]
    assert len(subjects) == 25 and subjects[0] == "Message 24"
    unread = target.filter(is_read=False).values_list("subject", flat=True)
    assert len(list(unread)) == 12
    hits = target.filter(subject__icontains="message 0", is_read=True)
    assert sorted(i.subject for i in hits) == [f"Message 0{n}" for n in (0, 2, 4, 6, 8)]
    stored = mailbox(sandbox).messages(folder.folder_id)[3]
    item = target.get(id=stored.item_id)
    assert item.mime_content == stored.raw
    assert item.sender.email_address == "someone@external.example"


def test_mark_read_move_and_deletes(sandbox: SandboxController, shared: Account) -> None:
    folder = seed_folder(sandbox, 4, parent="inbox")
    target = shared.inbox / folder.name.rpartition("/")[2]
    box = mailbox(sandbox)
    unread = target.get(subject="Message 01")
    unread.is_read = True
    unread.save(update_fields=["is_read"])
    assert box.get(unread.id)[1].is_read

    moved = target.get(subject="Message 00")
    old_id = moved.id
    moved.move(shared.root / "Top of Information Store" / "Archive")
    assert moved.id != old_id and box.get(moved.id)[0].well_known == "archive"

    target.get(subject="Message 02").soft_delete()
    target.get(subject="Message 03").delete()
    trash = [m.subject for m in box.messages("deleteditems")]
    assert "Message 02" in trash and "Message 03" not in trash
    assert [m.subject for m in box.messages(folder.folder_id)] == ["Message 01"]


def test_send_and_send_and_save(sandbox: SandboxController, shared: Account) -> None:
    alice = mailbox(sandbox, f"alice@{DOMAIN}")
    Message(
        account=shared,
        subject="EWS send only",
        body="one",
        to_recipients=[Mailbox(email_address=f"alice@{DOMAIN}")],
    ).send(save_copy=False)
    Message(
        account=shared,
        folder=shared.sent,
        subject="EWS send and save",
        body="two",
        to_recipients=[Mailbox(email_address=f"alice@{DOMAIN}")],
    ).send_and_save()
    received = {m.subject for m in alice.messages("inbox")}
    assert {"EWS send only", "EWS send and save"} <= received
    sent = {m.subject for m in mailbox(sandbox).messages("sentitems")}
    assert "EWS send and save" in sent and "EWS send only" not in sent


def test_sync_folder_items(sandbox: SandboxController, shared: Account) -> None:
    folder = seed_folder(sandbox, 5, parent="inbox")
    target = shared.inbox / folder.name.rpartition("/")[2]
    first = list(target.sync_items(max_changes_returned=2))
    assert len([c for c in first if c[0] == "create"]) == 5
    state = target.item_sync_state
    box = mailbox(sandbox)
    items = box.messages(folder.folder_id)
    box.set_flags(items[0].item_id, add={"\\Flagged"})
    box.remove(items[1].item_id)
    target.item_sync_state = state
    changes = list(target.sync_items())
    kinds = sorted(kind for kind, _ in changes)
    assert kinds == ["delete", "update"]


def test_access_denied_by_application_access_policy(
    sandbox: SandboxController, tokens: Tokens
) -> None:
    alice = account(sandbox, tokens.app(EXCHANGE_DEFAULT), f"alice@{DOMAIN}")
    with pytest.raises(ErrorAccessDenied):
        alice.inbox.refresh()


def test_server_busy_back_off(sandbox: SandboxController, tokens: Tokens) -> None:
    admin = httpx.Client(base_url=sandbox.base_url, verify=sandbox.ssl_context())
    with admin:
        fail_fast = account(sandbox, tokens.app(EXCHANGE_DEFAULT))
        fail_fast.inbox  # noqa: B018 - resolve the folder before the server turns busy
        admin.post("/_sandbox/ews/busy", json={"count": 1, "back_off_ms": 2000, "mailbox": SHARED})
        with pytest.raises(ErrorServerBusy) as info:
            fail_fast.inbox.refresh()
        assert info.value.back_off == 2.0
        patient = account(
            sandbox, tokens.app(EXCHANGE_DEFAULT), retry_policy=FaultTolerance(max_wait=10)
        )
        patient.inbox  # noqa: B018
        admin.post("/_sandbox/ews/busy", json={"count": 1, "back_off_ms": 1000, "mailbox": SHARED})
        patient.inbox.refresh()  # waits the second out, then succeeds
        assert patient.inbox.total_count >= 3


def test_delegated_user_and_shared_mailbox(sandbox: SandboxController, tokens: Tokens) -> None:
    token = tokens.user(["https://outlook.office365.com/EWS.AccessAsUser.All"])
    own = account(sandbox, token, f"alice@{DOMAIN}", access_type=DELEGATE)
    assert own.inbox.total_count >= 5
    approvals = account(sandbox, token, f"approvals@{DOMAIN}", access_type=DELEGATE)
    assert approvals.inbox.total_count >= 3
    bobs = account(sandbox, token, f"bob@{DOMAIN}", access_type=DELEGATE)
    with pytest.raises(ErrorAccessDenied):
        bobs.inbox.refresh()


def test_token_and_impersonation_errors(sandbox: SandboxController, tokens: Tokens) -> None:
    with pytest.raises(UnauthorizedError):
        account(sandbox, "not-a-token").inbox.refresh()
    graph_token = account(sandbox, tokens.app("https://graph.microsoft.com/.default"))
    with pytest.raises(UnauthorizedError):
        graph_token.inbox.refresh()
    no_impersonation = account(sandbox, tokens.app(EXCHANGE_DEFAULT), access_type=DELEGATE)
    with pytest.raises(ErrorInvalidExchangeImpersonationHeaderData):
        no_impersonation.inbox.refresh()
