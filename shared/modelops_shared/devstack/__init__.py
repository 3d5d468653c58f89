"""The embedded dev stack (tansu, PostgreSQL, Redis, a local object store and the services) as local processes."""

from .components import stack_env
from .processes import StackError
from .stack import start_infrastructure, start_services, status, stop_all

__all__ = ["StackError", "stack_env", "start_infrastructure", "start_services", "status", "stop_all"]
