"""Holder concentration from GoPlus `holders[]`, after removing wallets that are not whales."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tools.sources._util import from_unix, iso, num

BURN_ADDRESSES = {
    "0x000000000000000000000000000000000000dead",
    "0x0000000000000000000000000000000000000000",
    "0x0000000000000000000000000000000000000001",
    "0xdead000000000000000042069420694206942069",
}
# Exchange hot/cold wallets with public labels (Etherscan/BscScan name tags); they hold many
# users' coins, so counting them as whales would overstate concentration.
EXCHANGE_WALLETS = {
    "0xf977814e90da44bfa03b6295a0616a897441acec",  # Binance 8
    "0x28c6c06298d514db089934071355e5743bf21d60",  # Binance 14
    "0x21a31ee1afc51d94c2efccaa2092ad1028285549",  # Binance 15
    "0xdfd5293d8e347dfe59e90efd55b2956a1343963d",  # Binance 16
    "0x5a52e96bacdabb82fd05763e25335261b270efcb",  # Binance 28
    "0xbe0eb53f46cd790cd13851d5eff43d12404d33e8",  # Binance 7
    "0x8894e0a0c962cb723c1976a4421c95949be2d4e3",  # Binance (BSC hot wallet)
    "0x71660c4005ba85c37ccec55d0c4493e66fe775d3",  # Coinbase 1
    "0x503828976d22510aad0201ac7ec88293211d23da",  # Coinbase 2
    "0xa9d1e08c7793af67e9d92fe308d5697fb81d3e43",  # Coinbase 10
    "0x2910543af39aba0cd09dbb2d50200b3e800a63d2",  # Kraken 1
    "0x6cc5f688a315f3dc28a7781717a9a798a59fda7b",  # OKX
}
_NON_WHALE_TAGS = (
    "lp",
    "pool",
    "pair",
    "uniswap",
    "pancake",
    "sushi",
    "exchange",
    "binance",
    "coinbase",
    "kraken",
    "okx",
    "bybit",
    "burn",
    "lock",
    "vesting",
    "bridge",
)


@dataclass(slots=True)
class Concentration:
    top10_share: float | None = None  # of total supply, after exclusions
    largest_share: float | None = None
    hhi: float | None = None  # Σ s² over the listed holders: a lower bound
    holders_for_half: int | None = None  # how many listed holders pass 50 % (None: not reached)
    excluded: list[str] = field(default_factory=list)  # why each excluded holder was left out
    lock_ends: list[datetime] = field(default_factory=list)


def _why_excluded(holder: dict[str, Any], lp_pairs: set[str]) -> str | None:
    address = str(holder.get("address") or "").lower()
    tag = str(holder.get("tag") or "").lower()
    if address in BURN_ADDRESSES:
        return "burn address"
    if str(holder.get("is_locked")) == "1":
        return "locked"
    if address in lp_pairs:
        return "DEX liquidity pool"
    if address in EXCHANGE_WALLETS:
        return "exchange wallet"
    if tag and any(word in tag for word in _NON_WHALE_TAGS):
        return f"tagged '{holder.get('tag')}'"
    return None


def _lock_end(detail: Any) -> datetime | None:
    if not isinstance(detail, dict):
        return None
    end = detail.get("end_time")
    return iso(end) or from_unix(end)


def concentration(token: dict[str, Any]) -> Concentration:
    """Top-10 share, HHI and lock end dates from one GoPlus token object."""
    holders = token.get("holders")
    out = Concentration()
    if not isinstance(holders, list) or not holders:
        return out
    lp_pairs = {
        str(d.get("pair") or "").lower() for d in token.get("dex") or [] if isinstance(d, dict)
    }
    shares: list[float] = []
    for holder in holders:
        if not isinstance(holder, dict):
            continue
        for detail in holder.get("locked_detail") or []:
            if (end := _lock_end(detail)) is not None:
                out.lock_ends.append(end)
        share = num(holder.get("percent"))
        if share is None:
            continue
        reason = _why_excluded(holder, lp_pairs)
        if reason:
            out.excluded.append(f"{holder.get('address')}: {reason}")
            continue
        shares.append(share)
    shares = sorted(shares, reverse=True)[:10]
    out.top10_share = sum(shares)
    out.largest_share = shares[0] if shares else 0.0
    out.hhi = sum(s * s for s in shares)
    running = 0.0
    for i, s in enumerate(shares, 1):
        running += s
        if running > 0.5:
            out.holders_for_half = i
            break
    out.lock_ends.sort()
    return out
