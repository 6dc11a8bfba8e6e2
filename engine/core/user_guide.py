"""The user guide: the documentation site built on this machine, opened with no network.

``make docs`` (and ``make run``) build the site into ``site/`` beside the checkout; the window's
Help ▸ User guide opens its front page, and an error line whose fix a guide page explains gets a
link to that page.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.core.errors import UsageError

#: Where ``make docs`` writes the site: ``site/`` at the top of the checkout.
SITE = Path(__file__).resolve().parents[2] / "site"

#: Which guide page explains an error line, by a phrase its fix uses. The first match wins.
GUIDE_PAGES = (
    ("--trust-model", "explanations/security.html"),
    ("trust where it came from", "explanations/security.html"),
    ("pacs.toml", "guides/pacs.html"),
    ("manifest", "guides/auditing.html"),
    ("model card", "reference/card.html"),
    ("[input]", "reference/card.html"),
    ("plugin", "guides/plugins.html"),
)


def site_folder() -> Path:
    """The built site's folder: ``LUCIDA_DOCS_SITE`` when set, else ``site/`` of the checkout."""
    return Path(os.environ.get("LUCIDA_DOCS_SITE") or SITE)


def guide_page(page: str = "index.html") -> Path:
    """Return a page of the built user guide.

    Parameters
    ----------
    page : str
        The page's path inside the site, e.g. ``"guides/pacs.html"``; an anchor may follow ``#``.

    Returns
    -------
    Path
        The HTML file (the anchor is not part of it).

    Raises
    ------
    UsageError
        When the site has not been built, or has no such page.
    """
    folder = site_folder()
    if not (folder / "index.html").is_file():
        raise UsageError("the user guide is not built on this machine", path=folder,
                         fix="run make docs (make run builds it too)")
    path = folder / page.partition("#")[0]
    if not path.is_file():
        raise UsageError("the user guide has no such page", path=path, fix="run make docs again")
    return path


def page_for_error(line: str) -> str | None:
    """The guide page that explains an error line's fix, or None.

    Parameters
    ----------
    line : str
        An error's one line (:meth:`engine.core.errors.LucidaError.one_line`).

    Returns
    -------
    str or None
        A page path inside the site, e.g. ``"explanations/security.html"``, only when the
        line names a fix and the built site has that page.
    """
    _, has_fix, fix = line.partition("Fix:")
    if not has_fix:
        return None
    for phrase, page in GUIDE_PAGES:
        if phrase in fix and (site_folder() / page).is_file():
            return page
    return None
