"""GoPlus token_security: contract risk flags, holders and locks for one token on one chain."""

from __future__ import annotations

from typing import Any

from chainlens.deps import Deps
from tools.http import BadResponse, NotFound, get_json

SOURCE = "GoPlus"

# CoinGecko platform key -> GoPlus chain id (DATA_SOURCES §0)
CHAIN_IDS = {
    "ethereum": "1",
    "binance-smart-chain": "56",
    "polygon-pos": "137",
    "arbitrum-one": "42161",
    "optimistic-ethereum": "10",
    "base": "8453",
    "avalanche": "43114",
    "fantom": "250",
}


def _base(deps: Deps) -> str:
    return str(deps.settings.goplus_base_url).rstrip("/")


def pick_contract(platforms: dict[str, str]) -> tuple[str, str] | None:
    """(GoPlus chain id, address) for the first supported platform, Ethereum first."""
    for platform, chain_id in CHAIN_IDS.items():
        address = platforms.get(platform)
        if address and address.startswith("0x"):
            return chain_id, address.lower()
    return None


def page_url(chain_id: str, address: str) -> str:
    return f"https://gopluslabs.io/token-security/{chain_id}/{address}"


async def fetch_token_security(deps: Deps, chain_id: str, address: str) -> dict[str, Any]:
    """The `result.<address>` object; BadResponse when `code != 1`, NotFound when absent."""
    url = f"{_base(deps)}/token_security/{chain_id}"
    body = await get_json(
        deps, url, source=SOURCE, params={"contract_addresses": address}, memo_ttl=600
    )
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, url, "body is not an object")
    if body.get("code") != 1:
        raise BadResponse(
            SOURCE, url, f"GoPlus error code {body.get('code')}: {str(body.get('message'))[:120]}"
        )
    result = body.get("result")
    token = result.get(address.lower()) if isinstance(result, dict) else None
    if not isinstance(token, dict) or not token:
        raise NotFound(SOURCE, url, "GoPlus has no data for this contract")
    return token
