"""The one place that knows sphinx-book-theme's header buttons and launch options.

The theme builds its header buttons in ``html-page-context`` (at priority 501) as a list
of groups in ``context["header_buttons"]``: ``{"type": "group", "label":
"download-buttons", "buttons": [...]}`` and ``"launch-buttons"``, each button a dict
with ``type``, ``url``, ``text``, ``icon``, ``tooltip`` and ``label``. The extensions
add download entries and point the launch buttons at the committed notebooks through
the functions below, so that a change of the theme's layout is handled here once.
"""

from __future__ import annotations

DEFAULT_PROVIDERS = {
    "colab_url": "https://colab.research.google.com",
    "binderhub_url": "https://mybinder.org",
}


def button_group(context, label: str) -> dict | None:
    """The header's group of buttons called ``label``, or ``None`` if the page has none."""
    for group in context.get("header_buttons", []):
        if group.get("type") == "group" and group.get("label") == label:
            return group
    return None


def add_download_button(context, *, url: str, text: str, icon: str, tooltip: str,
                        label: str, first: bool = False) -> bool:
    """Add a link to the download menu (first, or last); whether it was added.

    Nothing is added when the page has no download menu or already has ``label``.
    """
    downloads = button_group(context, "download-buttons")
    if downloads is None or any(b.get("label") == label for b in downloads["buttons"]):
        return False
    button = {"type": "link", "url": url, "text": text, "icon": icon, "tooltip": tooltip,
              "label": label}
    downloads["buttons"].insert(0 if first else len(downloads["buttons"]), button)
    return True


def remove_button(context, group: str, label: str) -> None:
    """Take the button ``label`` out of the header's ``group``, if the page has it."""
    found = button_group(context, group)
    if found is not None:
        found["buttons"] = [b for b in found["buttons"] if b.get("label") != label]


def launch_urls(app, index, path: str, ref: str) -> dict[str, str]:
    """The Colab and Binder links that open ``path`` of the repository at ``ref``, by
    button text.

    ``index`` is a ``myst2ipynb.BookIndex`` (the repository's URL); ``ref`` is the release
    tag the page belongs to (``release.tag``), so that a reader opens the notebook of the
    edition they read, not the main branch. The providers come from ``_config.yml``
    (``launch_buttons``), else the public services.
    """
    options = app.config.html_theme_options.get("launch_buttons", {})
    providers = {key: options.get(key) or default for key, default in DEFAULT_PROVIDERS.items()}
    repo = index.repo_url.removeprefix("https://github.com/")
    colab = providers["colab_url"].rstrip("/")
    binder = providers["binderhub_url"].rstrip("/")
    return {"Colab": f"{colab}/github/{repo}/blob/{ref}/{path}",
            "Binder": f"{binder}/v2/gh/{repo}/{ref}?urlpath=lab/tree/{path}"}


def set_launch_urls(context, urls: dict[str, str]) -> None:
    """Point the header's launch buttons (by their text, "Colab", "Binder") at ``urls``."""
    launch = button_group(context, "launch-buttons")
    for button in launch["buttons"] if launch is not None else []:
        if button.get("text") in urls:
            button["url"] = urls[button["text"]]
