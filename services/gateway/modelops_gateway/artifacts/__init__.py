"""Artifacts: imports streamed into the object store and submitted to the registry, the registry's reads behind
role checks, and promotions forwarded with the caller as actor."""
