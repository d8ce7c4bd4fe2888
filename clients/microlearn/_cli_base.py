"""What every `microlearn` client command shares: the connection options, turning SDK errors into
`error: ...` and an exit code, and plain-text tables and key/value blocks."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Optional

import typer

from microlearn._client import Client
from microlearn._config import ADDRESS_ENV, DEFAULT_ADDRESS, TOKEN_ENV
from microlearn._errors import MicroLearnError, Unauthenticated, Unavailable

# Typer needs Optional[...] spelled out on some supported versions, hence no `str | None` here.
AddressOption = Annotated[
    Optional[str],
    typer.Option(
        "--address",
        envvar=ADDRESS_ENV,
        show_envvar=True,
        show_default=False,
        help=f"MicroLearn server address, host:port (default {DEFAULT_ADDRESS}).",
    ),
]
TokenOption = Annotated[
    Optional[str],
    typer.Option(
        "--token",
        envvar=TOKEN_ENV,
        show_envvar=True,
        show_default=False,
        help="Bearer token, when the server requires one.",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON: the resource as the API returns it."),
]



class TaskChoice(str, enum.Enum):
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"
    clustering = "clustering"


_CONNECT_FAILURES = ("failed to connect", "connection refused", "dns resolution failed", "connect failed")
_MAX_CELL = 40


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def connect(address: str | None, token: str | None) -> Iterator[Client]:
    """A client for one command; turns SDK errors into `error: ...` on stderr and exit 1."""
    client = Client(address, token)
    try:
        yield client
    except Unavailable as err:
        if any(marker in err.details.lower() for marker in _CONNECT_FAILURES):
            raise fail(
                f"cannot reach MicroLearn at {client.address}: is `microlearn up` running?\n"
                f"  ({err})"
            ) from None
        raise fail(str(err)) from None
    except Unauthenticated as err:
        raise fail(f"{err}\n  (pass --token or set {TOKEN_ENV})") from None
    except MicroLearnError as err:
        raise fail(str(err)) from None
    finally:
        client.close()


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def stdin_is_interactive() -> bool:
    # A function (not an inline check) so tests can stand in for a terminal.
    return sys.stdin is not None and sys.stdin.isatty()


def stderr_is_terminal() -> bool:
    return sys.stderr is not None and sys.stderr.isatty()


def size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)  # JSON carries every number as a float; 3.0 in an int column reads as 3
    elif isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value).replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = (), upper: bool = True
) -> None:
    """Prints an aligned plain-text table; columns listed in `right` are right-aligned."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths))
        ]
        return "  ".join(parts).rstrip()

    typer.echo(line([h.upper() if upper else h for h in headers]))
    for row in cells:
        typer.echo(line(row))


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """Prints `key  value` lines with the values aligned; empty values are left out."""
    shown = [(key, value) for key, value in pairs if value]
    width = max((len(key) for key, _ in shown), default=0)
    for key, value in shown:
        typer.echo(f"{key.ljust(width)}  {value}")


def pairs(mapping: dict[str, Any]) -> str:
    """`{"a": 1, "b": "x"}` -> `a=1, b=x` (sorted by key)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """`["k=v", ...]` from a repeatable option; the value may itself contain `=`."""
    parsed: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{text!r} is not KEY=VALUE", param_hint=option)
        parsed[key.strip()] = value
    return parsed
