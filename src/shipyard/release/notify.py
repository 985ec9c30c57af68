"""Webhook notifications (Slack- and Teams-compatible JSON) for gate verdicts, promotions,
failures and reaped deployments.

The body is `{"text": ..., "event": ..., "project": ..., "details": {...}}`: Slack incoming
webhooks and Teams workflow webhooks both show `text`; the rest is for machines. URLs are secret
references (a webhook URL is a credential). Sending is best effort by design: a webhook that
fails, times out or cannot be resolved is logged as a warning and never fails the pipeline or
the promotion that triggered it.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("shipyard.notify")


def notify(config: Any, event: str, text: str, details: dict[str, Any] | None = None) -> int:
    """Send `event` to every webhook that wants it; returns how many accepted it."""
    settings = getattr(config, "notifications", None)
    if settings is None or event not in settings.events or not settings.webhooks:
        return 0
    import httpx

    from shipyard.secrets.refs import resolve

    body = {
        "text": f"[{config.name}] {text}",
        "event": event,
        "project": config.name,
        "details": details or {},
    }
    sent = 0
    for ref in settings.webhooks:
        try:
            url = resolve(ref, "notifications.webhooks", root=config.project_dir)
            response = httpx.post(url, json=body, timeout=settings.timeout_s)
            response.raise_for_status()
            sent += 1
        except Exception as exc:  # never fail the caller; never print the URL (it holds a token)
            log.warning("notification %s to webhook %s failed: %s", event, ref, type(exc).__name__)
    return sent
