"""One notation from the first chapter to the last, the one book/notation.md promises.

A gradient is a bar over its variable: ``\\bar x`` for ``dx``, a long bar over a word,
``\\overline{\\mathrm{out}}`` for ``dout``; a bar means a gradient and nothing else; ``P``
is the padding and nothing else. Every chapter of the table of contents is read whole, so
equations, prose, figure labels and code comments are all held to it.
"""

from __future__ import annotations

import re

import pytest

from test_chapters import CHAPTERS

OLD_FORMS = [
    (r"\\(?:text|mathrm|textrm|mathit|operatorname)\{d(?:[A-Za-z]|out|cols|logits)\}",
     "the code's name for a gradient in math: write \\bar x for dx, "
     "\\overline{\\mathrm{out}} for dout"),
    (r"\\bar\s*\{\s*\\(?:text|mathrm|textrm|operatorname)\b",
     "a short bar over a word: write \\overline{\\mathrm{out}}"),
    (r"\\bar\s*\{[^{}]*\^",
     "a short bar over a symbol with a superscript: write \\overline{\\sigma^2_c}"),
    (r"\\(?:bar|hat|tilde)\s*\{?\s*d(?![A-Za-z])",
     "a decorated d for a rearranged upstream gradient: write "
     "\\overline{\\mathrm{out}}^{\\mathrm{dil}}, ^{\\mathrm{full}} or ^{\\mathrm{pad}}"),
    (r"\bP\s*-\s*Y\b|\$P\s*=\s*\\operatorname\{softmax\}",
     "P is the padding: the softmax probabilities are \\hat Y"),
    (r"\$P\(", "P is the padding: a probability is \\Pr(...)"),
]


@pytest.mark.parametrize("doc", sorted(CHAPTERS))
def test_chapter_writes_gradients_as_notation_promises(doc):
    found = []
    for number, line in enumerate(CHAPTERS[doc].splitlines(), start=1):
        for pattern, advice in OLD_FORMS:
            for match in re.finditer(pattern, line):
                found.append(f"{doc}.md:{number}: {match.group(0)!r}: {advice}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line, caught", [
    (r"$\text{dx}_{n,c,r,s} = \sum \text{dout}_{n,f,i,j}$", True),
    (r"\bar x_i = \bar{\mathrm{out}}_i", True),
    (r"\bar{\text{out}}_i", True),
    (r"\bar{\sigma^2_c} = 0", True),
    (r"\hat d_{n,f,u,v} = \bar d_{n,f,u,v} + \tilde d", True),
    (r"\bar z = (P - Y)/N", True),
    (r"$P(r_i = 1) = 1 - p$", True),
    (r"\bar x_i = \overline{\mathrm{out}}_i \cdot \mathbb{1}[x_i > 0]", False),
    (r"\overline{\mathrm{out}}^{\mathrm{dil}}_{n,f,u,v}, \bar\delta, \hat x, \text{dense}", False),
    (r"\overline{\sigma^2_c}, \bar{\hat x}_i, \bar z = (\hat Y - Y)/N, P_H = 1", False),
])
def test_the_old_forms_are_recognised(line, caught):
    assert any(re.search(pattern, line) for pattern, _ in OLD_FORMS) is caught


def test_notation_chapter_tabulates_the_forms_it_promises():
    text = CHAPTERS["book/notation"]
    table = [line for line in text.splitlines() if line.startswith("| $")]
    for form in (r"\bar v = \partial L / \partial v", r"\overline{\mathrm{out}}",
                 r"\overline{\mathrm{out}}^{\mathrm{dil}}", r"$M$", r"$P$ ($P_H$, $P_W$)"):
        assert any(form in row for row in table), form
