"""Buttons under answers: follow-up questions for the same project, "did you mean"
suggestions, and Upgrade (a link button to the account's signed Checkout link).

Follow-up buttons are `DynamicItem`s: the question lives in the custom id
(`ask:<aspect>:<coingecko id>`, or `research:<id>` for a suggestion), so a button keeps
working after a restart and nothing has to remember which view belongs to which message.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, cast

import discord

from chainlens.i18n import ENGLISH, N_, Localizer

Aspect = Literal["research", "sentiment", "tokenomics", "team", "chart"]
# Labels are msgids, shown in the asker's language (a pressed button keeps its label).
FOLLOW_UPS: tuple[tuple[Aspect, str, str], ...] = (
    ("sentiment", N_("Sentiment"), "💬"),
    ("tokenomics", N_("Tokenomics"), "🪙"),
    ("team", N_("Team"), "👥"),
    ("chart", N_("Chart"), "📈"),
)
# The same data as the Telegram bot's callback buttons: "ask:<aspect>:<id>", "research:<id>".
_CUSTOM_ID = (
    r"(?:ask:(?P<aspect>sentiment|tokenomics|team|chart)|research)"
    r":(?P<project>[a-z0-9][a-z0-9._-]{0,80})"
)

# What a pressed button runs (a new charged question): `ChainLensDiscord.run_follow_up`.
FollowUpRunner = Callable[[discord.Interaction[Any], Aspect, str], Awaitable[None]]


class FollowUpButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_CUSTOM_ID):
    """A button that asks one more question about a project, charged like any question."""

    def __init__(
        self, aspect: Aspect, project_id: str, label: str, emoji: str | None = None
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label[:80],
                emoji=emoji,
                style=discord.ButtonStyle.secondary,
                custom_id=(
                    f"research:{project_id}"
                    if aspect == "research"
                    else f"ask:{aspect}:{project_id}"
                ),
            )
        )
        self.aspect: Aspect = aspect
        self.project_id = project_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FollowUpButton:
        # _CUSTOM_ID's `aspect` group admits only Aspect names
        aspect = cast("Aspect", match["aspect"] or "research")
        label = getattr(item, "label", None) or aspect.title()
        return cls(aspect, match["project"], label)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        runner: FollowUpRunner = interaction.client.run_follow_up
        await runner(interaction, self.aspect, self.project_id)


def upgrade_button(url: str, loc: Localizer = ENGLISH) -> discord.ui.Button[Any]:
    return discord.ui.Button(
        label=loc._("Upgrade to Pro"), emoji="⭐", style=discord.ButtonStyle.link, url=url
    )


def upgrade_view(url: str, loc: Localizer = ENGLISH) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(upgrade_button(url, loc))
    return view


def answer_view(
    *,
    project_id: str | None,
    suggestions: Sequence[tuple[str, str]] = (),
    upgrade_url: str | None = None,
    loc: Localizer = ENGLISH,
) -> discord.ui.View | None:
    """Follow-ups for the answer's project, or "did you mean" buttons (id, label) when the
    project was not recognised; Upgrade when relevant. None when there is nothing to show."""
    view = discord.ui.View(timeout=None)
    if project_id:
        for aspect, label, emoji in FOLLOW_UPS:
            view.add_item(FollowUpButton(aspect, project_id, loc._(label), emoji))
    else:
        for suggestion_id, label in suggestions[:5]:
            view.add_item(FollowUpButton("research", suggestion_id, label, "🔎"))
    if upgrade_url:
        view.add_item(upgrade_button(upgrade_url, loc))
    return view if view.children else None
