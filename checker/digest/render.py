"""The digest as an HTML mail (CSS inlined), plain text, and a short chat summary.

Templates: templates/digest.html.j2, digest.txt.j2, digest_chat.md.j2, rendered through the
one environment in `checker.render`.
"""

from __future__ import annotations

import css_inline

from checker.digest.models import DigestContext
from checker.render import env

__all__ = ["render_chat", "render_html", "render_text"]

_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def render_html(ctx: DigestContext, status_url: str | None = None) -> str:
    """The HTML digest with its CSS inlined (mail clients drop <style> blocks)."""
    html = env().get_template("digest.html.j2").render(ctx=ctx, status_url=status_url)
    return _INLINER.inline(html)


def render_text(ctx: DigestContext, status_url: str | None = None) -> str:
    return env().get_template("digest.txt.j2").render(ctx=ctx, status_url=status_url)


def render_chat(ctx: DigestContext, status_url: str | None = None) -> str:
    return env().get_template("digest_chat.md.j2").render(ctx=ctx, status_url=status_url)
