"""The client, its HTTP layer and its job event stream, written once for asyncio in `_async/`; `make sdk-models`
generates their blocking twins in `_sync/` from it with unasync."""
