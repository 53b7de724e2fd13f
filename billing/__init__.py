"""Accounts and identities, linking, tiers and quotas, durable usage, Stripe.

Import from here: `account_for_identity`, `consume_request`, `record_usage`, ... Exceptions are
in `billing.errors` (hierarchy in its docstring).
"""

from billing.accounts import (
    Account,
    account_for_identity,
    create_link_code,
    get_account,
    identities_of,
    redeem_link_code,
)
from billing.anonymous import purge_anonymous_accounts
from billing.errors import (
    AccountNotFound,
    BillingError,
    BillingNotConfigured,
    InvalidIdentity,
    LinkCodeInvalid,
    PaymentProviderError,
    QuotaUnavailable,
    WebhookRejected,
)
from billing.quota import QuotaDecision, consume_request, quota_status, refund_request
from billing.usage import UsageRecord, record_usage

__all__ = [
    "Account",
    "AccountNotFound",
    "BillingError",
    "BillingNotConfigured",
    "InvalidIdentity",
    "LinkCodeInvalid",
    "PaymentProviderError",
    "QuotaDecision",
    "QuotaUnavailable",
    "UsageRecord",
    "WebhookRejected",
    "account_for_identity",
    "consume_request",
    "create_link_code",
    "get_account",
    "identities_of",
    "purge_anonymous_accounts",
    "quota_status",
    "record_usage",
    "redeem_link_code",
    "refund_request",
]
