"""Where the CLI finds the gateway and its key: options, then MODELOPS_URL / MODELOPS_API_KEY, then the config file
(MODELOPS_CONFIG, else $XDG_CONFIG_HOME/modelops/config.toml, else ~/.config/modelops/config.toml)."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    if explicit := os.environ.get("MODELOPS_CONFIG"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "modelops" / "config.toml"


@dataclass(frozen=True)
class Config:
    url: str = DEFAULT_URL
    api_key: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        path = path or config_path()
        if not path.exists():
            return cls()
        values = tomllib.loads(path.read_text())
        return cls(url=values.get("url", DEFAULT_URL), api_key=values.get("api_key"))

    def save(self, path: Path | None = None) -> Path:
        """Written readable by its owner only: it holds an API key."""
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # A JSON string is a valid TOML basic string, which saves a TOML writer dependency.
        lines = [f"url = {json.dumps(self.url)}"] + ([f"api_key = {json.dumps(self.api_key)}"] if self.api_key else [])
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write("\n".join(lines) + "\n")
        return path
