"""Every edition kept online: one site holding each release's book under ``/vX.Y.Z/``.

A site of editions (``make editions`` locally; ``.github/workflows/editions.yml`` on every
release tag, which adds the new edition to the ``gh-pages`` branch and keeps the others)::

    versions.json       the editions, newest first, in pydata-sphinx-theme's switcher format
                        (version, name, url, preferred) plus the zip of each
    labels.json         the label map: for every equation label, its number in each
                        release (book/published_labels.tsv) and in each edition on the
                        site, and where it is in the newest edition
    index.html          sends the reader to latest/
    latest/             a copy of the newest edition
    v0.2.0/, v0.3.0/    one folder per release (dev/ for a build of unreleased work)
    downloads/          each edition as a zip, for reading offline
    _editions/          the script and style sheet every page of every edition loads

Every HTML page of an edition gets two lines before ``</head>`` (:func:`inject`): the
edition's script and style sheet from ``_editions/``, with the edition's version and the
relative path to the site's root. The script (``book/_static/editions.js``) puts the
edition switcher on the page and, on an edition older than the newest, a banner that links
to the newest and names the number the equation in view has there. Editions built before
this existed get the same lines, so the switcher and the banner reach every edition.

An edition of an earlier release is built from that release's own files (``git archive``
of its tag) with this project's tools, its own ``cnn`` package first on the path.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from .release import ROOT, changelog, package_version, read_labels

STATIC = Path(__file__).resolve().parents[2] / "_static"
ASSETS = ("editions.js", "editions.css")
ASSET_DIR = "_editions"
DEV = "dev"
DEV_NAME = "unreleased (main)"
INJECTED = "<!-- cnn-editions -->"
NUMBER = re.compile(
    r'<span class="eqno">\((?P<number>[\d.]+)\)<a class="headerlink" '
    r'href="#equation-(?P<label>eq[\w-]*)"')
TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Edition:
    """A built edition: its version (``0.2.0``, or ``dev`` for unreleased work) and site."""

    version: str
    html: Path

    @property
    def folder(self) -> str:
        return self.version if self.version == DEV else f"v{self.version}"

    @property
    def key(self) -> tuple:
        """Newest sorts last: releases by number, unreleased work after every release."""
        return (1,) if self.version == DEV else (0, *map(int, self.version.split(".")))


def zip_name(version: str) -> str:
    return f"cnn-from-scratch-numpy-{version}-site.zip"


# -- which editions ----------------------------------------------------------------------
def git(*args: str, root: Path = ROOT) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout


def release_tags(root: Path = ROOT) -> list[str]:
    """The release tags (``v0.2.0``) of the repository, oldest first."""
    tags = [t for t in git("tag", "--list", "v*", root=root).split() if TAG.match(t)]
    return sorted(tags, key=lambda t: tuple(map(int, TAG.match(t).groups())))


def tree_version(root: Path = ROOT) -> str:
    """The edition a working tree builds: its version, or ``dev`` while CHANGELOG.md has
    an "Unreleased" entry (work past the last release)."""
    unreleased = any(entry.version == "Unreleased" for entry in changelog(root))
    return DEV if unreleased else package_version(Path(root) / "cnn")


def previous_release(root: Path = ROOT) -> str:
    """The tag of the release before the working tree's edition.

    Raises
    ------
    ValueError
        When the repository has no such tag, saying how to make one.
    """
    current = tree_version(root)
    version = package_version(Path(root) / "cnn")
    limit = tuple(map(int, version.split(".")))
    for found in reversed(release_tags(root)):
        number = tuple(map(int, TAG.match(found).groups()))
        if number < limit or (current == DEV and number == limit):
            return found
    raise ValueError(
        f"no release tag before this tree's edition ({current}) in {root}: tag the commit "
        f"of the last release (git tag v{version} <commit>; the README's release section "
        "says when), or name a commit: make editions OLD=<commit>")


# -- building an edition -------------------------------------------------------------------
def export_tree(ref: str, target: Path, root: Path = ROOT) -> Path:
    """The files of commit ``ref`` (a tag, a branch, a hash) unpacked into ``target``."""
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", ref],
                             capture_output=True, check=True).stdout
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(target, **safe)
    return target


def trim_toc(toc: dict, keep: set[str]) -> dict:
    """``_toc.yml`` with only the root and the chapters in ``keep`` (parts left empty go)."""
    parts = []
    for part in toc.get("parts", []):
        chapters = [c for c in part.get("chapters", []) if c.get("file") in keep]
        if chapters:
            parts.append({**part, "chapters": chapters})
    return {**toc, "parts": parts}


def build_edition(tree: Path, out: Path, *, execute: bool = True, strict: bool = False,
                  docs: set[str] | None = None) -> Path:
    """Build the book in ``tree`` (a checkout or an exported release) into ``out``; return
    its HTML folder.

    The tree's own package and extensions come first on the path, so an earlier
    release is built with the code it quoted. ``execute=False`` and ``docs`` (a subset of
    chapters) make a quick build for tests; a published edition uses neither.
    """
    tree = Path(tree)
    if not execute or docs is not None:
        config = yaml.safe_load((tree / "_config.yml").read_text(encoding="utf-8"))
        if not execute:
            config.setdefault("execute", {})["execute_notebooks"] = "off"
        (tree / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        if docs is not None:
            toc = yaml.safe_load((tree / "_toc.yml").read_text(encoding="utf-8"))
            (tree / "_toc.yml").write_text(yaml.safe_dump(trim_toc(toc, docs)), encoding="utf-8")
    path = [str(tree), str(tree / "book" / "_ext"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p),
           # No PDF of another tree is linked from this edition.
           "CNNBOOK_PDF_DIR": str(Path(out) / "no-pdfs")}
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(tree),
               "--path-output", str(out)]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    html_dir = Path(out) / "_build" / "html"
    if result.returncode != 0 or not (html_dir / "index.html").exists():
        log = (result.stdout + result.stderr)[-3000:]
        raise RuntimeError(f"building the edition in {tree} failed:\n{log}")
    return html_dir


# -- assembling the site -------------------------------------------------------------------
def inject(page: Path, version: str, up: str) -> None:
    """Give one HTML page the edition's script and style sheet (once)."""
    text = page.read_text(encoding="utf-8")
    if INJECTED in text or "</head>" not in text:
        return
    lines = (f'{INJECTED}<link rel="stylesheet" href="{up}{ASSET_DIR}/editions.css">'
             f'<script defer src="{up}{ASSET_DIR}/editions.js" '
             f'data-edition="{html.escape(version)}" data-root="{up}"></script>\n')
    page.write_text(text.replace("</head>", lines + "</head>", 1), encoding="utf-8")


