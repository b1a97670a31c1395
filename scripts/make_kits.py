"""Write the teacher kits' text and slides: _build/kits/<NN>-<chapter>/ (``make kits``).

For every numbered chapter: ``equations.tex``, its labelled equations with the numbers
of this release, ``references.bib``, the entries it cites, ``slides.tex``, beamer
slides of its sections and equations (cnnbook.kits), and ``slides.pdf``, compiled by
latexmk with pdflatex (``--no-pdf`` skips it). The site's build puts the compiled
slides into each chapter's kit zip, so run it before ``make book``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from cnnbook import kits
from cnnbook.myst2ipynb import BookIndex

ROOT = Path(__file__).resolve().parents[1]
LATEXMK = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-quiet"]


class KitError(RuntimeError):
    """The slides of a chapter do not compile, or LaTeX is missing."""


def compile_slides(folder: Path) -> Path:
    """``slides.tex`` of ``folder`` to ``slides.pdf``; LaTeX's by-products removed."""
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        raise KitError("compiling the slides needs latexmk and pdflatex (Debian: "
                       "apt-get install latexmk texlive-latex-recommended); or pass "
                       "--no-pdf")
    done = subprocess.run([*LATEXMK, "slides.tex"], cwd=folder, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        log = folder / "slides.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else done.stdout
        raise KitError(f"{folder / 'slides.tex'} does not compile:\n{tail}")
    for made in folder.glob("slides.*"):  # .aux, .log, beamer's .nav and .snm, ...
        if made.suffix not in {".tex", ".pdf"}:
            made.unlink()
    return folder / "slides.pdf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "_build" / "kits")
    parser.add_argument("--no-pdf", action="store_true",
                        help="do not compile the slides")
    parser.add_argument("--only", nargs="+", metavar="DOC",
                        help="only these chapters (book/dense ...)")
    args = parser.parse_args(argv)
    index = BookIndex.load(ROOT)
    docs = [doc for doc, number in index.numbers.items()
            if isinstance(number, int) and kits.equations(ROOT, doc)]
    unknown = sorted(set(args.only or ()) - set(docs))
    if unknown:
        parser.error(f"--only {' '.join(unknown)}: not a numbered chapter with "
                     f"equations (those are {', '.join(docs)})")
    try:
        for doc in docs:
            if args.only and doc not in args.only:
                continue
            folder = args.out / f"{index.numbers[doc]:02d}-{Path(doc).name}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "equations.tex").write_text(kits.equations_tex(doc, index),
                                                  encoding="utf-8")
            (folder / "references.bib").write_text(kits.bibliography(ROOT, doc),
                                                   encoding="utf-8")
            (folder / "slides.tex").write_text(kits.slides_tex(doc, index),
                                               encoding="utf-8")
            if not args.no_pdf:
                compile_slides(folder)
            print(f"wrote {folder}", flush=True)
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
