"""Usage routes: what jobs and deployments used and cost, per key, job or deployment (a caller sees their own; an
admin anyone's), and API key holders' budgets (admin)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from ..deps import GatewayDep
from ..web.auth import Admin, Viewer
from ..web.openapi import problems
from . import store
from .domain import NoBudget, whose_usage
from .schemas import BudgetRequest, BudgetView, UsageReport, UsageRow

JSON_BODY_LIMIT = 4 * 1024
KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=problems(401, 403, 429))


@router.get("")
async def usage(
    caller: Viewer,
    gateway: GatewayDep,
    by: Literal["key", "job", "deployment"] = "key",
    key: Annotated[
        str | None, Query(pattern=KEY_NAME, description="Only this key's (default: yours; admin: all)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UsageReport:
    """Usage summed per key, job or deployment, the costliest first, priced when it was recorded."""
    key = whose_usage(caller.name, caller.role, key)
    rows = [UsageRow(**row) for row in await store.totals(gateway.runtime.pool, by, key, limit)]
    if by == "key":
        budgets = {row["owner"]: row["amount"] for row in await store.budgets(gateway.runtime.pool)}
        async with gateway.runtime.pool.acquire() as conn:
            for row in rows:
                row.budget = budgets.get(row.key)
                row.committed = await store.committed(conn, row.key)
    return UsageReport(by=by, data=rows)


@router.get("/budgets")
async def list_budgets(_: Admin, gateway: GatewayDep) -> list[BudgetView]:
    currency = gateway.settings.gateway_prices.currency
    return [_budget(row, currency) for row in await store.budgets(gateway.runtime.pool)]


@router.put("/budgets/{name}", max_body_size=JSON_BODY_LIMIT, responses=problems(413, 422))
async def set_budget(
    name: Annotated[str, Path(pattern=KEY_NAME)], body: BudgetRequest, caller: Admin, gateway: GatewayDep
) -> BudgetView:
    """Set the budget of the key holder `name` (admin): jobs whose estimate would take them past it are refused."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        row = await store.set_budget(conn, name, body.amount, caller.name)
    return _budget(row, gateway.settings.gateway_prices.currency)


@router.delete("/budgets/{name}", status_code=204, responses=problems(404))
async def remove_budget(name: Annotated[str, Path(pattern=KEY_NAME)], _: Admin, gateway: GatewayDep) -> Response:
    """Lift the budget of the key holder `name` (admin)."""
    async with gateway.runtime.pool.acquire() as conn, conn.transaction():
        if not await store.remove_budget(conn, name):
            raise NoBudget(f"{name} has no budget")
    return Response(status_code=204)


def _budget(row: dict[str, Any], currency: str) -> BudgetView:
    return BudgetView(
        key=row["owner"], amount=row["amount"], currency=currency, set_by=row["set_by"], set_at=row["set_at"]
    )
