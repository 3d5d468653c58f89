"""The gateway's first admin key: `modelops-stack up` shows it once on the terminal (the gateway itself never
logs it), and remembers which key it showed so a later `up` stays quiet until the gateway writes a new one."""

from __future__ import annotations

import hashlib

from ..settings import Settings
from .components import StackPaths

ADMIN_KEY_FILE = "admin.key"  # the name the gateway writes under the state dir (GatewaySettings.admin_key_file)
SHOWN_MARKER = "admin.key.shown"


def take_unshown_admin_key(settings: Settings) -> str | None:
    """The admin key in the state dir if no `up` has shown it yet, now marked as shown; None otherwise."""
    root = StackPaths.of(settings).root
    try:
        secret = (root / ADMIN_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    # The marker holds a digest, not the key: it says which key was shown without being a second copy of it.
    shown = hashlib.sha256(secret.encode()).hexdigest()
    marker = root / SHOWN_MARKER
    if not secret or (marker.is_file() and marker.read_text().strip() == shown):
        return None
    marker.write_text(shown + "\n")
    return secret
