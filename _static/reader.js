/* Reading aids on every page (Jupyter Book links every .js file of _static/ into each page).
 *
 * 1. Scroll cues: a display equation, code block or table wider than its box scrolls inside
 *    it; on a phone the scroll bar is hidden until touched, so the box fades out at the side
 *    where more is hidden (class cnn-scrolls, cnn-scrolls-left, cnn-scrolls-right).
 * 2. Word boundaries in tables: a long name in a table cell may wrap after "_", "." or "/",
 *    never in the middle of a word.
 * 4. Search: result snippets show formulas as plain text, not raw TeX ("\\(\\bar x\\)"), and a
 *    search for "He initialisation" does not highlight every "he" of the page it opens.
 * 3. Previews: hovering or focusing a link to an equation, figure, exercise, chapter, section
 *    or bibliography entry shows the target in a box beside the link. The target is read from
 *    this page or from the linked page of this site (same origin, nothing from elsewhere);
 *    an equation comes with its "Implemented by / Verified by" line.
 */
(function () {
  "use strict";

  function ready(callback) {
    if (document.readyState !== "loading") { callback(); } else {
      document.addEventListener("DOMContentLoaded", callback);
    }
  }

  // -- 1. scroll cues ------------------------------------------------------------------------
  var SCROLLERS = "div.math mjx-container[display=\"true\"], div.highlight pre, " +
    ".pst-scrollable-table-container";

  function updateCue(box) {
    var hidden = box.scrollWidth - box.clientWidth;
    var scrolls = hidden > 1 && /auto|scroll/.test(getComputedStyle(box).overflowX);
    box.classList.toggle("cnn-scrolls", scrolls);
    box.classList.toggle("cnn-scrolls-left", scrolls && box.scrollLeft > 1);
    box.classList.toggle("cnn-scrolls-right", scrolls && box.scrollLeft < hidden - 1);
  }

  function watchScrollers(root) {
    var boxes = root.querySelectorAll(SCROLLERS);
    var observer = window.ResizeObserver ? new ResizeObserver(function (entries) {
      entries.forEach(function (entry) { updateCue(entry.target); });
    }) : null;
    boxes.forEach(function (box) {
      if (box.cnnWatched) { return; }
      box.cnnWatched = true;
      box.addEventListener("scroll", function () { updateCue(box); }, {passive: true});
      if (observer) { observer.observe(box); }
      updateCue(box);
    });
  }

  // -- 2. word boundaries in tables ----------------------------------------------------------
  function breakNamesInTables(root) {
    root.querySelectorAll("table code span.pre, table code.literal").forEach(function (el) {
      if (el.cnnBroken || el.children.length) { return; }
      el.cnnBroken = true;
      var text = el.textContent;
      if (!/[_./]/.test(text) || text.length < 12) { return; }
      el.textContent = "";
      text.split(/(?<=[_./])/).forEach(function (part, k) {
        if (k) { el.appendChild(document.createElement("wbr")); }
        el.appendChild(document.createTextNode(part));
      });
    });
  }

  // -- 3. previews ----------------------------------------------------------------------------
  var pages = {};  // page URL -> Promise of its parsed document
  var box = null, current = null, showTimer = 0, hideTimer = 0;

  function pageDocument(url) {
    if (url === location.href.split("#")[0]) { return Promise.resolve(document); }
    if (!pages[url]) {
      pages[url] = fetch(url, {credentials: "same-origin"}).then(function (response) {
        if (!response.ok) { throw new Error(response.status + " " + url); }
        return response.text();
      }).then(function (text) {
        return new DOMParser().parseFromString(text, "text/html");
      });
    }
    return pages[url];
  }

  function article(doc) {
    return doc.querySelector("article.bd-article") || doc.body;
  }

  // What a preview of ``id`` on ``doc`` shows: a list of nodes to clone (or null).
  function targetNodes(doc, id) {
    var root = article(doc);
    var target = id ? doc.getElementById(id) : root.querySelector("section");
    if (!target) { return null; }
    if (target.matches("div.math")) {
      var nodes = [target];
      var line = target.nextElementSibling;
      if (line && line.matches(".cnn-provenance")) {
        var provenance = line.querySelector(".cnn-provenance-line");
        if (provenance) { nodes.push(provenance); }
      }
      return nodes;
    }
    if (target.matches("figure, .exercise, .solution, .admonition, div.citation, table")) {
      return [target];
    }
    if (target.matches("span") && target.parentElement.matches("dt, .citation")) {
      return [target.parentElement];
    }
    if (target.matches("section")) {
      var found = [], heading = target.querySelector("h1, h2, h3, h4");
      if (heading) { found.push(heading); }
      var para = target.querySelector(":scope > p");
      if (para) { found.push(para); }
      return found.length ? found : null;
    }
    return [target];
  }

  // Links and images in a clone taken from another page point to the same places as there.
  function rebase(node, base) {
    node.querySelectorAll("[href]").forEach(function (el) {
      var href = el.getAttribute("href");
      if (href && !/^(?:[a-z]+:|#)/i.test(href)) { el.setAttribute("href", new URL(href, base).href); }
      else if (href && href.charAt(0) === "#") { el.setAttribute("href", base.split("#")[0] + href); }
    });
    node.querySelectorAll("img[src]").forEach(function (el) {
      el.setAttribute("src", new URL(el.getAttribute("src"), base).href);
      el.removeAttribute("loading");
    });
    node.querySelectorAll("[id]").forEach(function (el) { el.removeAttribute("id"); });
    node.querySelectorAll("a.headerlink, button, details, .copybtn").forEach(function (el) { el.remove(); });
  }

  function previewBox() {
    if (!box) {
      box = document.createElement("div");
      box.className = "cnn-preview";
      box.id = "cnn-preview";
      box.setAttribute("role", "tooltip");
      box.hidden = true;
      box.addEventListener("mouseenter", function () { window.clearTimeout(hideTimer); });
      box.addEventListener("mouseleave", scheduleHide);
      document.body.appendChild(box);
    }
    return box;
  }

  function place(link) {
    var rect = link.getBoundingClientRect(), gap = 8;
    var width = Math.min(560, document.documentElement.clientWidth - 16);
    box.style.maxWidth = width + "px";
    var left = Math.max(8, Math.min(rect.left, document.documentElement.clientWidth - width - 8));
    box.style.left = (left + window.scrollX) + "px";
    var below = rect.bottom + gap, height = box.offsetHeight;
    var top = below + height > window.innerHeight && rect.top - gap - height > 0
      ? rect.top - gap - height : below;
    box.style.top = (top + window.scrollY) + "px";
  }

  function previewable(link) {
    if (!link || !link.matches("a.reference.internal[href], a.cnn-eq-ref[href]")) { return false; }
    if (link.closest(".cnn-preview, nav, .bd-sidebar-primary, .bd-sidebar-secondary, .prev-next-area, .bd-toc, .toc-entry")) {
      return false;
    }
    var url = new URL(link.getAttribute("href"), location.href);
    return url.origin === location.origin && /\.html$/.test(url.pathname)
      && !/\/_(?:modules|tests)\//.test(url.pathname) && !/\/genindex\.html$|\/search\.html$/.test(url.pathname);
  }

  function show(link) {
    var url = new URL(link.getAttribute("href"), location.href);
    var page = url.href.split("#")[0], id = decodeURIComponent(url.hash.slice(1));
    current = link;
    pageDocument(page).then(function (doc) {
      if (current !== link) { return; }
      var nodes = targetNodes(doc, id);
      if (!nodes) { return; }
      var el = previewBox();
      el.textContent = "";
      var content = document.createElement("div");
      content.className = "cnn-preview-content";
      nodes.forEach(function (node) { content.appendChild(document.importNode(node, true)); });
      rebase(content, url.href);
      el.appendChild(content);
      el.hidden = false;
      link.setAttribute("aria-describedby", el.id);
      place(link);
      var typeset = window.MathJax && MathJax.typesetPromise && doc !== document
        ? MathJax.typesetPromise([content]) : Promise.resolve();
      typeset.then(function () { if (current === link) { place(link); } }, function () {});
    }, function () { /* an unreachable page (file://, offline) shows no preview */ });
  }

  function hide() {
    if (current) { current.removeAttribute("aria-describedby"); }
    current = null;
    if (box) { box.hidden = true; }
  }

  function scheduleHide() {
    window.clearTimeout(showTimer);
    window.clearTimeout(hideTimer);
    hideTimer = window.setTimeout(hide, 250);
  }

  function scheduleShow(link, delay) {
    window.clearTimeout(hideTimer);
    window.clearTimeout(showTimer);
    if (current === link && box && !box.hidden) { return; }
    showTimer = window.setTimeout(function () { show(link); }, delay);
  }

  function linkOf(event) {
    var link = event.target.closest && event.target.closest("a");
    return previewable(link) ? link : null;
  }

  function watchLinks() {
    document.addEventListener("mouseover", function (event) {
      var link = linkOf(event);
      if (link) { scheduleShow(link, 200); }
    });
    document.addEventListener("mouseout", function (event) {
      if (linkOf(event)) { scheduleHide(); }
    });
    document.addEventListener("focusin", function (event) {
      var link = linkOf(event);
      if (link) { scheduleShow(link, 0); }
    });
    document.addEventListener("focusout", function (event) {
      if (linkOf(event)) { scheduleHide(); }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && box && !box.hidden) { hide(); }
    });
    window.addEventListener("hashchange", hide);
  }

  // -- 4. search -------------------------------------------------------------------------------
  var TEX_WORDS = {
    alpha: "\u03b1", beta: "\u03b2", gamma: "\u03b3", delta: "\u03b4", epsilon: "\u03b5",
    eta: "\u03b7", lambda: "\u03bb", mu: "\u03bc", sigma: "\u03c3", theta: "\u03b8",
    partial: "\u2202", sum: "\u03a3", prod: "\u03a0", cdot: "\u00b7", times: "\u00d7",
    top: "\u22a4", ldots: "\u2026", cdots: "\u22ef", in: "\u2208", leq: "\u2264",
    geq: "\u2265", le: "\u2264", ge: "\u2265", approx: "\u2248", to: "\u2192",
    infty: "\u221e", ln: "ln", log: "log", exp: "exp", max: "max", min: "min", odot: "\u2299"
  };
  var ACCENTS = {bar: "\u0304", hat: "\u0302", tilde: "\u0303", overline: "\u0305"};

  // Innermost groups first, until nothing changes: \bar{\hat x} and \overline{\mathrm{out}}
  // keep both of their marks.
  function plainTeX(tex) {
    var previous;
    tex = tex.replace(/\\(?:left|right|[,;!]|quad|qquad)/g, " ");
    do {
      previous = tex;
      tex = tex
        .replace(/\\(bar|hat|tilde|overline)\s*(?:\{([^{}\\]*)\}|(\w))/g, function (m, accent, group, one) {
          // A combining mark follows each letter it covers.
          return (group || one).replace(/([^\s\u0300-\u036f][\u0300-\u036f]*)/g, "$1" + ACCENTS[accent]);
        })
        .replace(/\\[dt]?frac\s*(?:\{([^{}]*)\}|(\w))\s*(?:\{([^{}]*)\}|(\w))/g, function (m, a, a1, b, b1) {
          var part = function (text) { return text.trim().length > 1 ? "(" + text.trim() + ")" : text.trim(); };
          return part(a === undefined ? a1 : a) + "/" + part(b === undefined ? b1 : b);
        })
        .replace(/\\sqrt\{([^{}]*)\}/g, "\u221a($1)")
        .replace(/([_^])\{([^{}]*)\}/g, "$1$2")
        .replace(/\\(?:text|mathrm|mathbf|mathcal|operatorname)\{([^{}]*)\}/g, "$1");
    } while (tex !== previous);
    return tex
      .replace(/\\([A-Za-z]+)/g, function (m, word) { return TEX_WORDS[word] || ""; })
      .replace(/[{}]/g, "")
      .replace(/\s+/g, " ")
      .trim();
  }

  function plainMath(html) {
    return html.replace(/\\\(([\s\S]*?)\\\)|\\\[([\s\S]*?)\\\]/g, function (m, inline, display) {
      return plainTeX(inline || display || "");
    });
  }

  // The "Cite this equation" boxes hold BibTeX and TeX source to copy: not text to show in a
  // result's snippet.
  function withoutCitations(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var boxes = page.querySelectorAll("details.cnn-cite");
    if (!boxes.length) { return html; }
    boxes.forEach(function (box) { box.remove(); });
    return "<!DOCTYPE html>" + page.documentElement.outerHTML;
  }

  // searchtools.js declares Search with `const` at the top level of a classic script: a global
  // binding, but no property of window.
  function cleanSearch() {
    if (typeof Search !== "undefined" && Search.htmlToText && !Search.cnnPlainMath) {
      var toText = Search.htmlToText;
      Search.htmlToText = function (html, anchor) {
        return toText(plainMath(withoutCitations(html)), anchor);
      };
      Search.cnnPlainMath = true;
    }
  }

  // sphinx_highlight marks every word of the query; a word of one or two letters ("he") is
  // everywhere and hides the term that was looked for.
  function dropShortHighlights() {
    document.querySelectorAll("span.highlighted").forEach(function (span) {
      if (span.textContent.trim().length < 3) {
        span.replaceWith(document.createTextNode(span.textContent));
      }
    });
  }

  ready(function () {
    cleanSearch();
    window.setTimeout(dropShortHighlights, 0);
    breakNamesInTables(document);
    watchScrollers(document);
    // MathJax replaces the math after this script ran: watch its boxes once it has typeset.
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(function () { watchScrollers(document); });
    } else {
      window.addEventListener("load", function () {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
          MathJax.startup.promise.then(function () { watchScrollers(document); });
        }
      });
    }
    document.addEventListener("toggle", function () { watchScrollers(document); }, true);
    watchLinks();
  });

  window.cnnReader = {
    updateCues: function () { document.querySelectorAll(SCROLLERS).forEach(updateCue); },
    plainTeX: plainTeX
  };
}());
