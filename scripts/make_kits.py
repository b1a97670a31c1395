"""Write the teacher kits' text parts: _build/kits/<NN>-<chapter>/ (``make kits``).

For every numbered chapter: ``equations.tex``, its labelled equations with the numbers
of this release, ``references.bib``, the entries it cites, and ``slides.tex``, beamer
slides of its sections and equations (cnnbook.kits).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnbook import kits
from cnnbook.myst2ipynb import BookIndex

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else ROOT / "_build" / "kits"
    index = BookIndex.load(ROOT)
    for doc, number in index.numbers.items():
        if not isinstance(number, int) or not kits.equations(ROOT, doc):
            continue
        folder = out / f"{number:02d}-{Path(doc).name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "equations.tex").write_text(kits.equations_tex(doc, index),
                                              encoding="utf-8")
        (folder / "references.bib").write_text(kits.bibliography(ROOT, doc),
                                               encoding="utf-8")
        (folder / "slides.tex").write_text(kits.slides_tex(doc, index), encoding="utf-8")
        print(f"wrote {folder.relative_to(out.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
