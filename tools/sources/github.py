"""GitHub REST v3: repository facts, 90-day commits and active contributors."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from chainlens.deps import Deps
from tools.http import BadResponse, get, get_json, http_options
from tools.results import RepoStats
from tools.sources._util import iso, num

SOURCE = "GitHub"
_REF = re.compile(
    r"^(?:https?://(?:www\.)?github\.com/)?([A-Za-z0-9_.-]+)(?:/([A-Za-z0-9_.-]+))?/?$"
)
_MEMO_S = 3600  # keyless GitHub allows 60 calls/hour: reuse answers for an hour


def _base(deps: Deps) -> str:
    return str(deps.settings.github_api_url).rstrip("/")


def _headers(deps: Deps) -> dict[str, str]:
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if deps.settings.github_token:
        headers["Authorization"] = f"Bearer {deps.settings.github_token.get_secret_value()}"
    return headers


def parse_ref(ref: str) -> tuple[str, str | None] | None:
    """("owner", "repo") or ("org", None) from a URL or "owner/repo"; None when not GitHub."""
    match = _REF.match(ref.strip().removesuffix(".git"))
    if not match:
        return None
    return match.group(1), match.group(2)


async def org_repos(deps: Deps, org: str, limit: int) -> list[str]:
    """The organisation's most recently pushed, non-fork, non-archived repositories."""
    url = f"{_base(deps)}/orgs/{org}/repos"
    body = await get_json(
        deps,
        url,
        source=SOURCE,
        headers=_headers(deps),
        memo_ttl=_MEMO_S,
        params={"sort": "pushed", "per_page": "10"},
    )
    if not isinstance(body, list):
        raise BadResponse(SOURCE, url, "org repo list is not a list")
    names = [
        r["full_name"]
        for r in body
        if isinstance(r, dict)
        and isinstance(r.get("full_name"), str)
        and not r.get("fork")
        and not r.get("archived")
    ]
    return names[:limit]


async def fetch_repo(deps: Deps, full_name: str) -> dict[str, Any]:
    url = f"{_base(deps)}/repos/{full_name}"
    body = await get_json(deps, url, source=SOURCE, headers=_headers(deps), memo_ttl=_MEMO_S)
    if not isinstance(body, dict) or "full_name" not in body:
        raise BadResponse(SOURCE, url, "repository body has no full_name")
    return body


async def fetch_stats(deps: Deps, full_name: str, kind: str) -> Any | None:
    """A `stats/<kind>` body, or None while GitHub still answers 202 (computing)."""
    url = f"{_base(deps)}/repos/{full_name}/stats/{kind}"
    options = http_options(deps)
    for attempt in range(options.github_stats_attempts):
        response = await get(deps, url, source=SOURCE, headers=_headers(deps))
        if response.status_code != 202:
            try:
                return response.json()
            except ValueError:
                raise BadResponse(SOURCE, url, "stats body is not valid JSON") from None
        if attempt + 1 < options.github_stats_attempts:
            await asyncio.sleep(options.github_stats_wait_s)
    return None


async def fetch_commits_since(deps: Deps, full_name: str, since: datetime) -> list[Any]:
    """Up to 100 commits since `since` (the fallback when stats stay at 202)."""
    url = f"{_base(deps)}/repos/{full_name}/commits"
    body = await get_json(
        deps,
        url,
        source=SOURCE,
        headers=_headers(deps),
        memo_ttl=_MEMO_S,
        params={"since": since.strftime("%Y-%m-%dT%H:%M:%SZ"), "per_page": "100"},
    )
    if not isinstance(body, list):
        raise BadResponse(SOURCE, url, "commit list is not a list")
    return body


# --- parsers ----------------------------------------------------------------------------------


def repo_stats(repo: dict[str, Any]) -> RepoStats:
    stars, forks = num(repo.get("stargazers_count")), num(repo.get("forks_count"))
    archived = repo.get("archived")
    return RepoStats(
        full_name=str(repo.get("full_name")),
        url=str(repo.get("html_url") or f"https://github.com/{repo.get('full_name')}"),
        stars=int(stars) if stars is not None else None,
        forks=int(forks) if forks is not None else None,
        pushed_at=iso(repo.get("pushed_at")),
        archived=archived if isinstance(archived, bool) else None,
    )


def commits_from_activity(activity: Any, now: datetime) -> int | None:
    """Commits in the 90 days before `now` from `stats/commit_activity` weeks."""
    if not isinstance(activity, list):
        return None
    cutoff = (now - timedelta(days=90)).timestamp()
    weeks = [w for w in activity if isinstance(w, dict) and num(w.get("week")) is not None]
    return int(
        sum(num(w.get("total")) or 0 for w in weeks if (num(w["week"]) or 0) + 7 * 86400 > cutoff)
    )


def active_contributors(contributors: Any, now: datetime) -> int | None:
    """Authors with at least one commit in a week that overlaps the last 90 days."""
    if not isinstance(contributors, list):
        return None
    cutoff = (now - timedelta(days=90)).timestamp()
    active = 0
    for person in contributors:
        weeks = person.get("weeks") if isinstance(person, dict) else None
        if isinstance(weeks, list) and any(
            isinstance(w, dict)
            and (num(w.get("w")) or 0) + 7 * 86400 > cutoff
            and (num(w.get("c")) or 0) > 0
            for w in weeks
        ):
            active += 1
    return active


def commit_authors(commits: list[Any]) -> int:
    """Distinct authors in a `/commits` page (login, else the commit e-mail)."""
    authors: set[str] = set()
    for c in commits:
        if not isinstance(c, dict):
            continue
        login = (c.get("author") or {}).get("login") if isinstance(c.get("author"), dict) else None
        email = ((c.get("commit") or {}).get("author") or {}).get("email")
        if login or email:
            authors.add(str(login or email))
    return len(authors)


def now_utc() -> datetime:
    return datetime.now(UTC)
