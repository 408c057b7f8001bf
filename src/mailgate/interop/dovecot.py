"""A self-contained Dovecot 2.3 (IMAP, IMAPS, POP3, POP3S) that accepts sandbox JWTs.

Dovecot validates XOAUTH2/OAUTHBEARER tokens itself (``introspection_mode = local``) with the
sandbox's token-signing public key, written to ``keys/<azp or default>/RS256/<kid>``: tokens
carry ``azp``, so the key is written under every app's client id as well as ``default``. The
``upn`` claim must equal the SASL user. The folders mimic Exchange's (``Deleted Items`` is
\\Trash, ``/`` is the delimiter). Large messages can be put straight into a maildir and fetched
by :mod:`mailgate.interop.rss_probe` in a fresh process that reports its peak memory.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailgate.sandbox.pki import b64url, thumbprint_sha1

__all__ = [
    "MISSING",
    "DovecotServer",
    "big_message",
    "free_port",
    "put",
    "start_dovecot",
    "stream_in_probe",
]

MISSING = (
    "Dovecot is not installed, so the interop tests cannot run. Install it with "
    "`bash .ci/run` (it installs what CI needs) or "
    "`apt-get install dovecot-imapd dovecot-pop3d`."
)

_CONF = """\
instance_name = mailgate-interop
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
default_internal_user = {user}
default_login_user = {user}
default_internal_group = {group}
first_valid_uid = 1
first_valid_gid = 1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = xoauth2 oauthbearer
auth_username_format = %Lu
auth_verbose = yes
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%d/%n/Maildir:LAYOUT=fs
mail_uid = {uid}
mail_gid = {gid}
pop3_uidl_format = %08Xv%08Xu
mail_max_userip_connections = 100
namespace inbox {{
  inbox = yes
  separator = /
  mailbox "Deleted Items" {{
    special_use = \\Trash
    auto = create
  }}
  mailbox "Sent Items" {{
    special_use = \\Sent
    auto = create
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = create
  }}
  mailbox "Junk Email" {{
    special_use = \\Junk
    auto = create
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = create
  }}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%d/%n allow_all_users=yes
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  user = $default_internal_user
}}
service auth-worker {{
  user = $default_internal_user
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""

_OAUTH2 = """\
introspection_mode = local
local_validation_key_dict = fs:posix:prefix={root}/keys/
username_attribute = upn
issuers = {issuers}
client_id = https://outlook.office365.com
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DovecotServer:
    """A running Dovecot; ``ports`` maps imap/imaps/pop3/pop3s to numbers."""

    root: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes]
    uid: int
    gid: int

    @property
    def log(self) -> str:
        path = self.root / "log" / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def maildir(self, address: str, folder: str = "INBOX") -> Path:
        """The maildir of ``folder`` (created), for loading messages without IMAP."""
        local, _, domain = address.lower().partition("@")
        base = self.root / "mail" / domain / local / "Maildir"
        path = base if folder.upper() == "INBOX" else base / folder
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        self.chown(self.root / "mail")
        return path

    def chown(self, top: Path) -> None:
        if os.geteuid() != 0:
            return
        for dirpath, _dirs, files in os.walk(top):
            os.chown(dirpath, self.uid, self.gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), self.uid, self.gid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def _service_user() -> tuple[str, str, int, int]:
    # As root, Dovecot's own unprivileged user owns the mail; otherwise the current user.
    entry = pwd.getpwnam("dovecot") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name, entry.pw_uid, entry.pw_gid


def start_dovecot(sandbox_state: Path, description: dict[str, Any]) -> DovecotServer:
    """Render the config for the sandbox described by ``description`` and start Dovecot."""
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if binary is None:
        raise RuntimeError(MISSING)
    # Not under pytest's 0700 tmp dir: Dovecot's unprivileged processes must reach the maildirs.
    root = Path(tempfile.mkdtemp(prefix="mailgate-dovecot-"))
    root.chmod(0o755)
    user, group, uid, gid = _service_user()
    for sub in ("run", "state", "log", "mail", "keys", "ssl"):
        (root / sub).mkdir()
    pki = sandbox_state / "pki"
    shutil.copy(pki / "server.pem", root / "ssl" / "cert.pem")
    shutil.copy(pki / "server-key.pem", root / "ssl" / "key.pem")
    (root / "ssl" / "key.pem").chmod(0o600)
    signing = x509.load_pem_x509_certificate((pki / "signing.pem").read_bytes())
    public = signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = b64url(thumbprint_sha1(signing))
    owners = ["default"] + [
        app["client_id"] for tenant in description["tenants"] for app in tenant["apps"]
    ]
    for owner in owners:
        for name in ("default", kid):
            path = root / "keys" / owner / "RS256" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(public)
    issuers = " ".join(f"{t['authority']}/" for t in description["tenants"])
    ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
    conf = root / "dovecot.conf"
    conf.write_text(
        _CONF.format(
            root=root,
            user=user,
            group=group,
            uid=uid,
            gid=gid,
            cert=root / "ssl" / "cert.pem",
            key=root / "ssl" / "key.pem",
            **ports,
        )
    )
    (root / "dovecot-oauth2.conf.ext").write_text(_OAUTH2.format(root=root, issuers=issuers))
    if os.geteuid() == 0:
        for sub in ("mail", "keys", "log"):
            shutil.chown(root / sub, uid, gid)
        for dirpath, _dirs, files in os.walk(root / "keys"):
            os.chown(dirpath, uid, gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), uid, gid)
    # The binary found above, run on the config written above: no outside input.
    process = subprocess.Popen(  # noqa: S603
        [binary, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = DovecotServer(root, ports, process, uid, gid)
    for _ in range(200):
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            log = server.log
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"dovecot exited with {process.returncode}: {output}\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", ports["imap"]), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("dovecot did not open its IMAP port within 10 s")


_LINE = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"


def big_message(size: int) -> bytes:
    """A message of at least ``size`` bytes: a few headers and a base64 body."""
    head = (
        b"From: big@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    return head + _LINE * ((size - len(head)) // len(_LINE) + 1)


def put(dovecot: DovecotServer, address: str, folder: str, raw: bytes) -> None:
    """Deliver straight into the maildir (much faster than APPEND for big messages)."""
    path = dovecot.maildir(address, folder) / "new" / f"{os.getpid()}.{len(raw)}.big"
    path.write_bytes(raw)
    dovecot.chown(path.parent)


def stream_in_probe(
    dovecot: DovecotServer, ca_file: str, address: str, token: str, folder: str, dest: Path
) -> subprocess.CompletedProcess[str]:
    """Fetch the one message in ``folder`` with ``fetch_mime`` in a fresh process that reports
    its peak memory growth (``rss_probe``), so this process's history cannot blur the figure."""
    request = {
        "token": token,
        "address": address,
        "port": str(dovecot.ports["imaps"]),
        "ca_file": ca_file,
        "folder": folder,
        "dest": str(dest),
    }
    return subprocess.run(
        [sys.executable, "-m", "mailgate.interop.rss_probe"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
    )
