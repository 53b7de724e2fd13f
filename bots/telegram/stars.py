"""Pro paid in Telegram Stars: the invoice link, the pre-checkout check, the payment.

Telegram asks before charging (`pre_checkout_query`): we answer ok only for a payload we
signed, in Stars, at today's price, for an account that exists. The `successful_payment`
message (first payment and each monthly renewal) is applied once per
`telegram_payment_charge_id` (billing/telegram_stars.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from telegram import Bot, LabeledPrice, Update
from telegram.ext import ContextTypes

from billing.accounts import get_account
from billing.errors import AccountNotFound
from billing.telegram_stars import (
    STARS_CURRENCY,
    STARS_PERIOD_S,
    InvalidStarsPayload,
    StarsPayment,
    apply_stars_payment,
    invoice_payload,
    read_invoice_payload,
)
from bots.telegram.commands import _say, deps_of, loc_of
from chainlens.i18n import ENGLISH, N_, Localizer
from chainlens.settings import Settings

log = logging.getLogger(__name__)


async def stars_invoice_link(
    bot: Bot, settings: Settings, account_id: int, loc: Localizer = ENGLISH
) -> str:
    """A Telegram invoice link for a 30-day Pro subscription paid in Stars."""
    price = settings.telegram_stars_pro_price
    assert price is not None
    return await bot.create_invoice_link(
        title="ChainLens Pro",
        description=loc._(
            "{daily} research requests a day on Telegram, Discord and the web; "
            "renews monthly, cancel any time in Telegram."
        ).format(daily=loc.number(settings.limits_for("pro").daily)),
        payload=invoice_payload(settings, account_id, "pro"),
        currency=STARS_CURRENCY,
        prices=[LabeledPrice(loc._("Pro, 30 days"), price)],
        subscription_period=STARS_PERIOD_S,
    )


async def pre_checkout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Approve a Stars checkout only for our own payload, currency and price."""
    query = update.pre_checkout_query
    assert query is not None
    settings = deps_of(context).settings
    problem = None
    try:
        account_id, _ = read_invoice_payload(settings, query.invoice_payload)
        await get_account(deps_of(context), account_id)
    except (InvalidStarsPayload, AccountNotFound):
        problem = N_("This invoice is not valid any more. Send /upgrade for a new one.")
    else:
        price = settings.telegram_stars_pro_price
        if query.currency != STARS_CURRENCY or query.total_amount != price:
            problem = N_("The price has changed. Send /upgrade for a new invoice.")
    if problem:
        log.warning("telegram stars pre-checkout refused: %s", problem)
        loc = await loc_of(update, context)
        await query.answer(ok=False, error_message=loc._(problem))
    else:
        await query.answer(ok=True)


async def payment_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Apply a Stars payment (once per charge id) and confirm it in the chat."""
    message = update.effective_message
    assert message is not None and message.successful_payment is not None
    paid = message.successful_payment
    deps = deps_of(context)
    account_id, tier = read_invoice_payload(deps.settings, paid.invoice_payload)
    expires = paid.subscription_expiration_date or (
        datetime.now(UTC) + timedelta(seconds=STARS_PERIOD_S)
    )
    user_id = message.from_user.id if message.from_user else message.chat.id
    tier_now, applied = await apply_stars_payment(
        deps,
        StarsPayment(
            charge_id=paid.telegram_payment_charge_id,
            account_id=account_id,
            telegram_user_id=user_id,
            tier=tier,
            total_amount=paid.total_amount,
            currency=paid.currency,
            expires_at=expires,
            is_recurring=bool(paid.is_recurring),
            is_first_recurring=bool(paid.is_first_recurring),
        ),
    )
    if applied:
        loc = await loc_of(update, context)
        await _say(
            update,
            context,
            loc._(
                "⭐ Thank you! Your plan is now **{tier}** until {date}; it renews "
                "monthly in Stars until you cancel."
            ).format(tier=tier_now, date=loc.date(expires)),
        )
