"""Billing's exceptions, one hierarchy for the package.

BillingError
├── InvalidIdentity        an identity string that is not `<kind>:<id>` of a known kind
├── AccountNotFound        no account with that id
├── LinkCodeInvalid        unknown, expired, already used, or too many attempts
├── QuotaUnavailable       neither Redis nor PostgreSQL could decide a free-tier request
├── TooManyNewAccounts     a client network created its day's allowance of anonymous accounts
├── BillingNotConfigured   Stripe keys or the tier's price id are not set
├── PaymentProviderError   Stripe refused or could not be reached
└── WebhookRejected        bad signature, stale/future timestamp, or malformed payload
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # billing.quota raises these errors
    from billing.quota import QuotaDecision


class BillingError(Exception):
    """Base class for every billing failure."""


class InvalidIdentity(BillingError, ValueError):
    pass


class AccountNotFound(BillingError, LookupError):
    pass


class LinkCodeInvalid(BillingError):
    pass


class QuotaUnavailable(BillingError):
    pass


class TooManyNewAccounts(BillingError):
    """`decision` is the refused per-network decision (for Retry-After and the message)."""

    def __init__(self, decision: QuotaDecision) -> None:
        super().__init__("too many new anonymous sessions from this network today")
        self.decision = decision


class BillingNotConfigured(BillingError):
    pass


class PaymentProviderError(BillingError):
    pass


class WebhookRejected(BillingError):
    pass
