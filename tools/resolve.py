"""Project resolution: turn what a user typed into one exact coin, or ranked suggestions.

Order of evidence: a contract address (the index, then CoinGecko
`/coins/{platform}/contract/{address}` across the common EVM platforms); a mention in the
sentence (`$TICKER`, name, alias, CoinGecko id, ticker — everyday words only when the sentence
treats them as a coin); a close, unambiguous typo; CoinGecko `/search` for names the index
lacks. Anything less certain comes back as suggestions, never as the answer. The live
fallbacks never raise to the caller: on network failure they return index suggestions.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from chainlens import best_effort
from chainlens.deps import Deps
from chainlens.i18n import fold
from tools.index import (
    CoinIndex,
    IndexEntry,
    address_key,
    coingecko_headers,
    coingecko_url,
    compact,
    load_index,
    normalize,
)
from tools.results import Project, Resolution

log = logging.getLogger(__name__)

# The CoinGecko platforms a pasted 0x address is tried on, most used first.
CONTRACT_PLATFORMS = (
    "ethereum",
    "binance-smart-chain",
    "polygon-pos",
    "arbitrum-one",
    "optimistic-ethereum",
    "base",
    "avalanche",
)
SUGGESTIONS = 5
FUZZY_ACCEPT = 0.84  # "etherium" ~ "ethereum" scores 0.875; unrelated words stay below 0.8
FUZZY_MARGIN = 0.06  # the runner-up coin must be clearly worse for a typo to resolve
FUZZY_SUGGEST = 0.66  # "cardona" ~ "cardano" scores 0.71: worth suggesting, not resolving
SEARCH_TTL_S = 3600

_EVM_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{40}\b")
_BASE58_ADDRESS = re.compile(r"\b[1-9A-HJ-NP-Za-km-z]{32,44}\b")
# Letters of any script, so a Vietnamese word ("của", "không") is one word, never fragments.
_WORD = re.compile(r"\$?[^\W_]+(?:[.\-'’][^\W_]+)*")
_CONTRACTION = re.compile(r"['’](s|re|ll|ve|d|m|t)$", re.IGNORECASE)

# --- when a word is a coin --------------------------------------------------------------------
# Tickers that are everyday words. "stop" words are coins only when the sentence plainly says
# so ("ONE token", "$ME"); upper case does not help because people shout "NOT" and write "ATH".
# "weak" words are coins in upper case ("LINK"), as $TICKER, or next to a cue ("research link",
# "link price"); in plain lower case they are English ("send me the link").
_STOP = frozenset(
    """
me one just not time people open ai it its sun hot safe id ip gas alt ath atl gmt s w a i
us uk eu usa ok tv pc gm gn ceo cto api nft nfts dex cex dao etf etfs kyc aml ama fud fomo dca
roi apy apr pnl ta fa ico ido tge otc p2p evm pos pow rpc ui ux faq l1 l2 imo tldr lol usd eur
""".split()
)
_WEAK = frozenset(
    """
link ape sand mana uni dot atom ton near op arb curve graph render flow stellar optimism
immutable maker compound ripple stacks quant helium harmony jupiter osmosis secret cake sushi
rune blur magic hype move trump dash nano iota woo cow sky beam mask band core prime degen
drift orca grass usual virtual turbo goat mew spell scroll blast rose vet algo luna ron joe elon
brett neo zen ark hive status dent amp ren comp apt flux meme aero wax chia audio waves elf om
gt sc zk theta zeta flare gate venus gains verge komodo reserve origin ocean golem casper terra
arkham radix kava celo gala bat power trust treasure stargate
""".split()
)
# Coin names that are also ordinary phrases; lower case needs a cue ("check the graph").
_EVERYDAY_PHRASES = frozenset({"the graph", "space id", "one inch", "not coin", "trust wallet"})
_COMMON = frozenset(
    """
