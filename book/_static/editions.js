/* The editions of the book on one site (book/_ext/cnnbook/editions.py injects this script
 * into every page of every edition, with the edition's version and the path to the root).
 *
 * - A switcher in the page's header lists the editions of versions.json (newest first) and
 *   opens the same page in the one chosen (its first page when it has no such page), with a
 *   link to the zip of the edition being read.
 * - On an edition older than the newest, a banner at the foot of the window links to the
 *   newest and names, from labels.json (book/published_labels.tsv and the editions' pages),
 *   the number that the equation in view has in the newest edition.
 * Both files come from the site itself; without them (a page opened from the zip) the page
 * shows neither. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var here = script.getAttribute("data-edition");
  var root = new URL(script.getAttribute("data-root"), window.location.href);
  // "v0.2.0/book/dense.html": the edition's folder, then the page inside it.
  var inside = window.location.pathname.slice(root.pathname.length);
  var folder = inside.split("/")[0];
  var page = inside.slice(folder.length + 1);

  function json(name) {
    return window.fetch(new URL(name, root)).then(function (response) {
      if (!response.ok) { throw new Error(name + ": HTTP " + response.status); }
      return response.json();
    });
  }

  function element(tag, attributes, text) {
    var el = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (key) { el.setAttribute(key, attributes[key]); });
    if (text) { el.textContent = text; }
    return el;
  }

  function open(entry) {
    var target = new URL(entry.url + page + window.location.hash, root);
    window.fetch(target, {method: "HEAD"}).then(function (response) {
      window.location.href = response.ok ? target.href : new URL(entry.url, root).href;
    }, function () { window.location.href = new URL(entry.url, root).href; });
  }

  function switcher(versions) {
    var box = element("div", {"class": "cnn-editions"});
    var select = element("select", {"id": "cnn-edition-select", "aria-label": "Edition"});
    versions.forEach(function (entry, k) {
      var option = element("option", {"value": String(k)}, entry.name);
      if (entry.version === here) { option.selected = true; }
      select.appendChild(option);
    });
    select.addEventListener("change", function () { open(versions[Number(select.value)]); });
    box.appendChild(element("label", {"for": "cnn-edition-select"}, "Edition"));
    box.appendChild(select);
    var mine = versions.filter(function (entry) { return entry.version === here; })[0];
    if (mine && mine.zip) {
      box.appendChild(element("a", {"class": "cnn-edition-zip", "download": "",
        "href": new URL(mine.zip, root).href, "title": "This edition as a zip, to read offline"},
        "zip"));
    }
    var header = document.querySelector(".article-header-buttons")
      || document.querySelector("article.bd-article");
    header.insertBefore(box, header.firstChild);
  }

  // The equation the reader is looking at: the target of the address if it is on screen,
  // else the first labelled equation on screen.
  function equationInView() {
    var seen = function (el) {
      var box = el.getBoundingClientRect();
      return box.bottom > 0 && box.top < window.innerHeight;
    };
    var target = window.location.hash && document.getElementById(window.location.hash.slice(1));
    if (target && target.matches("div.math[id^='equation-']") && seen(target)) { return target; }
    var all = document.querySelectorAll("div.math[id^='equation-']");
    for (var k = 0; k < all.length; k++) { if (seen(all[k])) { return all[k]; } }
    return null;
  }

  function banner(versions, labels) {
    var newest = versions.filter(function (entry) { return entry.preferred; })[0] || versions[0];
    var called = newest.name.replace(/ \(latest\)$/, "");
    var bar = element("div", {"class": "cnn-edition-banner", "role": "note",
                              "id": "cnn-edition-banner"});
    var line = element("p");
    line.appendChild(document.createTextNode("You are reading the " + here
      + " edition of this book. The newest is "));
    line.appendChild(element("a", {"class": "cnn-edition-newest",
      "href": new URL(newest.url + page, root).href}, called));
    line.appendChild(document.createTextNode(". "));
    var equation = element("span", {"class": "cnn-edition-equation", "aria-live": "polite"});
    line.appendChild(equation);
    bar.appendChild(line);
    document.body.appendChild(bar);
    document.body.classList.add("cnn-old-edition");

    var shown = null;
    function update() {
      var eq = equationInView();
      var label = eq ? eq.id.replace(/^equation-/, "") : null;
      if (label === shown) { return; }
      shown = label;
      equation.textContent = "";
      var number = label && (labels.numbers[labels.newest] || {})[label];
      if (!number) { equation.removeAttribute("data-label"); return; }
      var mark = eq.querySelector(".eqno");
      var old = mark ? mark.textContent.replace(/[^\d.]/g, "") : "";
      equation.setAttribute("data-label", label);
      equation.appendChild(document.createTextNode("Eq. (" + old + ") here, " + label
        + ", is "));
      equation.appendChild(element("a", {"class": "cnn-edition-remapped",
        "href": new URL(newest.url + labels.pages[label], root).href},
        "Eq. (" + number + ")"));
      equation.appendChild(document.createTextNode(" in " + called + "."));
    }
    var pending = false;
    function soon() {
      if (pending) { return; }
      pending = true;
      window.requestAnimationFrame(function () { pending = false; update(); });
    }
    window.addEventListener("scroll", soon, {passive: true});
    window.addEventListener("resize", soon);
    window.addEventListener("hashchange", soon);
    update();
  }

  Promise.all([json("versions.json"), json("labels.json")]).then(function (found) {
    var versions = found[0], labels = found[1];
    switcher(versions);
    if (folder !== "latest" && labels.newest !== here) { banner(versions, labels); }
  }, function () { /* not on a site of editions: nothing to switch to */ });
}());
