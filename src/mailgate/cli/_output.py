"""Console output and input for the CLI: errors without tracebacks, secrets from safe sources.

rich loads on the first output that needs it, not at start-up: ``console`` and ``err_console``
stand for rich consoles and become one on first use (:func:`rich_console` hands out the real
one for rich's own classes, e.g. a progress bar).

Mail-controlled text (subjects, names, addresses, server replies) reaches the terminal only
through :func:`visible` (or :func:`escape`, :func:`warn`, :func:`print_error`, which apply it):
a control character is shown as its ``\\xNN`` escape, never sent to the terminal to act.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

from mailgate.errors import InvalidInputError, MailgateError, SecretExpiringWarning
from mailgate.secret import Secret

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "console",
    "err_console",
    "escape",
    "json_text",
    "print_error",
    "print_json",
    "progress_bar",
    "read_secret",
    "rich_console",
    "show_library_warnings",
    "visible",
    "warn",
    "warn_once",
]


class _LazyConsole:
    """A rich ``Console`` made on first use."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # emoji=False: a Subject ":warning:" is shown as written, not as rich's emoji.
            self._console = Console(
                stderr=self._stderr, highlight=False, soft_wrap=True, emoji=False
            )
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    # Special methods are looked up on the type, not through __getattr__: rich's live displays
    # (progress bars) enter their console as a context manager.
    def __enter__(self) -> Console:
        return self.get().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self.get().__exit__(*exc_info)


if TYPE_CHECKING:
    console: Console
    err_console: Console
else:
    console = _LazyConsole(stderr=False)
    err_console = _LazyConsole(stderr=True)


def rich_console(which: Console) -> Console:
    """The real rich console behind ``console`` or ``err_console``."""
    return which.get() if isinstance(which, _LazyConsole) else which


# C0 controls, DEL and C1 controls: ESC and CSI (U+009B) start terminal escape sequences, CR
# and BS overwrite what was printed, BEL rings. Shown as Python writes them in a str's repr
# (``\x1b``): plain ASCII that every terminal and log shows, and that says which byte it was.
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_VISIBLE = str.maketrans({code: f"\\x{code:02x}" for code in _CONTROLS})
_VISIBLE_LINES = str.maketrans({code: f"\\x{code:02x}" for code in _CONTROLS if code != 0x0A})


def visible(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character made visible (ESC → ``\\x1b``), so that nothing
    in it is interpreted by the terminal; ``lines=True`` keeps line feeds (messages that are
    several lines on purpose). The text is otherwise unchanged; ``--json`` needs none of this
    (JSON escapes controls itself)."""
    if text.isprintable():  # the common case: one C-level scan, no copy
        return text
    return text.translate(_VISIBLE_LINES if lines else _VISIBLE)


def escape(text: str) -> str:
    """Text to print with markup on: controls made :func:`visible` and rich markup characters
    escaped (subjects and names are never markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(visible(text))


def print_error(exc: MailgateError) -> None:
    """One line for the diagnosis, one for the remedy (none for a plain field error)."""
    # Messages quote user input and server replies: never let them act as rich markup, nor
    # their control characters on the terminal.
    err_console.print(f"[bold red]error:[/] {_escape_lines(exc.message)}", markup=True)
    if exc.remedy and not (isinstance(exc, InvalidInputError) and exc.remedy.startswith("correct")):
        err_console.print(f"  [bold]fix:[/] {_escape_lines(exc.remedy)}", markup=True)
    ids = [
        f"{label} {value}"
        for label, value in (
            ("trace id", getattr(exc, "trace_id", "")),
            ("correlation id", getattr(exc, "correlation_id", "")),
        )
        if value
    ]
    if ids:
        err_console.print(visible("  " + ", ".join(ids)), markup=False)


def _escape_lines(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(visible(text, lines=True))


def warn(text: str) -> None:
    """A ``warning:`` line on stderr; ``text`` may quote mail and server text (made visible)."""
    err_console.print(f"[yellow]warning:[/] {_escape_lines(text)}", markup=True)


_warned: set[str] = set()


def warn_once(text: str) -> None:
    """:func:`warn`, but a warning already given in this run is not repeated."""
    if text not in _warned:
        _warned.add(text)
        warn(text)


def show_library_warnings() -> None:
    """Print the library's own warnings (an expiring secret) as ``warning:`` lines, once each."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, SecretExpiringWarning):
            warn_once(str(message))
        else:
            original(message, category, *args, **kwargs)

    warnings.showwarning = show
    # "always": the CLI dedupes by text itself; Python's once-per-line memory would hide a
    # second credential's warning raised from the same line.
    warnings.simplefilter("always", SecretExpiringWarning)


def json_text(data: Any) -> str:
    """``data`` as indented JSON, except that each record (an object or array inside an
    array) is one compact line.

    Still one JSON document, and easier to scan and grep than ``indent=2``: a report of
    10,000 messages is 10,000 lines, not 70,000. It is also the C encoder's work: ``indent``
    makes :mod:`json` fall back to its pure-Python encoder (80 ms for such a report).
    """
    return _indented(data, "")


_ENCODER = json.JSONEncoder(default=str)  # one instance: json.dumps(default=) makes one a call


def _indented(value: Any, pad: str) -> str:
    inner = pad + "  "
    if isinstance(value, dict) and value:
        fields = ",\n".join(
            # The key as the encoder writes it (1 -> "1", True -> "true").
            f"{inner}{_ENCODER.encode({key: 0})[1:-4]}: {_indented(item, inner)}"
            for key, item in value.items()
        )
        return f"{{\n{fields}\n{pad}}}"
    if isinstance(value, list | tuple) and value:
        records = ",\n".join(inner + _ENCODER.encode(item) for item in value)
        return f"[\n{records}\n{pad}]"
    return _ENCODER.encode(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


def read_secret(
    what: str, *, from_stdin: bool, env_var: str | None, required: bool
) -> Secret | None:
    """A secret from stdin, an environment variable, or a hidden prompt; never from argv."""
    if from_stdin and env_var:
        raise InvalidInputError(what, "either --*-stdin or --*-env, not both")
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise InvalidInputError(f"{what} (from ${env_var})", "a non-empty environment variable")
        return Secret(value)
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInputError(f"{what} (from stdin)", "one non-empty line on standard input")
        return Secret(line)
    if not required:
        return None
    if sys.stdin.isatty():
        value = typer.prompt(what.capitalize(), hide_input=True)
        return Secret(value)
    raise InvalidInputError(
        what, "a value from a prompt (in a terminal), --secret-stdin, or --secret-env VAR"
    )


@contextlib.contextmanager
def progress_bar(
    label: str, show: bool
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """``(on_found, advance)`` callbacks driving a rich progress bar on stderr, if ``show``.

    ``on_found(n)`` sets the total once it is known; ``advance(n)`` moves the bar on.
    """
    if not show:
        yield (lambda _n: None), (lambda _n: None)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=rich_console(err_console),
    ) as progress:
        task = progress.add_task(label, total=None)
        yield (lambda n: progress.update(task, total=n)), (lambda n: progress.advance(task, n))