the a an and or but if then than so as at by for from in into of off on onto out over to up
with without about above after again against all am any are aren be because been before being
below between both can cannot could couldn did didn do does doesn doing don down during each
few further had has hasn have haven having he her here hers herself him himself his how i im
ive id if is isn it its itself let lets me more most my myself no nor not now of once only
other ought our ours ourselves own same she should shouldn some such that thats their theirs
them themselves there these they this those through too under until very was wasn we were
weren what whats when where which while who whom why will with won would wouldn you your
yours yourself yourselves yes yeah yep nope please thanks thank hi hello hey ok okay cool nice
good great bad best better worst worse new old next last first second third big small high low
long short still also really actually maybe probably today tomorrow yesterday week weeks month
months year years day days hour hours minute now soon later ago time times right left real
tell say says said saying show give get got going go goes went come coming make makes made
think thought know knew see seen look looking looks want wants need needs like likes love
should could would might must can will shall may doing done does happen happened happening
happens still ever never always often sometimes lot lots much many every everyone anyone
someone something anything nothing everything thing things way ways people person guy guys
man men woman women friend friends crowd community world country city home house life work
job money cash dollar dollars euro euros gold silver oil stock stocks share shares fund funds
bank banks buy sell hold send sent link links page site website app web internet computer
phone email account order orders fee fees rate rates cost costs pay paid free open close
closed start started stop stopped run running legit real fake true false sure worth value
safe risky risk risks happy sad mad crazy weird doing shipping ship shipped building build
built launch launched launching trading trade trades trader traders doing weather news update
updates latest current currently recent recently again why yet since just even though enough
quite rather pretty overall next upcoming future past history plan plans planning team teams
""".split()
)
_CRYPTO = frozenset(
    """
crypto cryptos cryptocurrency cryptocurrencies coin coins token tokens tokenomics blockchain
blockchains chain chains defi cefi nft dex cex exchange exchanges wallet wallets price prices
market markets cap mcap marketcap volume liquidity chart charts devs dev developers roadmap
whitepaper sentiment unlock unlocks vesting supply holders holder whales whale staking stake
staked airdrop airdrops bullish bearish bull bear pump dump moon mooning rug rugpull scam scams
research analyze analyse analysis tvl fdv ath apy yield yields layer rollup rollups protocol
protocols network networks ecosystem governance dao project projects altcoin altcoins alts
memecoin memecoins stablecoin stablecoins contract contracts address ticker listing listed
mainnet testnet upgrade fork halving mining miners validators validator node nodes bridge swap
swaps perp perps futures leverage long longs shorts short outlook prediction forecast rally
dip dips bags bag holdings emissions inflation treasury fundamentals valuation usdt hodl
hodling accumulate accumulating bought sold selling buying holding longing shorting tps
onchain offchain score rating risk audit audits audited partnership partnerships backers vc
""".split()
)

# Vietnamese, folded (no diacritics): function words and the syllables of research and aspect
# words. They are never a coin by themselves ("có", "giá", "nào"); like English stop words they
# count as one only as $TICKER or with a plain cue ("research co", "co token"). "xem" (see) is
# also NEM's ticker: it stays a weak word, a coin in upper case ("XEM") or as $XEM.
_VI_WEAK = frozenset({"xem"})
_VI_COMMON = frozenset(
    """
cua co khong ko k the nao la gi nao cho toi tui minh ban ve voi va hay hoac thi ma nhung cac
mot nhieu it bao sao duoc dang da se roi chua nua vay nhe nha a oi ah u uh vang da neu khi
nay do kia day dau ai gio luc hom qua mai tuan thang nam ngay nay truoc sau moi cu nhat hon
phan tich danh gia nghien cuu tim hieu tong quan nhan dinh xet gioi thieu ke noi biet giup xem
hoi muon can nen mua ban giu dau tu xuong tien von hoa khoi luong giao dich thanh khoan nguoi
nam so vi bieu tang giam dinh lich su ca voi xep hang tri thi truong du lieu cong dong tin tuc
tam ly hai lam luan xu huong mang xa tieu bao chi don lac quan bi nguon cung luu hanh phat mo
khoa phan bo phoi hop dong rui ro toi tra dan dot loang them tap trung doi ngu nha sang lap
trinh vien tac kiem toan hau thuan rot quy uy tin dang minh bach an danh sau lo co phai tot
xau manh yeu lon nho cao thap re dat tiem nang an toan lua dao rut tham ponzi du dong token
coin chuyen sau chi tiet day toan dien cap nhat moi hien bay tai vi sao ra the nhu tuong lai
gia tri thuc loi nhuan lo lai dau co ti ty trieu nghin ngan dola usd
trien xin chao cam on hoi thu nghe thay nghi dung sai vui long giai thich tinh hinh trung binh
chung rieng lam sao bat ky tat ca moi nguoi chung ta cac ban em anh chi oi ca nhan tot nhat
nhanh cham luon ngay lien het con cung nhu vay nen can phai biet them lan bang tien te ky so
""".split()
)

ANY_VERB_CUES = frozenset(
    """
