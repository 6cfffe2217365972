"""The text of alerts: a `Notification` rendered into an outbox `Message` (title, markdown, HTML).

The templates (templates/alert*.j2, in the one Jinja environment of `checker.render`) see
the notification's JSON form, the same document the incidents table stores.
"""

from __future__ import annotations

from checker.alerting.notification import Notification
from checker.alerting.outbox import Message
from checker.redact import Redactor
from checker.render import env

__all__ = ["alert_message"]


def alert_message(n: Notification, redactor: Redactor, status_url: str | None = None) -> Message:
    """A notification -> an outbox Message; every text passes the redactor."""
    ctx = {"n": n.to_json(), "status_url": status_url}
    title = env().get_template("alert_title.j2").render(ctx).strip()
    markdown = env().get_template("alert.md.j2").render(ctx).strip() + "\n"
    html = env().get_template("alert.html.j2").render(ctx)
    return Message(
        dedup_key=n.dedup_key,
        kind="alert",
        notify_type=n.notify_type,
        title=redactor.text(title),
        body_markdown=redactor.text(markdown),
        body_html=redactor.text(html),
        tags=n.tags,
    )
