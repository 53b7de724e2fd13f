"""Who is speaking and whether the bot is addressed: private chats, groups, channels.

Groups: the bot answers only when mentioned (`@bot …`, the mention is stripped), replied to,
or given a command. Anonymous group admins and messages sent on behalf of a channel carry a
`sender_chat` instead of a person: that chat is the identity (and, when it is the group itself,
an admin). Channel posts have no user at all.
"""

from __future__ import annotations

from telegram import Bot, Message, MessageEntity, Update
from telegram.constants import ChatMemberStatus, ChatType

from bots.telegram.answer import Asker


def identity_of(update: Update) -> str:
    """`telegram:<id>` of the person (or, for anonymous senders, the chat) behind an update."""
    message = update.effective_message
    if update.callback_query is not None:  # a press is always by a person
        return f"telegram:{update.callback_query.from_user.id}"
    if message is not None and message.sender_chat is not None:
        return f"telegram:{message.sender_chat.id}"
    if update.effective_user is not None:
        return f"telegram:{update.effective_user.id}"
    assert update.effective_chat is not None
    return f"telegram:{update.effective_chat.id}"


def language_hint(update: Update) -> str | None:
    """The sender's Telegram app language (`language_code`, an IETF tag like 'vi' or 'en-GB'):
    a press's presser, a message's author; None for channel posts and anonymous admins."""
    if update.callback_query is not None:
        return update.callback_query.from_user.language_code
    message = update.effective_message
    if message is not None and message.sender_chat is not None:
        return None
    user = update.effective_user
    return user.language_code if user is not None else None


def asker_of(update: Update) -> Asker:
    """Where and for whom to answer; groups keep one conversation per member."""
    message = update.effective_message
    assert message is not None
    chat = message.chat
    identity = identity_of(update)
    conversation = (
        f"telegram:{chat.id}"
        if chat.type == ChatType.PRIVATE
        else f"telegram:{chat.id}:{identity.partition(':')[2]}"
    )
    return Asker(
        chat_id=chat.id,
        chat_type=chat.type,
        identity=identity,
        conversation_id=conversation,
        language_hint=language_hint(update),
        reply_to=(
            message.message_id
            if update.callback_query is None and chat.type != ChatType.PRIVATE
            else None
        ),
        thread_id=(
            message.message_thread_id if getattr(message, "is_topic_message", False) else None
        ),
    )


def addressed_text(message: Message, bot_username: str, bot_id: int) -> str | None:
    """The question in a message meant for the bot (mention stripped), else None."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    if message.chat.type == ChatType.CHANNEL:
        return None
    mentioned = False
    # Remove mentions from the end backwards so earlier offsets stay valid.
    entities = message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
    for entity, value in sorted(entities.items(), key=lambda e: e[0].offset, reverse=True):
        ours = (
            value.lstrip("@").lower() == bot_username.lower()
            if entity.type == MessageEntity.MENTION
            else entity.user is not None and entity.user.id == bot_id
        )
        if ours:
            mentioned = True
            utf16 = text.encode("utf-16-le")
            text = (
                utf16[: entity.offset * 2] + utf16[(entity.offset + entity.length) * 2 :]
            ).decode("utf-16-le")
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        mentioned = True
    return " ".join(text.split()) if mentioned else None


async def is_chat_admin(bot: Bot, message: Message) -> bool:
    """May this sender change the chat's settings (subscribe it to reports)?"""
    chat = message.chat
    if chat.type in (ChatType.PRIVATE, ChatType.CHANNEL):
        return True  # only a channel's admins can post in it
    if message.sender_chat is not None:
        return message.sender_chat.id == chat.id  # an anonymous admin of this group
    if message.from_user is None:
        return False
    return await is_member_admin(bot, chat.id, message.from_user.id)


async def is_member_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Is this person an owner or administrator of the group (a button press's presser)?"""
    member = await bot.get_chat_member(chat_id, user_id)
    return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