research analyze analyse analysis about buy buying bought sell selling sold hold holding hodl
hodling long longing short shorting stake staking accumulate accumulating
""".split()
)
STRICT_VERB_CUES = frozenset({"research", "analyze", "analyse"})
ANY_NOUN_CUES = frozenset(
    """
price prices token tokens coin coins tokenomics team chart charts holders holder sentiment
unlock unlocks supply mcap marketcap market staking airdrop whales news trading ecosystem
protocol dao governance devs developers roadmap tvl fdv ticker contract outlook prediction
forecast rally listing etf usd usdt perp perps analysis pump dump bags holdings emissions
inflation vesting treasury whitepaper community fundamentals valuation mainnet testnet
""".split()
)
STRICT_NOUN_CUES = frozenset(
    """
token tokens coin coins tokenomics ticker contract holders airdrop mcap marketcap fdv tvl
staking unlock unlocks
""".split()
)
# Greetings and small talk: never worth a live /search call.
_SMALL_TALK = frozenset(
    """
good morning afternoon evening night day hello hi hey hiya yo gm gn thanks thank thx ty
please help ok okay yes yeah no nope bye goodbye cheers sir mate friend bot chainlens welcome
""".split()
)
# Vietnamese cues, folded: the word before a coin ("phân tích X", "giá X", "token X") and the last
# syllable of an aspect noun followed by "của"/"về" ("thanh khoản của X", "đội ngũ của X").
VI_VERB_CUES = frozenset("tich gia hieu cuu mua ban giu gom token coin".split())
VI_NOUN_CUES = frozenset(
    """
