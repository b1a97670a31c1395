/* What the book's explorers share (conv-explorer.js, pool-explorer.js, bn-explorer.js).
 *
 * Plain JavaScript, no library, served with the site and loaded before the explorers.
 * window.cnnExplorerKit holds: argument checks that name the argument (asPair, shapeOf),
 * a seeded generator (the same settings always show the same numbers), number formatting
 * with a true minus sign, element creation, and grids of SVG cells that a reader selects with
 * the mouse or with Tab, the arrow keys and Enter (one tab stop per grid).
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var CELL = 34;
  var GAP = 3;

  function asPair(value, name, minimum) {
    var pair = Array.isArray(value) ? value.slice() : [value, value];
    if (pair.length !== 2 || !pair.every(function (v) { return Number.isInteger(v) && v >= minimum; })) {
      throw new Error(name + " must be an integer >= " + minimum + " or a pair of them, got " +
                      JSON.stringify(value));
    }
    return pair;
  }

  function shapeOf(array, rank, name, axes) {
    var shape = [];
    var level = array;
    for (var k = 0; k < rank; k += 1) {
      if (!Array.isArray(level) || level.length === 0) {
        throw new Error(name + " must be a non-empty nested array of shape " + axes);
      }
      shape.push(level.length);
      level = level[0];
    }
    (function check(value, depth) {
      if (depth === rank) {
        if (typeof value !== "number" || !isFinite(value)) {
          throw new Error(name + " holds a value that is not a finite number: " + value);
        }
        return;
      }
      if (!Array.isArray(value) || value.length !== shape[depth]) {
        throw new Error(name + " is not a rectangular array of shape " + axes);
      }
      value.forEach(function (item) { check(item, depth + 1); });
    }(array, 0));
    return shape;
  }

  function zeros(shape) {
    if (shape.length === 1) { return new Array(shape[0]).fill(0); }
    var out = [];
    for (var k = 0; k < shape[0]; k += 1) { out.push(zeros(shape.slice(1))); }
    return out;
  }

  // A small seeded generator (mulberry32): the same configuration always shows the same numbers.
  function generator(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function randomGrid(rows, cols, values, random) {
    var grid = [];
    for (var r = 0; r < rows; r += 1) {
      var row = [];
      for (var c = 0; c < cols; c += 1) { row.push(values[Math.floor(random() * values.length)]); }
      grid.push(row);
    }
    return grid;
  }

  // Three decimals at most, and a true minus sign; -0 shows as 0.
  function fmt(value) {
    var rounded = Math.round(value * 1000) / 1000;
    return (rounded < 0 ? "\u2212" : "") + String(Math.abs(rounded));
  }

  function paren(value) { return fmt(value).charAt(0) === "\u2212" ? "(" + fmt(value) + ")" : fmt(value); }

  function el(tag, attrs, text) {
    var node = tag.indexOf("svg:") === 0 ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // Moves the grid's one tab stop to cell (r, c) and focuses it.
  function focusCell(cells, r, c) {
    cells.forEach(function (row) { row.forEach(function (cell) { cell.setAttribute("tabindex", "-1"); }); });
    cells[r][c].setAttribute("tabindex", "0");
    cells[r][c].focus();
  }

  function onGridKey(event, cells, activate) {
    var cell = event.target.closest && event.target.closest("[data-grid]");
    if (!cell) { return; }
    var r = Number(cell.getAttribute("data-row")), c = Number(cell.getAttribute("data-col"));
    var rows = cells.length, cols = cells[0].length;
    var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (moves[event.key]) {
      r = Math.min(Math.max(r + moves[event.key][0], 0), rows - 1);
      c = Math.min(Math.max(c + moves[event.key][1], 0), cols - 1);
    } else if (event.key === "Home") {
      c = 0;
      if (event.ctrlKey) { r = 0; }
    } else if (event.key === "End") {
      c = cols - 1;
      if (event.ctrlKey) { r = rows - 1; }
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      activate(cell);
      return;
    } else {
      return;
    }
    event.preventDefault();
    focusCell(cells, r, c);
  }

  /* A figure holding a caption and an SVG grid of cells. opts: {id (unique prefix), name,
   * title, values (rows of numbers), label(r, c) (the cell's text alternative),
   * classes(r, c) (extra classes), selectable, describedBy, activate(cell)}. Returns
   * {figure, cells}, cells[r][c] the <g> of each cell (data-grid, data-row, data-col,
   * data-value). */
  function svgGrid(opts) {
    var values = opts.values;
    var rows = values.length, cols = values[0].length;
    var figure = el("figure", { "class": "cnn-explorer-panel", "data-panel": opts.name });
    var captionId = opts.id + "-caption-" + opts.name;
    figure.appendChild(el("figcaption", { id: captionId }, opts.title + " (" + rows + " × " + cols + ")"));
    var width = cols * (CELL + GAP) + GAP, height = rows * (CELL + GAP) + GAP;
    var svg = el("svg:svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height,
                              role: "grid", "aria-labelledby": captionId, "aria-readonly": "true",
                              "aria-describedby": opts.describedBy, "data-grid-root": opts.name,
                              "class": opts.selectable ? "is-selectable" : "" });
    var cells = [];
    for (var r = 0; r < rows; r += 1) {
      var rowGroup = el("svg:g", { role: "row" });
      cells.push([]);
      for (var c = 0; c < cols; c += 1) {
        var x0 = GAP + c * (CELL + GAP), y0 = GAP + r * (CELL + GAP);
        var extra = opts.classes ? opts.classes(r, c) : "";
        var cell = el("svg:g", { "class": "cnn-cell" + (extra ? " " + extra : ""), role: "gridcell",
                                 tabindex: "-1", "data-grid": opts.name, "data-row": r, "data-col": c,
                                 "data-value": values[r][c], "aria-label": opts.label(r, c),
                                 "aria-selected": "false" });
        cell.appendChild(el("svg:rect", { "class": "cnn-cell-bg", x: x0, y: y0, width: CELL, height: CELL, rx: 3 }));
        cell.appendChild(el("svg:text", { "class": "cnn-cell-value", x: x0 + CELL / 2, y: y0 + CELL / 2 + 1,
                                          "text-anchor": "middle", "dominant-baseline": "middle",
                                          "aria-hidden": "true" }, fmt(values[r][c])));
        cell.appendChild(el("svg:text", { "class": "cnn-cell-badge", x: x0 + CELL - 3, y: y0 + 9,
                                          "text-anchor": "end", "aria-hidden": "true" }, ""));
        cell.appendChild(el("svg:rect", { "class": "cnn-cell-focus", x: x0 - 1.5, y: y0 - 1.5,
                                          width: CELL + 3, height: CELL + 3, rx: 4 }));
        rowGroup.appendChild(cell);
        cells[r].push(cell);
      }
      svg.appendChild(rowGroup);
    }
    cells[0][0].setAttribute("tabindex", "0");
    svg.addEventListener("click", function (event) {
      var cell = event.target.closest("[data-grid]");
      if (cell) { opts.activate(cell); }
    });
    svg.addEventListener("keydown", function (event) { onGridKey(event, cells, opts.activate); });
    figure.appendChild(svg);
    return { figure: figure, cells: cells };
  }

  // Removes the highlights of every cell of {name: cells}.
  function clearMarks(grids) {
    Object.keys(grids).forEach(function (name) {
      grids[name].forEach(function (row) {
        row.forEach(function (cell) {
          cell.classList.remove("is-selected", "is-term", "is-anchor", "is-dropped", "is-tied");
          cell.setAttribute("aria-selected", "false");
          cell.querySelector(".cnn-cell-badge").textContent = "";
        });
      });
    });
  }

  // Highlights a cell as `kind`, adding `badge` (a term number) to its badge.
  function mark(cell, kind, badge) {
    cell.classList.add(kind);
    if (badge !== undefined) {
      var text = cell.querySelector(".cnn-cell-badge");
      text.textContent = text.textContent ? text.textContent + "," + badge : String(badge);
    }
  }

  /* Clears `root` and lays out what every explorer has: a form of number fields, a "New
   * numbers" button, an error line (role alert), a help text and, last, the live region where
   * the sum is written out. opts: {id, label (of the form), fields: [{key, label, value,
   * attrs}], help, change(key), reroll()}. Returns {inputs (by key), error, sum, add(node)}; add
   * puts a node between the help and the sum. */
  function frame(root, opts) {
    root.textContent = "";
    root.classList.add("is-live");
    var form = el("form", { "class": "cnn-explorer-controls", "aria-label": opts.label });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    var inputs = {};
    opts.fields.forEach(function (field) {
      var id = opts.id + "-" + field.key;
      var attrs = { id: id, type: "number", value: field.value, "data-setting": field.key };
      Object.keys(field.attrs).forEach(function (key) { attrs[key] = field.attrs[key]; });
      var input = el("input", attrs);
      input.addEventListener("change", function () { opts.change(field.key); });
      var wrap = el("span", { "class": "cnn-explorer-field" });
      wrap.appendChild(el("label", { "for": id }, field.label));
      wrap.appendChild(input);
      form.appendChild(wrap);
      inputs[field.key] = input;
    });
    var reroll = el("button", { type: "button", "class": "cnn-explorer-reroll" }, "New numbers");
    reroll.addEventListener("click", opts.reroll);
    form.appendChild(reroll);
    root.appendChild(form);
    var error = root.appendChild(el("p", { "class": "cnn-explorer-error", role: "alert" }));
    root.appendChild(el("p", { "class": "cnn-explorer-help", id: opts.id + "-help" }, opts.help));
    var sum = root.appendChild(el("p", { "class": "cnn-explorer-sum", role: "status", "aria-live": "polite",
                                         "aria-atomic": "true", id: opts.id + "-sum" }));
    return { inputs: inputs, error: error, sum: sum,
             add: function (node) { return root.insertBefore(node, sum); } };
  }

  // Number fields for whole numbers within limits: {key: [min, max]} and {key: label}.
  function sizeFields(limits, labels, values) {
    return Object.keys(limits).map(function (key) {
      return { key: key, label: labels[key], value: values[key],
               attrs: { min: limits[key][0], max: limits[key][1], step: 1 } };
    });
  }

  /* The sizes typed into `inputs`, checked against `limits` and then by `check(sizes)` (which
   * throws an Error naming the problem). Returns the sizes, or null after writing the problems
   * into `error`; the grids keep the last valid sizes. */
  function readSizes(inputs, limits, labels, error, check) {
    var next = {}, problems = [];
    Object.keys(limits).forEach(function (key) {
      var value = Number(inputs[key].value);
      if (!Number.isInteger(value) || value < limits[key][0] || value > limits[key][1]) {
        problems.push(labels[key] + " must be a whole number from " + limits[key][0] + " to " + limits[key][1]);
      }
      next[key] = value;
    });
    if (!problems.length) {
      try { check(next); } catch (problem) { problems.push(problem.message); }
    }
    error.textContent = problems.length ? problems.join(". ") + ". The grids still show the last valid sizes." : "";
    return problems.length ? null : next;
  }

  // Starts `Explorer` on every root of `kind` not started yet; returns the list it keeps.
  function starter(kind, Explorer) {
    var explorers = [];
    function start() {
      var roots = document.querySelectorAll(".cnn-explorer[data-cnn-explorer='" + kind + "']");
      Array.prototype.forEach.call(roots, function (root) {
        if (!root.classList.contains("is-live")) { explorers.push(new Explorer(root, kind + "-" + explorers.length)); }
      });
    }
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", start);
    } else {
      start();
    }
    return explorers;
  }

  window.cnnExplorerKit = {
    asPair: asPair, shapeOf: shapeOf, zeros: zeros, generator: generator, randomGrid: randomGrid,
    fmt: fmt, paren: paren, el: el, svgGrid: svgGrid, focusCell: focusCell, clearMarks: clearMarks,
    mark: mark, starter: starter, frame: frame, sizeFields: sizeFields, readSizes: readSizes
  };
}());
