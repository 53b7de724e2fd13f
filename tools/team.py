"""Team tool: GitHub activity, DefiLlama audits and backers, CoinGecko links, news partnerships."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from chainlens.deps import Deps
from tools import scoring
from tools.collect import Collector, ToolRun
from tools.onchain import defillama_slug
from tools.results import Headline, Project, RepoStats, TeamResult
from tools.sentiment import project_news
from tools.sources import coingecko, defillama
from tools.sources import github as gh

_PARTNER_WORDS = re.compile(r"partner(ship)?s?|integrat\w*|collaborat\w*|teams up", re.IGNORECASE)
_GITHUB_FIELDS = ("commits_90d", "active_contributors_90d", "stars", "forks", "last_push")


def _repo_limit(deps: Deps) -> int:
    # keyless GitHub allows 60 calls/hour; three calls per repository
    return 3 if deps.settings.github_token else 2


async def _repo_names(deps: Deps, c: Collector, refs: list[str]) -> list[str]:
    names: list[str] = []
    limit = _repo_limit(deps)
    for ref in refs:
        parsed = gh.parse_ref(ref)
        if parsed is None:
            continue
        owner, repo = parsed
        if repo:
            candidates = [f"{owner}/{repo}"]
        else:
            found = await c.fetch(
                gh.SOURCE,
                gh.org_repos(deps, owner, limit),
                fields=_GITHUB_FIELDS,
                url=f"https://github.com/{owner}",
            )
            candidates = found or []
        names.extend(n for n in candidates if n.lower() not in {x.lower() for x in names})
        if len(names) >= limit:
            break
    return names[:limit]


async def _one_repo(deps: Deps, full_name: str) -> RepoStats:
    """Repo facts plus 90-day commits and contributors (stats, else /commits fallback)."""
    now = gh.now_utc()
    repo, activity, contributors = await asyncio.gather(
        gh.fetch_repo(deps, full_name),
        gh.fetch_stats(deps, full_name, "commit_activity"),
        gh.fetch_stats(deps, full_name, "contributors"),
    )
    stats = gh.repo_stats(repo)
    stats.commits_90d = gh.commits_from_activity(activity, now)
    stats.active_contributors_90d = gh.active_contributors(contributors, now)
    if stats.commits_90d is None or stats.active_contributors_90d is None:
        commits = await gh.fetch_commits_since(deps, full_name, now - timedelta(days=90))
        if stats.commits_90d is None:
            stats.commits_90d = len(commits)  # a lower bound when the page is full (100)
        if stats.active_contributors_90d is None:
            stats.active_contributors_90d = gh.commit_authors(commits)
    return stats


async def _repos(deps: Deps, c: Collector, names: list[str]) -> list[RepoStats]:
    async def one(name: str) -> RepoStats | None:
        return await c.fetch(
            gh.SOURCE,
            _one_repo(deps, name),
            fields=_GITHUB_FIELDS,
            url=f"https://github.com/{name}",
        )

    return [r for r in await asyncio.gather(*(one(n) for n in names)) if r is not None]


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


async def run_team(deps: Deps, project: Project) -> ToolRun:
    c = Collector()
    page = coingecko.page_url(project.id)

    async def protocol() -> dict[str, Any] | None:
        slug = await defillama_slug(deps, c, project, ("audits_status", "backers"))
        if slug is None:
            return None
        return await c.fetch(
            defillama.SOURCE,
            defillama.fetch_protocol(deps, slug),
            fields=("audits_status", "backers"),
            url=defillama.page_url(slug),
        )

    coin_task = asyncio.ensure_future(
        c.fetch(
            coingecko.SOURCE, coingecko.fetch_coin(deps, project.id), fields=("links",), url=page
        )
    )
    proto_task = asyncio.ensure_future(protocol())
    news_task = asyncio.ensure_future(project_news(deps, c, project, ("partnerships",)))

    async def repo_refs() -> list[str]:
        # start GitHub as soon as CoinGecko names the repos; DefiLlama's list only as fallback
        if project.github_repos:
            return project.github_repos
        coin = await coin_task
        if coin and (repos := coingecko.github_repos(coin)):
            return repos
        proto = await proto_task
        return defillama.github_orgs(proto) if proto else []

    async def repos() -> tuple[list[str], list[RepoStats]]:
        refs = await repo_refs()
        return refs, (await _repos(deps, c, await _repo_names(deps, c, refs)) if refs else [])

    (refs, repo_stats), coin, proto, matched = await asyncio.gather(
        repos(), coin_task, proto_task, news_task
    )
    r = TeamResult(project_id=project.id, repos=repo_stats)
    if coin:
        r.links = coingecko.links(coin)
    if proto:
        status, r.audit_links = defillama.audits(proto)
        r.audits_status = status
        r.backers = defillama.backers(proto)
        if proto.get("twitter") and "twitter" not in r.links:
            r.links["twitter"] = f"https://twitter.com/{proto['twitter']}"
        if isinstance(proto.get("url"), str) and proto["url"] and "homepage" not in r.links:
            r.links["homepage"] = proto["url"]
    r.partnerships = [
        Headline(title=i.title, url=i.url, source=i.source, published_at=i.published_at)
        for i in (matched or [])
        if _PARTNER_WORDS.search(i.text)
    ][:5]

    github_known = True
    if refs:
        github_known = bool(r.repos)
    elif coin is None and proto is None:
        github_known = False
        for name in _GITHUB_FIELDS:
            c.lack(name, "repository list unknown: CoinGecko and DefiLlama could not be fetched")
    else:
        for name in _GITHUB_FIELDS:
            c.lack(name, "no public code repository is linked (CoinGecko, DefiLlama)")

    if r.repos:
        r.commits_90d = _sum([x.commits_90d for x in r.repos])
        r.active_contributors_90d = _sum([x.active_contributors_90d for x in r.repos])
        r.stars = _sum([x.stars for x in r.repos])
        r.forks = _sum([x.forks for x in r.repos])
        pushes = [x.pushed_at for x in r.repos if x.pushed_at]
        r.last_push = max(pushes) if pushes else None
        r.github_activity = scoring.github_activity(r.commits_90d, r.active_contributors_90d)
        r.links.setdefault("github", r.repos[0].url)
    elif not refs and (coin or proto):
        r.github_activity = "none"

    if r.repos:
        days = (gh.now_utc() - r.last_push).total_seconds() / 86400 if r.last_push else None
        activity = scoring.activity_component(r.commits_90d, r.active_contributors_90d)
        recency = scoring.recency_component(days, all(x.archived for x in r.repos))
        adoption = scoring.adoption_component(r.stars, r.forks)
    elif github_known and not refs:
        activity = recency = adoption = 0.0  # "no public code" counts against, it is not unknown
    else:
        activity = recency = adoption = None
    present = {
        "homepage": "homepage" in r.links,
        "github": bool(r.repos) or "github" in r.links,
        "twitter": "twitter" in r.links,
        "whitepaper": "whitepaper" in r.links,
        "backers": bool(r.backers),
    }
    transparency = sum(present.values()) / len(present) if (coin or proto) else None
    audits = scoring.audits_component(r.audits_status, len(r.audit_links)) if proto else None
    r.team_score = scoring.team_score(
        {
            "activity": activity,
            "recency": recency,
            "adoption": adoption,
            "audits": audits,
            "transparency": transparency,
        }
    )
    r.credibility_score = None if r.team_score is None else round(r.team_score / 10, 1)
    if r.team_score is None:
        c.lack("credibility_score", "no team source could be fetched")
    c.finish(r)
    return ToolRun(r, c.called, c.ok)