gia hoa luong dich khoan giu cung hanh phat khoa bo phoi dong ngu lap vien tac toan tuc ly an
trien truong tri token coin tien sach trinh
""".split()
)
VI_OF = frozenset({"cua", "ve"})
_VOCABULARY = (
    _STOP | _WEAK | _COMMON | _CRYPTO | ANY_VERB_CUES | ANY_NOUN_CUES | _SMALL_TALK | _VI_COMMON
)
# Words after a name that cannot extend it into a longer coin name ("Solana Team").
_NOT_NAME_PARTS = (
    _STOP
    | _CRYPTO
    | ANY_VERB_CUES
    | ANY_NOUN_CUES
    | _VI_COMMON
    | frozenset(
        "the a an and or but vs versus is are was were to in on for of with from by at".split()
    )
)


def everyday_level(key: str) -> Literal["stop", "weak"] | None:
    """How much a word reads as English rather than as a coin: 'stop', 'weak' or not at all."""
    if key in _STOP:
        return "stop"
    if key in _WEAK or key in _VI_WEAK:
        return "weak"
    if key in _COMMON or key in _CRYPTO or key in _VI_COMMON:
        return "stop"
    return None


def is_vocabulary(key: str) -> bool:
    """Is this (compact, lower-case) word ordinary English or crypto vocabulary?"""
    return key in _VOCABULARY


Method = Literal["index", "alias", "symbol", "fuzzy", "search"]


@dataclass(frozen=True, slots=True)
class Word:
    raw: str  # as typed, without "$" and a trailing "'s"
    key: str  # compact lower case, diacritics removed ("của" -> "cua")
    start: int
    end: int
    dollar: bool
    # typed with letters outside ASCII ("của", "Đội"): a word of a language, not a coin name
    accented: bool = False


@dataclass(frozen=True, slots=True)
class Mention:
    """A coin named in the text: which coin, the span that named it, and how sure we are."""

    entry: IndexEntry
    matched: str
    method: Method
    strength: int  # 3 = $TICKER, 2 = plainly a coin, 1 = everyday word the sentence makes a coin
    start: int
    # "Bitcoin Gold": a capitalised unknown word right after a name may make a longer name
    extension: str | None = None


def tokenize(text: str) -> list[Word]:
    """Split text into words, keeping '$' prefixes and in-word dots ('ether.fi')."""
    words = []
    for m in _WORD.finditer(text):
        raw = m.group()
        dollar = raw.startswith("$")
        raw = _CONTRACTION.sub("", raw.lstrip("$"))
        key = compact(fold(raw))
        if key:
            words.append(
                Word(
                    raw,
                    key,
                    m.start(),
                    m.start() + len(m.group()),
                    dollar,
                    accented=not raw.isascii(),
                )
            )
    return words


def _caps_informative(text: str) -> bool:
    """Upper case marks a ticker only when the whole message is not shouted."""
    letters = [c for c in text if c.isalpha()]
    return len(letters) < 8 or sum(c.isupper() for c in letters) / len(letters) < 0.8


def _has_cue(words: Sequence[Word], i: int, j: int, *, strict: bool) -> bool:
    """Does the sentence treat words[i:j] as a coin ('research link', 'link price')?"""
    verbs, nouns = (
        (STRICT_VERB_CUES, STRICT_NOUN_CUES) if strict else (ANY_VERB_CUES, ANY_NOUN_CUES)
    )
    before = words[i - 1].key if i > 0 else None
    after = words[j].key if j < len(words) else None
    if before in verbs or after in nouns:
        return True
    # "the price of link", "sentiment on link"
    two_before = words[i - 2].key if i > 1 else None
    if not strict and before in {"of", "on", "for"} and two_before in ANY_NOUN_CUES:
        return True
    # Vietnamese puts the noun first: "phân tích link", "giá link", "thanh khoản của link"
    if not strict and (
        before in VI_VERB_CUES or (before in VI_OF and two_before in VI_NOUN_CUES | ANY_NOUN_CUES)
    ):
        return True
    # a message that is only the word ("link?") asks about the coin
    return not strict and len(words) == j - i


def _pick(entries: Sequence[tuple[IndexEntry, Method]]) -> tuple[IndexEntry, Method]:
    # collisions go to the highest market cap
    return min(
        entries,
        key=lambda hit: (hit[0].market_cap_rank is None, hit[0].market_cap_rank or 0, hit[0].id),
    )


def _match_phrase(words: Sequence[Word], i: int, n: int, index: CoinIndex) -> Mention | None:
    span = words[i : i + n]
    if any(w.accented for w in span):
        return None  # "Đội ngũ", "thế nào": Vietnamese words, never part of a coin's name
    spaced = " ".join(normalize(w.raw) for w in span)
    hits: list[tuple[IndexEntry, Method]] = [
        hit for key in {spaced, spaced.replace(" ", "")} for hit in index.by_name(key)
    ]
    if not hits:
        return None
    entry, method = _pick(hits)
    typed_title = all(w.raw[:1].isupper() for w in span)
    everyday = spaced in _EVERYDAY_PHRASES
    # "the graph" / "internet computer" in plain lower case may just be English
    if everyday and not typed_title and not _has_cue(words, i, i + n, strict=False):
        return None
    strength = 1 if everyday and not typed_title else 2
    matched = _span_text(span)
    return Mention(entry, matched, method, strength, span[0].start)


def _match_word(words: Sequence[Word], i: int, index: CoinIndex, caps: bool) -> Mention | None:
    w = words[i]
    if w.key.isdigit() or (w.accented and not w.dollar):
        return None
    names: list[tuple[IndexEntry, Method]] = list(index.by_name(w.key))
    symbols: list[tuple[IndexEntry, Method]] = [(e, "symbol") for e in index.by_symbol(w.key)]
    if w.dollar:
        hits = symbols or names
        if not hits:
            return None
        entry, method = _pick(hits)
        return Mention(entry, "$" + w.raw, method, strength=3, start=w.start)
    is_caps = caps and len(w.key) >= 2 and w.raw.isupper() and not w.raw.isdigit()
    hits = symbols if is_caps and symbols else [*names, *symbols]
    if not hits:
        return None
    entry, method = _pick(hits)
    level = everyday_level(w.key)
    if level is None and len(w.key) <= 2 and not is_caps and not names:
        level = "weak"  # lower-case two-letter tickers ("op", "zk") read like words
    if level is None or (level == "weak" and is_caps):
        strength = 2
    elif _has_cue(words, i, i + 1, strict=level == "stop"):
        strength = 1
    else:
        return None
    if len(w.key) == 1:
        return None  # "$W" only
    return Mention(entry, w.raw, method, strength, w.start, _extension(words, i))


def _extension(words: Sequence[Word], i: int) -> str | None:
    nxt = words[i + 1] if i + 1 < len(words) else None
    if nxt is None or not nxt.raw[:1].isupper() or nxt.raw.isupper() or nxt.key in _NOT_NAME_PARTS:
        return None
    return f"{words[i].raw} {nxt.raw}"


def _span_text(span: Sequence[Word]) -> str:
    return " ".join(w.raw for w in span)


def find_mentions(text: str, index: CoinIndex) -> list[Mention]:
    """Every coin the text names, longest phrases first, without overlaps."""
    words = tokenize(text)
    caps = _caps_informative(text)
    used = [False] * len(words)
    found: list[Mention] = []
    for n in (4, 3, 2, 1):
        for i in range(len(words) - n + 1):
            if any(used[i : i + n]):
                continue
            m = _match_word(words, i, index, caps) if n == 1 else _match_phrase(words, i, n, index)
            if m is not None:
                found.append(m)
                used[i : i + n] = [True] * n
    return found


def find_project_mention(text: str, index: CoinIndex) -> Mention | None:
    """The coin the text is about: the most certain mention, the earliest among equals."""
    mentions = find_mentions(text, index)
    return max(mentions, key=lambda m: (m.strength, -m.start)) if mentions else None


@dataclass(frozen=True, slots=True)
class FuzzyHit:
    entry: IndexEntry
    score: float
    probe: str  # the typed text that was close


def fuzzy_hits(text: str, index: CoinIndex, *, cutoff: float = FUZZY_SUGGEST) -> list[FuzzyHit]:
    """Coins whose name/alias is close to a word (or two joined words) of the text, best first."""
    all_words = tokenize(text)
    keep = [not is_vocabulary(w.key) and not w.key.isdigit() and not w.accented for w in all_words]
    probes = [(w.key, w.raw) for w, k in zip(all_words, keep, strict=True) if k and len(w.key) >= 4]
    probes += [
        (a.key + b.key, f"{a.raw} {b.raw}")
        for (a, ka), (b, kb) in zip(
            zip(all_words, keep, strict=True),
            zip(all_words[1:], keep[1:], strict=True),
            strict=False,
        )
        if ka and kb
    ]
    keys = [k for k in index.name_keys() if " " not in k and len(k) >= 4]
    best: dict[str, FuzzyHit] = {}
    for probe, raw in probes:
        # typos rarely change the first letter; requiring it keeps "weather" from meaning "ether"
        candidates = [k for k in keys if k[0] == probe[0]]
        for key in difflib.get_close_matches(probe, candidates, n=6, cutoff=cutoff):
            score = difflib.SequenceMatcher(None, probe, key).ratio()
            entry, _ = _pick(index.by_name(key))
            if entry.id not in best or score > best[entry.id].score:
                best[entry.id] = FuzzyHit(entry, score, raw)
    return sorted(best.values(), key=lambda h: (-h.score, h.entry.market_cap_rank or 10**9))


def unique_typo(hits: Sequence[FuzzyHit]) -> FuzzyHit | None:
    """The one coin a typo clearly means, or None when it is not close or not unambiguous."""
    if not hits:
        return None
    top = hits[0]
    if top.score < FUZZY_ACCEPT or len(top.probe.replace(" ", "")) < 5:
        return None
    if len(hits) > 1 and hits[1].score > top.score - FUZZY_MARGIN:
        return None
    return top


def search_query(text: str) -> str | None:
    """The words left when everyday and crypto vocabulary is removed: what to ask /search."""
    words = [
        w.raw
        for w in tokenize(text)
        if not is_vocabulary(w.key) and not w.key.isdigit() and len(w.key) >= 2 and not w.accented
    ]
    return " ".join(words[:3]) or None


def resolve_offline(text: str, index: CoinIndex) -> Resolution:
    """Resolve using the index alone: known contract, mention, clear typo, else suggestions."""
    return _resolve_offline(text, index)[0]


def _resolve_offline(text: str, index: CoinIndex) -> tuple[Resolution, Mention | None]:
    query = text.strip()
    for pattern in (_EVM_ADDRESS, _BASE58_ADDRESS):
        for m in pattern.finditer(query):
            if hit := index.by_address(m.group()):
                project = hit[0].to_project(first_platform=hit[1])
                return Resolution(
                    query=text, project=project, matched=m.group(), method="contract"
                ), None
    mention = find_project_mention(query, index)
    if mention is not None:
        return Resolution(
            query=text,
            project=mention.entry.to_project(),
            matched=mention.matched,
            method=mention.method,
        ), mention
    hits = fuzzy_hits(query, index)
    if (typo := unique_typo(hits)) is not None:
        return Resolution(
            query=text, project=typo.entry.to_project(), matched=typo.probe, method="fuzzy"
        ), None
    suggestions = [h.entry.to_project() for h in hits[:SUGGESTIONS]]
    return Resolution(query=text, suggestions=suggestions), None


def project_from_coin(
    body: Any, *, platform: str | None = None, address: str | None = None
) -> Project | None:
    """A `Project` from a CoinGecko `/coins/{id}` (or contract) body; None if it lacks an id."""
    if not isinstance(body, dict) or not body.get("id") or not body.get("symbol"):
        return None
    rank = body.get("market_cap_rank")
    if rank is None:
        rank = (body.get("market_data") or {}).get("market_cap_rank")
    platforms = {p: address_key(a) for p, a in (body.get("platforms") or {}).items() if p and a}
    if platform and address:
        platforms.pop(platform, None)
        platforms = {platform: address_key(address), **platforms}
    github = []
    for url in ((body.get("links") or {}).get("repos_url") or {}).get("github") or []:
        path = str(url).removeprefix("https://github.com/").strip("/")
        if path and "://" not in path:
            github.append(path)
    return Project(
        id=str(body["id"]),
        symbol=str(body["symbol"]).upper(),
        name=str(body.get("name") or body["id"]),
        market_cap_rank=rank if isinstance(rank, int) else None,
        platforms=platforms,
        github_repos=github,
    )


def parse_search_coins(coins: Any) -> list[Project]:
    """Projects from a `/search` body's coins[], highest market cap first."""
    projects = []
    for c in coins if isinstance(coins, list) else []:
        if isinstance(c, dict) and c.get("id") and c.get("symbol") and c.get("name"):
            rank = c.get("market_cap_rank")
            projects.append(
                Project(
                    id=str(c["id"]),
                    symbol=str(c["symbol"]).upper(),
                    name=str(c["name"]),
                    market_cap_rank=rank if isinstance(rank, int) else None,
                )
            )
    return sorted(projects, key=lambda p: (p.market_cap_rank is None, p.market_cap_rank or 0))


