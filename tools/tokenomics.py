"""Tokenomics tool: CoinGecko supply and implied inflation, GoPlus contract flags and holders."""

from __future__ import annotations

import asyncio

from chainlens.deps import Deps
from tools import scoring
from tools.collect import Collector, ToolRun
from tools.flags import contract_flags, not_applicable_flags
from tools.holders import concentration
from tools.onchain import goplus_token
from tools.results import Project, TokenomicsResult
from tools.sources import coingecko, goplus

_SUPPLY_FIELDS = (
    "circulating_supply",
    "total_supply",
    "max_supply",
    "circulating_ratio",
    "fdv_to_mcap",
)
_GOPLUS_FIELDS = ("flags", "top10_share", "risk_score")


async def run_tokenomics(deps: Deps, project: Project) -> ToolRun:
    c = Collector()
    page = coingecko.page_url(project.id)
    coin_call = c.fetch(
        coingecko.SOURCE,
        coingecko.fetch_coin(deps, project.id),
        fields=_SUPPLY_FIELDS,
        url=page,
        dated=coingecko.last_updated,
    )
    coin_task = asyncio.ensure_future(coin_call)  # (a call inside it: mypy misreads its type)
    chart, token, coin = await asyncio.gather(
        c.fetch(
            coingecko.SOURCE,
            coingecko.fetch_market_chart(deps, project.id),
            fields=("inflation_annual_pct",),
            url=page,
        ),
        goplus_token(deps, c, project, coin_task, _GOPLUS_FIELDS),
        coin_task,
    )
    r = TokenomicsResult(project_id=project.id)
    if coin:
        supply = coingecko.supply_facts(coin)
        r.circulating_supply = supply["circulating_supply"]
        r.total_supply = supply["total_supply"]
        r.max_supply = supply["max_supply"]
        cap = r.max_supply or r.total_supply
        if r.circulating_supply and cap:
            r.circulating_ratio = min(1.0, r.circulating_supply / cap)
        facts = coingecko.market_facts(coin)
        if facts["fdv_usd"] and facts["market_cap_usd"]:
            r.fdv_to_mcap = facts["fdv_usd"] / facts["market_cap_usd"]
    if chart:
        inflation = coingecko.implied_inflation(chart)
        r.inflation_annual_pct = None if inflation is None else round(100 * inflation, 2)
        if inflation is None:
            c.lack("inflation_annual_pct", "market chart too short to estimate supply growth")

    native = not (project.platforms or (coingecko.platforms(coin) if coin else {}))
    risk_points: int | None = None
    if coin is not None and native:
        r.contract_applicable = False
        r.flags = not_applicable_flags()
        risk_points = 0  # no contract, no contract risk; supply health still counts
        c.missing.pop("risk_score", None)
        c.missing.pop("flags", None)
    elif token:
        holders = concentration(token)
        r.top10_share = holders.top10_share
        r.lock_ends = holders.lock_ends
        r.flags, risk_points = contract_flags(token, holders)
    r.distribution_health = scoring.distribution_health(r.top10_share)
    health = scoring.supply_health(r.circulating_ratio, r.fdv_to_mcap, r.inflation_annual_pct)
    r.risk_score = None if risk_points is None else scoring.risk_score_1_10(risk_points)
    r.tokenomics_score = scoring.tokenomics_score(risk_points, health)
    if token and not r.lock_ends:
        c.lack("lock_ends", "no unlock schedule: keyless sources only show locks of top holders")
    if not r.contract_applicable:
        c.lack("top10_share", "native coin: no token contract to read holders from")
    c.fill_unreported(
        r,
        {
            "circulating_supply": coingecko.SOURCE,
            "total_supply": coingecko.SOURCE,
            "max_supply": coingecko.SOURCE,
            "top10_share": goplus.SOURCE,
        },
    )
    if r.max_supply is None and "max_supply" in c.missing and coin:
        c.missing["max_supply"] = "no maximum supply (uncapped) or not reported by CoinGecko"
    if r.fdv_to_mcap is None and coin:
        c.lack("fdv_to_mcap", "CoinGecko did not report FDV or market cap")
    if r.circulating_ratio is None and coin:
        c.lack("circulating_ratio", "needs circulating and max/total supply")
    c.finish(r)
    return ToolRun(r, c.called, c.ok)
