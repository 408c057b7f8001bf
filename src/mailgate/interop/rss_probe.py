"""Fetch one message with ImapMailbox.fetch_mime in this process and report peak RSS growth.

Run as ``python -m mailgate.interop.rss_probe`` with a JSON request on stdin (the token never goes
on the command line); prints ``{"written": n, "growth": bytes}`` where growth is the peak
resident memory after the fetch minus the peak after connecting and searching.
"""

from __future__ import annotations

import asyncio
import json
import resource
import ssl
import sys

from mailgate.protocols.base import SearchCriteria, Security
from mailgate.protocols.imap.adapter import ImapMailbox

__all__ = ["peak_rss", "probe"]


def peak_rss() -> int:
    """Peak resident bytes of this process image.

    /proc's VmHWM belongs to this address space; ru_maxrss is not used first because Linux
    carries the parent's peak into a child across fork and exec (pytest's would mask ours).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def probe(request: dict[str, str]) -> dict[str, int]:
    token = request["token"]

    async def source() -> str:
        return token

    box = ImapMailbox(
        request["address"],
        "127.0.0.1",
        int(request["port"]),
        token_source=source,
        security=Security.TLS,
        ssl_context=ssl.create_default_context(cafile=request["ca_file"]),
    )
    async with box:
        (ref,) = await box.search(request["folder"], SearchCriteria())
        before = peak_rss()
        with open(request["dest"], "wb") as dest:
            written = await box.fetch_mime(ref, dest)
        after = peak_rss()
    return {"written": written, "growth": after - before, "before": before}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(json.loads(sys.stdin.read())))))