def pick_search_result(coins: Any, query: str) -> tuple[Project | None, list[Project]]:
    """From a `/search` body's coins[]: the exact, ranked match (if any) and ranked suggestions."""
    projects = parse_search_coins(coins)
    # only a ranked coin counts as exact: an unranked namesake is more likely a copycat token
    ranked = [p for p in projects if p.market_cap_rank is not None]
    # the whole query naming a coin beats one of its words naming another
    for wanted in ({compact(query)}, {compact(w) for w in query.split()}):
        exact = [p for p in ranked if wanted & {compact(p.symbol), compact(p.name), compact(p.id)}]
        if exact:
            return exact[0], projects[:SUGGESTIONS]
    return None, projects[:SUGGESTIONS]


def _full_name_match(coins: Any, phrase: str) -> Project | None:
    """The ranked coin whose whole name is `phrase` ("Bitcoin Gold", not "Bitcoin")."""
    wanted = compact(phrase)
    for p in parse_search_coins(coins):
        if p.market_cap_rank is not None and compact(p.name) == wanted:
            return p
    return None


async def _cached_get(
    deps: Deps, cache_key: str, path: str, params: dict[str, str] | None = None
) -> tuple[int, Any]:
    """GET a CoinGecko path, reusing a 200 answer from Redis for an hour."""
    key = deps.keys("resolve", cache_key)
    redis = deps.redis
    if (
        hit := await best_effort.attempt(redis, "resolve cache read", lambda: redis.get(key), None)
    ) is not None:
        return 200, json.loads(hit)
    response = await deps.http.get(
        coingecko_url(deps.settings, path), params=params, headers=coingecko_headers(deps.settings)
    )
    if response.status_code != 200:
        return response.status_code, None
    body = response.json()
    raw = json.dumps(body)
    await best_effort.attempt(
        redis, "resolve cache write", lambda: redis.set(key, raw, ex=SEARCH_TTL_S), None
    )
    return 200, body


