"""EWS reply literals shaped like the examples in Microsoft's EWS operation reference."""

from __future__ import annotations

import base64

NS = 'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
M_T = (
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"'
)


def envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<s:Envelope {NS}><s:Header>"
        '<h:ServerVersionInfo MajorVersion="15" MinorVersion="20" MajorBuildNumber="7" '
        'MinorBuildNumber="0" Version="V2018_01_08" '
        'xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/>'
        "</s:Header>"
        '<s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"{body}</s:Body></s:Envelope>"
    ).encode()


def response(operation: str, inner: str, klass: str = "Success", code: str = "NoError") -> bytes:
    return envelope(
        f"<m:{operation}Response {M_T}><m:ResponseMessages>"
        f'<m:{operation}ResponseMessage ResponseClass="{klass}">'
        f"<m:ResponseCode>{code}</m:ResponseCode>{inner}"
        f"</m:{operation}ResponseMessage></m:ResponseMessages></m:{operation}Response>"
    )


def error(operation: str, code: str, text: str, extra: str = "") -> bytes:
    return envelope(
        f"<m:{operation}Response {M_T}><m:ResponseMessages>"
        f'<m:{operation}ResponseMessage ResponseClass="Error">'
        f"<m:MessageText>{text}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
        f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{extra}"
        f"</m:{operation}ResponseMessage></m:ResponseMessages></m:{operation}Response>"
    )


SERVER_BUSY_FAULT = envelope(
    "<s:Fault>"
    '<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">'
    "a:ErrorServerBusy</faultcode>"
    '<faultstring xml:lang="en-US">The server cannot service this request right now. '
    "Try again later.</faultstring><detail>"
    '<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">'
    "ErrorServerBusy</e:ResponseCode>"
    '<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">'
    "The server cannot service this request right now. Try again later.</e:Message>"
    '<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
    '<t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml>'
    "</detail></s:Fault>"
)

IMPERSONATION_FAULT = envelope(
    "<s:Fault>"
    '<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">'
    "a:ErrorImpersonateUserDenied</faultcode>"
    '<faultstring xml:lang="en-US">The account does not have permission to impersonate '
    "the requested user.</faultstring><detail>"
    '<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">'
    "ErrorImpersonateUserDenied</e:ResponseCode></detail></s:Fault>"
)

FIND_FOLDER = response(
    "FindFolder",
    '<m:RootFolder IndexedPagingOffset="4" TotalItemsInView="4" IncludesLastItemInRange="true">'
    "<t:Folders>"
    '<t:Folder><t:FolderId Id="F-INBOX" ChangeKey="A1"/><t:ParentFolderId Id="F-ROOT"/>'
    "<t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>Inbox</t:DisplayName>"
    "<t:TotalCount>3</t:TotalCount><t:ChildFolderCount>1</t:ChildFolderCount>"
    "<t:UnreadCount>1</t:UnreadCount></t:Folder>"
    '<t:Folder><t:FolderId Id="F-INV" ChangeKey="A2"/><t:ParentFolderId Id="F-INBOX"/>'
    "<t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>Invoices</t:DisplayName>"
    "<t:TotalCount>0</t:TotalCount><t:UnreadCount>0</t:UnreadCount></t:Folder>"
    '<t:CalendarFolder><t:FolderId Id="F-CAL"/><t:ParentFolderId Id="F-ROOT"/>'
    "<t:FolderClass>IPF.Appointment</t:FolderClass><t:DisplayName>Calendar</t:DisplayName>"
    "</t:CalendarFolder>"
    '<t:Folder><t:FolderId Id="F-DEL"/><t:ParentFolderId Id="F-ROOT"/>'
    "<t:DisplayName>Deleted Items</t:DisplayName></t:Folder>"
    "</t:Folders></m:RootFolder>",
)


