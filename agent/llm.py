"""The one LiteLLM Router: ordered models, fallbacks, timeouts and cooldowns, built from settings.

Retries and fallbacks live only here (STYLE.md): callers make one `acompletion` call and get
either a response or the last model's error.
"""

from __future__ import annotations

import os

# Read before litellm is imported: never fetch the model price map from the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import litellm
from litellm.router import Router

from chainlens.settings import Settings

log = logging.getLogger(__name__)

litellm.telemetry = False
litellm.suppress_debug_info = True
# Providers that do not accept a parameter (e.g. stream_options) get it dropped, not a 400.
litellm.drop_params = True

COOLDOWN_S = 30.0
ALLOWED_FAILS = 1


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token for a model the bundled price map does not know (self-hosted, tests)."""

    input_per_token: float
    output_per_token: float


_PROVIDER_KEYS = {
    "openai": "openai_api_key",
    "anthropic": "anthropic_api_key",
    "gemini": "gemini_api_key",
    "groq": "groq_api_key",
}


def _api_key(settings: Settings, model: str) -> str | None:
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    attr = _PROVIDER_KEYS.get(provider)
    secret = getattr(settings, attr) if attr else None
    return secret.get_secret_value() if secret is not None else None


def model_list(
    settings: Settings, prices: Mapping[str, ModelPrice] | None = None
) -> list[dict[str, Any]]:
    """One deployment per configured model; the model string is also its group name."""
    deployments: list[dict[str, Any]] = []
    for model in settings.llm_models:
        params: dict[str, Any] = {
            "model": model,
            "timeout": settings.llm_timeout_s,
            "stream_timeout": settings.llm_timeout_s,
            "max_retries": 0,  # the SDK's own retries would hide failures from the Router
        }
        key = _api_key(settings, model)
        if key:
            params["api_key"] = key
        if settings.llm_api_base:
            params["api_base"] = settings.llm_api_base
        price = (prices or {}).get(model)
        if price is not None:
            params["input_cost_per_token"] = price.input_per_token
            params["output_cost_per_token"] = price.output_per_token
        deployments.append({"model_name": model, "litellm_params": params})
    return deployments


def build_router(settings: Settings, *, prices: Mapping[str, ModelPrice] | None = None) -> Router:
    """A Router over `settings.llm_models` in order, each falling back to the ones after it."""
    models = list(settings.llm_models)
    if not models:
        raise ValueError("LLM_MODELS is empty: there is no model to route to")
    chain = [{model: models[i + 1 :]} for i, model in enumerate(models) if models[i + 1 :]]
    if settings.log_level != "DEBUG":
        # LiteLLM logs a traceback per failed hop; compose logs the outcome once instead.
        logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
        logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    return Router(
        model_list=model_list(settings, prices),
        fallbacks=chain,
        context_window_fallbacks=chain,
        num_retries=0,  # a failing model hands over to the next one at once
        timeout=settings.llm_timeout_s,
        stream_timeout=settings.llm_timeout_s,
        allowed_fails=ALLOWED_FAILS,
        cooldown_time=COOLDOWN_S,
    )


def cost_usd(model: str, tokens_in: int, tokens_out: int, router: Router | None = None) -> float:
    """LiteLLM's price for these tokens on `model` (deployment prices first), 0.0 when unknown."""
    if router is not None:
        for deployment in router.model_list:
            params = deployment.get("litellm_params", {})
            if deployment.get("model_name") == model or params.get("model") == model:
                cin = params.get("input_cost_per_token")
                cout = params.get("output_cost_per_token")
                if cin is not None or cout is not None:
                    return tokens_in * float(cin or 0) + tokens_out * float(cout or 0)
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=tokens_in, completion_tokens=tokens_out
        )
    except Exception:  # noqa: BLE001 - litellm: plain Exception for a model with no price
        log.debug("no price known for %s", model)
        return 0.0
    return float(prompt_cost + completion_cost)


def max_price_per_token(router: Router) -> tuple[float, float]:
    """The dearest (input, output) USD per token among the router's models, for cost caps."""
    price_in = price_out = 0.0
    for deployment in router.model_list:
        params = deployment.get("litellm_params", {})
        cin, cout = params.get("input_cost_per_token"), params.get("output_cost_per_token")
        if cin is None and cout is None:
            info = litellm.model_cost.get(str(params.get("model")), {}) or litellm.model_cost.get(
                str(params.get("model")).split("/", 1)[-1], {}
            )
            cin, cout = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        price_in = max(price_in, float(cin or 0))
        price_out = max(price_out, float(cout or 0))
    return price_in, price_out