async def resolve_contract(deps: Deps, text: str, address: str) -> Resolution:
    """Find which coin a pasted EVM contract is, trying the common platforms in turn."""
    address = address.lower()
    for platform in CONTRACT_PLATFORMS:
        try:
            status, body = await _cached_get(
                deps, f"contract:{platform}:{address}", f"/coins/{platform}/contract/{address}"
            )
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("resolve: contract lookup failed on %s: %s", platform, exc)
            return Resolution(query=text)
        if status in (400, 404):  # not a token on this platform
            continue
        if status != 200:
            log.warning("resolve: contract lookup on %s answered %s", platform, status)
            return Resolution(query=text)
        if project := project_from_coin(body, platform=platform, address=address):
            return Resolution(query=text, project=project, matched=address, method="contract")
    return Resolution(query=text)


async def search_coins(deps: Deps, query: str) -> list[Any] | None:
    """CoinGecko `/search` coins[] for a query, or None when CoinGecko cannot be reached."""
    try:
        status, body = await _cached_get(
            deps, f"search:{compact(query)}", "/search", {"query": query}
        )
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("resolve: /search failed: %s", exc)
        return None
    if status != 200 or not isinstance(body, dict):
        log.warning("resolve: /search answered %s", status)
        return None
    coins = body.get("coins")
    return coins if isinstance(coins, list) else []


