"""The one adapter to sphinx-book-theme's header buttons (book/_ext/cnnbook/theme.py)."""

from __future__ import annotations

from types import SimpleNamespace

from cnnbook import theme


def header(*labels):
    """A page context as sphinx-book-theme leaves it: groups of buttons by label."""
    groups = [{"type": "group", "label": label, "buttons": [{"label": f"{label}-0"}]}
              for label in labels]
    return {"header_buttons": [{"type": "link", "label": "fullscreen"}, *groups]}


def added(context, **options):
    button = dict(url="u", text="t", icon="i", tooltip="tip", label="new")
    button.update(options)
    return theme.add_download_button(context, **button)


def test_a_download_goes_last_or_first_once_and_only_into_a_download_menu():
    context = header("download-buttons", "launch-buttons")
    assert added(context)
    assert added(context, label="first", first=True)
    assert not added(context)  # the same label twice: kept once
    labels = [b["label"] for b in theme.button_group(context, "download-buttons")["buttons"]]
    assert labels == ["first", "download-buttons-0", "new"]
    assert theme.button_group(context, "launch-buttons")["buttons"] == [
        {"label": "launch-buttons-0"}]
    without_menu = header("launch-buttons")
    assert not added(without_menu)
    assert theme.button_group(without_menu, "download-buttons") is None
    assert not added({})


def app_with(launch_buttons):
    return SimpleNamespace(config=SimpleNamespace(
        html_theme_options={"launch_buttons": launch_buttons}))


INDEX = SimpleNamespace(repo_url="https://github.com/me/book", branch="main")


def test_launch_urls_open_the_path_from_the_repository_with_the_configured_services():
    urls = theme.launch_urls(app_with({"colab_url": "https://colab.example/",
                                       "binderhub_url": "https://binder.example"}),
                             INDEX, "notebooks/conv.ipynb", "v1.2.3")
    assert urls == {
        "Colab": "https://colab.example/github/me/book/blob/v1.2.3/notebooks/conv.ipynb",
        "Binder": "https://binder.example/v2/gh/me/book/v1.2.3?urlpath=lab/tree/"
                  "notebooks/conv.ipynb"}
    defaults = theme.launch_urls(app_with({}), INDEX, "a.ipynb", "v1.2.3")
    assert defaults["Colab"].startswith("https://colab.research.google.com/github/")
    assert defaults["Binder"].startswith("https://mybinder.org/v2/gh/")


def test_remove_button_takes_out_only_the_named_button():
    context = header("download-buttons", "launch-buttons")
    theme.remove_button(context, "download-buttons", "download-buttons-0")
    assert theme.button_group(context, "download-buttons")["buttons"] == []
    assert theme.button_group(context, "launch-buttons")["buttons"] == [
        {"label": "launch-buttons-0"}]
    theme.remove_button({}, "download-buttons", "x")  # a page without the menu


def test_set_launch_urls_changes_the_buttons_it_names_and_nothing_else():
    context = {"header_buttons": [{"type": "group", "label": "launch-buttons", "buttons": [
        {"text": "Binder", "url": "old"}, {"text": "Colab", "url": "old"},
        {"text": "JupyterHub", "url": "old"}]}]}
    theme.set_launch_urls(context, {"Binder": "b", "Colab": "c"})
    assert [b["url"] for b in context["header_buttons"][0]["buttons"]] == ["b", "c", "old"]
    theme.set_launch_urls({}, {"Binder": "b"})  # a page without launch buttons
