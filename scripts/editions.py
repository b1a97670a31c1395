"""The site of every edition (book/_ext/cnnbook/editions.py).

``make editions`` (``python scripts/editions.py build``): this tree's edition and the
previous release's (its tag, or ``--old REF``), built into ``_build/editions`` with
versions.json, labels.json, latest/ and a zip of each; serve it with
``python -m http.server --directory _build/editions``.

``python scripts/editions.py publish --site DIR --html _build/html``: what the release
workflow runs on a tag: add the edition just built to the site held in DIR (a checkout
of the gh-pages branch), keeping every edition already there. ``--ref TAG`` instead of
``--html`` builds that release from its own files first (for a release tagged before
this workflow existed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from cnnbook import editions

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="this tree's edition and the previous one")
    build.add_argument("--old", help="the earlier edition's commit or tag "
                                     "(default: the previous release's tag)")
    build.add_argument("--out", type=Path, default=ROOT / "_build" / "editions")
    publish = commands.add_parser("publish", help="add a built edition to a site")
    publish.add_argument("--site", type=Path, required=True)
    built_from = publish.add_mutually_exclusive_group()
    built_from.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    built_from.add_argument("--ref", help="build this release tag's edition first")
    publish.add_argument("--version", default=None,
                         help="the edition's version (default: this tree's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            built = editions.build_two(args.out, args.old, ROOT)
        elif args.ref:
            built = editions.publish_release(args.site, args.ref, ROOT)
        else:
            version = args.version or editions.tree_version(ROOT)
            built = editions.publish(args.site, [editions.Edition(version, args.html)], ROOT)
    except (ValueError, RuntimeError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or ""
        print(f"editions: {error} {detail}".strip(), file=sys.stderr)
        return 1
    site = args.out if args.command == "build" else args.site
    print(f"{site}: editions {', '.join(e.version for e in built)}; "
          f"latest/ is {built[-1].version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