async def resolve_project(deps: Deps, text: str) -> Resolution:
    """Resolve what the user typed to one exact project, or return ranked suggestions."""
    if not text.strip():
        return Resolution(query=text)
    index = await load_index(deps)
    offline, mention = _resolve_offline(text, index)
    if offline.project is None and (address := _EVM_ADDRESS.search(text)):
        return await resolve_contract(deps, text, address.group())
    if mention is not None and mention.extension:
        longer = _full_name_match(
            await search_coins(deps, mention.extension) or [], mention.extension
        )
        if longer is not None and longer.id != mention.entry.id:
            return Resolution(
                query=text, project=longer, matched=mention.extension, method="search"
            )
    if offline.project is not None or (subject := search_query(text)) is None:
        return offline
    coins = await search_coins(deps, subject)
    if coins is None:
        return offline  # CoinGecko unreachable: the index's suggestions are all we have
    exact, ranked = pick_search_result(coins, subject)
    if exact is not None:
        in_index = index.get(exact.id)
        project = in_index.to_project() if in_index else exact
        return Resolution(query=text, project=project, matched=subject, method="search")
    merged = {p.id: p for p in [*offline.suggestions, *ranked]}
    return Resolution(query=text, suggestions=list(merged.values())[:SUGGESTIONS])


async def get_project(deps: Deps, project_id: str) -> Project | None:
    """The project with this CoinGecko id from the index (bundled and refreshed), if known."""
    entry = (await load_index(deps)).get(project_id)
    return entry.to_project() if entry else None


# --- comparisons ("compare SOL and ETH", "ARB vs OP tokenomics?", "so sánh SOL và ETH") -------