def add_edition(site: Path, edition: Edition, folder: str | None = None) -> Path:
    """Copy an edition's HTML into ``site/<folder>`` (replacing it) and inject every page."""
    target = Path(site) / (folder or edition.folder)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(edition.html, target, ignore=shutil.ignore_patterns(".buildinfo"))
    for page in target.rglob("*.html"):
        depth = len(page.relative_to(target).parts)
        inject(page, edition.version, "../" * depth)
    return target


def edition_numbers(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Label -> number and label -> page#anchor, as an edition's pages show them."""
    numbers, pages = {}, {}
    for page in sorted(Path(folder).rglob("*.html")):
        rel = page.relative_to(folder).as_posix()
        if rel.startswith("_"):
            continue
        for match in NUMBER.finditer(page.read_text(encoding="utf-8")):
            numbers[match["label"]] = match["number"]
            pages[match["label"]] = f"{rel}#equation-{match['label']}"
    return numbers, pages


def site_editions(site: Path) -> list[Edition]:
    """The editions a site holds (its v*/ and dev/ folders), oldest first."""
    found = []
    for folder in Path(site).iterdir():
        if folder.is_dir() and (TAG.match(folder.name) or folder.name == DEV):
            found.append(Edition(folder.name.removeprefix("v"), folder))
    return sorted(found, key=lambda e: e.key)


def label_map(site: Path, editions: list[Edition], root: Path = ROOT) -> dict:
    """labels.json: each label's number in every release (book/published_labels.tsv) and in
    every edition of the site (read from its pages), and its page in the newest edition."""
    published = read_labels(root)
    numbers: dict[str, dict[str, str]] = {r: {} for r in published.releases}
    for label, (_, by_release) in published.rows.items():
        for release, number in by_release.items():
            numbers[release][label] = number
    pages = {label: f"{chapter}.html#equation-{label}"
             for label, (chapter, _) in published.rows.items()}
    for edition in editions:
        shown, where = edition_numbers(Path(site) / edition.folder)
        # The published table is the record; the pages fill in unreleased work.
        numbers[edition.version] = {**shown, **numbers.get(edition.version, {})}
        if edition is editions[-1]:
            pages.update(where)
    return {"newest": editions[-1].version, "numbers": numbers, "pages": pages}


def versions(editions: list[Edition]) -> list[dict]:
    """versions.json: newest first; the newest is ``preferred`` (pydata-sphinx-theme)."""
    entries = []
    for edition in reversed(editions):
        newest = edition is editions[-1]
        name = DEV_NAME if edition.version == DEV else edition.version
        entries.append({"name": name + (" (latest)" if newest else ""),
                        "version": edition.version, "url": f"{edition.folder}/",
                        "preferred": newest,
                        "zip": f"downloads/{zip_name(edition.version)}"})
    return entries


def zip_edition(folder: Path, target: Path) -> None:
    """The edition as one zip for offline reading (its pages, without the site's root)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                archive.write(path, Path(target.stem) / path.relative_to(folder))
    partial.replace(target)


REDIRECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0; url=latest/">
<link rel="canonical" href="latest/"><link rel="icon" href="data:,"><title>CNN from Scratch with NumPy</title></head>
<body><p><a href="latest/">The newest edition of CNN from Scratch with NumPy</a>.</p></body>
</html>
"""


def publish(site: Path, new: list[Edition], root: Path = ROOT) -> list[Edition]:
    """Add ``new`` editions to ``site`` (keeping the ones it holds), then rewrite latest/,
    versions.json, labels.json, the zips of the new editions, the root page and the
    shared script. Returns every edition of the site, oldest first."""
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    for edition in new:
        add_edition(site, edition)
        # The pages as built: offline there is no site to switch editions in.
        zip_edition(edition.html, site / "downloads" / zip_name(edition.version))
    editions = site_editions(site)
    if not editions:
        raise ValueError(f"{site} holds no edition (v*/ or {DEV}/ folders)")
    newest = editions[-1]
    add_edition(site, Edition(newest.version, site / newest.folder), "latest")
    assets = site / ASSET_DIR
    assets.mkdir(exist_ok=True)
    for name in ASSETS:
        shutil.copy2(STATIC / name, assets / name)
    (site / "versions.json").write_text(json.dumps(versions(editions), indent=1) + "\n",
                                        encoding="utf-8")
    (site / "labels.json").write_text(json.dumps(label_map(site, editions, root)) + "\n",
                                      encoding="utf-8")
    (site / "index.html").write_text(REDIRECT, encoding="utf-8")
    (site / ".nojekyll").touch()
    return editions


def publish_release(site: Path, ref: str, root: Path = ROOT) -> list[Edition]:
    """Build release ``ref`` (a tag) from its own files, executed, and add it to ``site``."""
    with tempfile.TemporaryDirectory(prefix="cnn-edition-") as scratch:
        tree = export_tree(ref, Path(scratch) / "tree", root)
        edition = Edition(package_version(tree / "cnn"), build_edition(tree, Path(scratch) / "out"))
        return publish(site, [edition], root)


def build_two(site: Path, old: str | None = None, root: Path = ROOT) -> list[Edition]:
    """``make editions``: this tree's edition and the previous release's, into ``site``."""
    old = old or previous_release(root)
    with tempfile.TemporaryDirectory(prefix="cnn-editions-") as scratch:
        scratch = Path(scratch)
        tree = export_tree(old, scratch / "old-tree", root)
        editions = [Edition(package_version(tree / "cnn"), build_edition(tree, scratch / "old")),
                    Edition(tree_version(root), build_edition(root, scratch / "new", strict=True))]
        if editions[0].folder == editions[1].folder:
            raise ValueError(f"{old} and this tree are the same edition ({editions[1].version})")
        if Path(site).exists():
            shutil.rmtree(site)
        return publish(site, editions, root)
