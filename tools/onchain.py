"""On-chain / market tool: CoinGecko market data and chart, DefiLlama TVL, GoPlus holders."""

from __future__ import annotations

import asyncio
from typing import Any

from chainlens.deps import Deps
from tools import scoring
from tools.collect import Collector, ToolRun
from tools.holders import concentration
from tools.http import SourceError
from tools.results import OnchainResult, Project
from tools.sources import coingecko, defillama, goplus
from tools.sources._util import num

_CG_FIELDS = (
    "price_usd",
    "market_cap_usd",
    "market_cap_rank",
    "volume_24h_usd",
    "change_24h_pct",
    "change_7d_pct",
    "ath_usd",
    "ath_change_pct",
    "fdv_usd",
    "green_volume_share",
)


async def defillama_slug(
    deps: Deps, c: Collector, project: Project, fields: tuple[str, ...]
) -> str | None:
    """The project's DefiLlama slug; the lookup alone does not count as DefiLlama answering."""
    if project.defillama_slug:
        return project.defillama_slug
    try:
        slug = await defillama.find_slug(deps, project.id)
    except SourceError as exc:
        if defillama.SOURCE not in c.called:
            c.called.append(defillama.SOURCE)
        for name in fields:
            c.lack(name, f"DefiLlama could not be fetched: {exc.reason}")
        return None
    if slug is None:
        for name in fields:
            c.lack(name, "DefiLlama does not list this project")
    return slug


async def tvl_for(deps: Deps, c: Collector, project: Project) -> float | None:
    """Current TVL from DefiLlama, or None (with the reason recorded)."""
    slug = await defillama_slug(deps, c, project, ("tvl_usd",))
    if slug is None:
        return None
    protocol = await c.fetch(
        defillama.SOURCE,
        defillama.fetch_protocol(deps, slug),
        fields=("tvl_usd",),
        url=defillama.page_url(slug),
    )
    return defillama.current_tvl(protocol) if protocol else None


async def goplus_token(
    deps: Deps,
    c: Collector,
    project: Project,
    coin_task: asyncio.Task[dict[str, Any] | None],
    fields: tuple[str, ...],
) -> dict[str, Any] | None:
    """The GoPlus token object for the project's first supported contract, if any."""
    platforms = project.platforms
    if not platforms:
        coin = await coin_task
        platforms = coingecko.platforms(coin) if coin else {}
        if coin is None:
            for name in fields:
                c.lack(name, "contract address unknown because CoinGecko could not be fetched")
            return None
    if not platforms:
        for name in fields:
            c.lack(name, "native coin: no token contract to read holders from")
        return None
    contract = goplus.pick_contract(platforms)
    if contract is None:
        for name in fields:
            c.lack(name, f"GoPlus keyless API does not cover {', '.join(sorted(platforms))}")
        return None
    chain_id, address = contract
    return await c.fetch(
        goplus.SOURCE,
        goplus.fetch_token_security(deps, chain_id, address),
        fields=fields,
        url=goplus.page_url(chain_id, address),
    )


async def run_onchain(deps: Deps, project: Project) -> ToolRun:
    """Fetch every market source in parallel and build the scored OnchainResult."""
    c = Collector()
    page = coingecko.page_url(project.id)
    coin_call = c.fetch(
        coingecko.SOURCE,
        coingecko.fetch_coin(deps, project.id),
        fields=_CG_FIELDS,
        url=page,
        dated=coingecko.last_updated,
    )
    coin_task = asyncio.ensure_future(coin_call)  # (a call inside it: mypy misreads its type)
    chart_call = c.fetch(
        coingecko.SOURCE,
        coingecko.fetch_market_chart(deps, project.id),
        fields=("price_history", "volatility_annual"),
        url=page,
    )
    chart, tvl, token, coin = await asyncio.gather(
        chart_call,
        tvl_for(deps, c, project),
        goplus_token(deps, c, project, coin_task, ("holder_count", "top10_share")),
        coin_task,
    )

    r = OnchainResult(project_id=project.id)
    if coin:
        for name, value in coingecko.market_facts(coin).items():
            if name != "tvl_usd":
                setattr(r, name, value)
        r.green_volume_share = coingecko.green_volume_share(coin)
        if tvl is None and "tvl_usd" not in c.missing:
            tvl = coingecko.market_facts(coin)["tvl_usd"]
    r.tvl_usd = tvl
    if r.mcap_to_tvl is None and r.market_cap_usd and tvl:
        r.mcap_to_tvl = r.market_cap_usd / tvl
    if chart:
        r.price_history = coingecko.price_history(chart)
        r.volatility_annual = coingecko.volatility_annual(chart)
    if token:
        count = num(token.get("holder_count"))
        r.holder_count = int(count) if count else None  # GoPlus reports "0" when it has no count
        r.top10_share = concentration(token).top10_share

    components = {
        "size": scoring.size_component(r.market_cap_usd),
        "liquidity": scoring.liquidity_component(
            r.volume_24h_usd, r.market_cap_usd, r.green_volume_share
        ),
        "momentum": scoring.momentum_component(r.change_24h_pct, r.change_7d_pct),
        "volatility": scoring.volatility_component(r.volatility_annual),
        "fundamentals": scoring.fundamentals_component(r.mcap_to_tvl),
        "distribution": scoring.distribution_component(r.top10_share),
    }
    r.market_score = scoring.market_score(components)
    if r.market_score is None:
        c.lack("market_score", "no market data could be fetched")

    c.fill_unreported(
        r,
        {
            **dict.fromkeys(_CG_FIELDS, coingecko.SOURCE),
            "volatility_annual": coingecko.SOURCE,
            "holder_count": goplus.SOURCE,
            "top10_share": goplus.SOURCE,
            "tvl_usd": defillama.SOURCE,
        },
    )
    if r.mcap_to_tvl is None and "mcap_to_tvl" not in c.missing:
        c.lack("mcap_to_tvl", "needs both market cap and TVL")
    c.finish(r)
    return ToolRun(r, c.called, c.ok)