MAX_COMPARED = 3
# Words that make a message a comparison on their own; a project they name that does not
# resolve is reported, never dropped.
COMPARE_EXPLICIT = re.compile(
    r"(?<!\w)(?:compar(?:e|es|ed|ing|ison)|vs\.?|v\.s\.?|versus|against|head[\s-]to[\s-]head|"
    r"so\s+sanh|doi\s+chieu)(?!\w)",
    re.IGNORECASE,
)
# Words that make a comparison only when two or more projects are named around them.
COMPARE_SOFT = re.compile(
    r"(?<!\w)(?:or|and|better|stronger|weaker|safer|riskier|which|whose|hay|hoac|va|voi|hon|nao)"
    r"(?!\w)",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(
    r"(?<!\w)(?:vs\.?|v\.s\.?|versus|against|or|and|with|hay|hoac|hoặc|va|và|voi|với|than|hon|hơn)"
    r"(?!\w)|[,/&;:?!]",
    re.IGNORECASE,
)
# What is left of a part once these are gone is taken for a project's name.
_FILLER = re.compile(
    r"(?<!\w)(?:compar\w*|which|whose|who|what|whats|is|are|was|the|a|an|of|to|me|please|"
    r"between|better|best|stronger|strongest|weaker|safer|riskier|one|ones|coin|coins|token|"
    r"tokens|project|projects|team|teams|tokenomics|sentiment|market|price|prices|performance|"
    r"fundamentals|investment|long\s+term|now|today|so\s+sanh|doi\s+chieu|giua|nao|tot|manh|"
    r"hon|du\s+an|dong|cua|ve|thi|sao|the|gi|doi\s+ngu|gia|tam\s+ly|nen|mua|should|i|buy|"
    r"why|how|do|does|you|think|head|to)(?!\w)",
    re.IGNORECASE,
)


class Comparison(BaseModel):
    """The projects a comparison names, in the order named, and the names that did not
    resolve (each with suggestions)."""

    projects: list[Project] = Field(default_factory=list)
    unresolved: list[Resolution] = Field(default_factory=list)

    @property
    def too_many(self) -> bool:
        return len(self.projects) + len(self.unresolved) > MAX_COMPARED

    @property
    def ok(self) -> bool:
        return len(self.projects) >= 2 and not self.unresolved and not self.too_many


def asks_comparison(text: str) -> bool:
    """The message uses a comparison word ("compare", "vs", "which is better", "so sánh")."""
    folded = fold(text)
    return bool(COMPARE_EXPLICIT.search(folded) or COMPARE_SOFT.search(folded))


def _leftover(part: str) -> str:
    return " ".join(_FILLER.sub(" ", part).split()).strip(" .-'\"")


async def resolve_comparison(deps: Deps, text: str) -> Comparison | None:
    """The 2+ projects a comparison names, or None when the message is not a comparison (one
    project or none named). Each part between "vs", "or", "and", commas… is resolved on its
    own; with an explicit comparison word, a part that names nothing known is reported with
    suggestions instead of being dropped."""
    folded = fold(text)
    explicit = bool(COMPARE_EXPLICIT.search(folded))
    if not explicit and not COMPARE_SOFT.search(folded):
        return None
    index = await load_index(deps)
    found = Comparison()
    seen: set[str] = set()
    for part in _SEPARATORS.split(text):
        if not part.strip():
            continue
        resolution = resolve_offline(part, index)
        if resolution.project is not None:
            if resolution.project.id not in seen:
                seen.add(resolution.project.id)
                found.projects.append(resolution.project)
            continue
        name = _leftover(part)
        if not explicit or not _leftover(fold(part)) or len(name.split()) > 3:
            continue
        looked_up = await resolve_project(deps, name)
        if looked_up.project is not None:
            if looked_up.project.id not in seen:
                seen.add(looked_up.project.id)
                found.projects.append(looked_up.project)
        else:
            found.unresolved.append(Resolution(query=name, suggestions=looked_up.suggestions))
    named = len(found.projects) + len(found.unresolved)
    if named < 2 or not found.projects:
        return None
    return found
