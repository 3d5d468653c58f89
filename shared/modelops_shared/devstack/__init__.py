"""The embedded dev stack (tansu, PostgreSQL, Redis, a local object store and the services) as local processes."""

from .components import stack_env
from .ephemeral import ephemeral_settings, free_port
from .processes import StackError
from .stack import start_infrastructure, start_services, status, stop_all

__all__ = [
    "StackError",
    "ephemeral_settings",
    "free_port",
    "stack_env",
    "start_infrastructure",
    "start_services",
    "status",
    "stop_all",
]
