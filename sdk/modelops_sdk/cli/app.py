"""The root command: where the gateway is, how output is printed, and the `config` commands."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from .._sync.client import Client
from ..config import Config, config_path

out = Console()
err = Console(stderr=True)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ModelOps: datasets, fine-tuning jobs, artifacts.")
config_app = typer.Typer(no_args_is_help=True, help="Where the gateway is and which API key to send.")
app.add_typer(config_app, name="config")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


@dataclass(frozen=True)
class Target:
    url: str
    api_key: str | None

    def client(self) -> Client:
        return Client(self.url, self.api_key)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(envvar="MODELOPS_URL", help="The gateway's URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="MODELOPS_API_KEY", help="An API key")] = None,
) -> None:
    saved = Config.load()
    ctx.obj = Target(url or saved.url, api_key or saved.api_key)


def target(ctx: typer.Context) -> Target:
    found: Target = ctx.find_root().obj
    return found


def plain(value: Any) -> Any:
    """A model, or a list of them, as JSON-ready data (field names as the API spells them)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def emit_json(value: Any) -> None:
    # Plain print, not rich: the output is for programs, and rich would wrap and colour it.
    print(json.dumps(plain(value), indent=2, default=str))


@config_app.command("set")
def config_set(
    url: Annotated[str | None, typer.Option(help="The gateway's URL")] = None,
    api_key: Annotated[str | None, typer.Option(help="An API key")] = None,
) -> None:
    """Save the gateway's URL and an API key to the config file."""
    saved = Config.load()
    path = Config(url or saved.url, api_key or saved.api_key).save()
    err.print(f"saved {path}")


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The settings in effect (the key masked) and where they came from."""
    current = target(ctx)
    masked = f"{current.api_key[:6]}…" if current.api_key else None
    from_env = [name for name in ("MODELOPS_URL", "MODELOPS_API_KEY") if name in os.environ]
    shown = {"url": current.url, "api_key": masked, "config_file": str(config_path()), "from_env": from_env}
    if as_json:
        emit_json(shown)
        return
    for name, value in shown.items():
        out.print(f"{name}: {value}")