def find_item(ids: list[str], offset: int, last: bool) -> bytes:
    items = "".join(
        f'<t:Message><t:ItemId Id="{i}" ChangeKey="CK-{i}"/>'
        f"<t:DateTimeReceived>2024-05-0{n + 1}T08:00:00Z</t:DateTimeReceived></t:Message>"
        for n, i in enumerate(ids)
    )
    return response(
        "FindItem",
        f'<m:RootFolder IndexedPagingOffset="{offset}" TotalItemsInView="9" '
        f'IncludesLastItemInRange="{str(last).lower()}"><t:Items>{items}</t:Items></m:RootFolder>',
    )


GET_ITEM = response(
    "GetItem",
    "<m:Items><t:Message>"
    '<t:ItemId Id="AAMk1=" ChangeKey="CQ1"/><t:Subject>Invoice 4711</t:Subject>'
    "<t:DateTimeReceived>2024-05-01T08:00:00Z</t:DateTimeReceived><t:Size>11234</t:Size>"
    "<t:HasAttachments>true</t:HasAttachments>"
    "<t:ToRecipients><t:Mailbox><t:Name>Alice</t:Name>"
    "<t:EmailAddress>alice@contoso.example</t:EmailAddress>"
    "<t:RoutingType>SMTP</t:RoutingType></t:Mailbox>"
    "<t:Mailbox><t:EmailAddress>bob@contoso.example</t:EmailAddress></t:Mailbox>"
    "</t:ToRecipients>"
    "<t:IsRead>false</t:IsRead>"
    "<t:From><t:Mailbox><t:Name>Vendor</t:Name>"
    "<t:EmailAddress>billing@vendor.example</t:EmailAddress></t:Mailbox></t:From>"
    "<t:InternetMessageId>&lt;4711@vendor.example&gt;</t:InternetMessageId>"
    "<t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>"
    "</t:Message></m:Items>",
)

MOVE_ITEM = response(
    "MoveItem", '<m:Items><t:Message><t:ItemId Id="NEW1=" ChangeKey="CQN"/></t:Message></m:Items>'
)

GET_FOLDER = envelope(
    f"<m:GetFolderResponse {M_T}><m:ResponseMessages>"
    + "".join(
        '<m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
        f'</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="{i}"/></t:Folder></m:Folders>'
        "</m:GetFolderResponseMessage>"
        for i in ("F-INBOX", "F-DEL")
    )
    + "</m:ResponseMessages></m:GetFolderResponse>"
)


def sync(state: str, last: bool, creates: list[str], deletes: list[str] = ()) -> bytes:  # type: ignore[assignment]
    changes = "".join(
        f'<t:Create><t:Message><t:ItemId Id="{i}" ChangeKey="CK"/></t:Message></t:Create>'
        for i in creates
    ) + "".join(f'<t:Delete><t:ItemId Id="{i}"/></t:Delete>' for i in deletes)
    return response(
        "SyncFolderItems",
        f"<m:SyncState>{state}</m:SyncState>"
        f"<m:IncludesLastItemInRange>{str(last).lower()}</m:IncludesLastItemInRange>"
        f"<m:Changes>{changes}"
        '<t:ReadFlagChange><t:ItemId Id="R1"/><t:IsRead>true</t:IsRead></t:ReadFlagChange>'
        "</m:Changes>",
    )


MIME = (
    b"From: billing@vendor.example\r\nTo: alice@contoso.example\r\nSubject: Invoice\r\n\r\n"
    + b"line of body text \xe2\x82\xac\r\n" * 300
)


def get_item_mime(mime: bytes = MIME, wrap: int = 76) -> bytes:
    text = base64.b64encode(mime).decode()
    lines = "\r\n".join(text[i : i + wrap] for i in range(0, len(text), wrap))
    return response(
        "GetItem",
        '<m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">'
        f'{lines}</t:MimeContent><t:ItemId Id="AAMk1=" ChangeKey="CQ1"/></t:Message></m:Items>',
    )
