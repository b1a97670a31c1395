"""Build the PDF editions of the book (``make pdf``): instructor (with solutions) and student.

Each edition is one ``jupyter-book build . --builder pdflatex -W -n --keep-going`` (Sphinx's
LaTeX writer, then xelatex through latexmk), configured by ``book/_ext/cnnbook/pdfbook.py`` from
the environment variable ``CNNBOOK_EDITION``. The chapters are executed once: both builds
share a jupyter-cache folder that lives only for this run. The PDFs are written to
``_build/pdf/cnn-from-scratch-numpy-<version>-<edition>.pdf``, where ``make book`` finds
them and links them from the site.

Needs TeX Live; when a program or a LaTeX package is missing this script says which Debian
packages to install and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnbook.pdfbook import CACHE_ENV, EDITION_ENV, INSTALL_HINT
from cnnbook.release import EDITIONS, pdf_name, read_version

ROOT = Path(__file__).resolve().parents[1]

# What the LaTeX build runs, and a few of the LaTeX packages Jupyter Book's class and
# Sphinx load, each with the Debian package that brings it.
PROGRAMS = {"xelatex": "texlive-xetex", "latexmk": "latexmk", "xindy": "xindy"}
LATEX_FILES = {
    "fontspec.sty": "texlive-latex-recommended",
    "unicode-math.sty": "texlive-latex-recommended",
    "fncychap.sty": "texlive-latex-extra",
    "changepage.sty": "texlive-latex-extra",
    "pgfplots.sty": "texlive-latex-extra",  # via texlive-pictures
    "ucharclasses.sty": "texlive-xetex",
}
FONT_FAMILY = ("FreeSerif", "fonts-freefont-otf")
BUILD_TIMEOUT = 1800


def missing_tex() -> list[str]:
    """What the PDF build needs and this machine lacks, as 'thing (Debian package)'."""
    missing = [f"{program} ({package})" for program, package in PROGRAMS.items()
               if shutil.which(program) is None]
    kpsewhich = shutil.which("kpsewhich")
    if kpsewhich is None:
        missing.append("kpsewhich (texlive-latex-recommended)")
    else:
        for name, package in LATEX_FILES.items():
            found = subprocess.run([kpsewhich, name], capture_output=True, text=True, check=False)
            if not found.stdout.strip():
                missing.append(f"{name} ({package})")
    family, package = FONT_FAMILY
    fc_list = shutil.which("fc-list")
    fonts = subprocess.run([fc_list, f":family={family}"], capture_output=True, text=True,
                           check=False).stdout if fc_list else ""
    if not fonts.strip():
        missing.append(f"the {family} font ({package})")
    return missing


def install_message(missing: list[str]) -> str:
    return (
        "The PDF build needs TeX Live; missing: " + ", ".join(missing) + ".\n"
        f"On Debian or Ubuntu: {INSTALL_HINT}"
    )


def build_edition(edition: str, build_dir: Path, cache: Path) -> tuple[int, str, Path]:
    """Run one LaTeX build; return (exit status, log, path of the PDF it should make)."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    out = build_dir / edition
    # Strict, like the site: any warning (a broken reference, a missing label) fails.
    command = [str(jupyter_book), "build", str(ROOT), "--builder", "pdflatex",
               "--path-output", str(out), "-W", "-n", "--keep-going"]
    env = {**os.environ, EDITION_ENV: edition, CACHE_ENV: str(cache)}
    result = subprocess.run(command, capture_output=True, text=True, env=env,
                            timeout=BUILD_TIMEOUT, check=False)
    log = result.stdout + result.stderr
    (build_dir / f"{edition}.log").write_text(log, encoding="utf-8")
    pdf = out / "_build" / "latex" / pdf_name(edition, read_version(ROOT))
    return result.returncode, log, pdf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edition", choices=[*EDITIONS, "both"], default="both")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "pdf",
                        help="where the PDFs go (default: _build/pdf)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="where the LaTeX builds run (default: a temporary folder)")
    args = parser.parse_args(argv)

    missing = missing_tex()
    if missing:
        print(install_message(missing), file=sys.stderr)
        return 2
    editions = list(EDITIONS) if args.edition == "both" else [args.edition]
    build_dir = args.build_dir or Path(tempfile.mkdtemp(prefix="cnn-pdf-"))
    build_dir.mkdir(parents=True, exist_ok=True)
    cache = build_dir / "jupyter_cache"
    args.out.mkdir(parents=True, exist_ok=True)
    for edition in editions:
        start = time.perf_counter()
        status, log, pdf = build_edition(edition, build_dir, cache)
        seconds = time.perf_counter() - start
        if status != 0 or not pdf.is_file():
            print(log[-6000:], file=sys.stderr)
            print(f"the {edition} edition failed after {seconds:.0f} s (status {status}); "
                  f"full log: {build_dir / (edition + '.log')}", file=sys.stderr)
            return 1
        shutil.copy2(pdf, args.out / pdf.name)
        print(f"{args.out / pdf.name}: {EDITIONS[edition]}, built in {seconds:.0f} s")
    if args.build_dir is None:
        shutil.rmtree(build_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
