/* Max pooling, window by window, with the tie rule (chapter "Pooling").
 *
 * Plain JavaScript, no library, served with the site; built on explorer-kit.js. The arithmetic
 * is exposed as
 *
 *   window.cnnPoolExplorer.compute({x, dout, kernel_size, stride}) -> {out, argmax, dx}
 *
 * with the shapes and conventions of cnn.pool.maxpool2d_forward and maxpool2d_backward: x
 * (N, C, H, W) and dout (N, C, H_out, W_out) as nested arrays; kernel_size an integer or
 * [KH, KW]; stride likewise, by default the kernel size; argmax the row-major offset p KW + q of
 * the first maximum of each window (the tie rule: numpy.argmax). The interactive part works on
 * one sample and one channel: the reader edits the input, selects a window (a cell of out or
 * dout) or a cell of dx (mouse, or Tab, arrow keys and Enter) and sees the window's maximum,
 * which of tied entries wins, and where the upstream gradient goes (eq-maxpool-forward,
 * eq-maxpool-dx).
 */
(function () {
  "use strict";

  var kit = window.cnnExplorerKit;
  var fmt = kit.fmt, paren = kit.paren, el = kit.el;

  // -- arithmetic ------------------------------------------------------------------------------
  // H_out = (H - KH) // SH + 1: the output size of a convolution without padding.
  function outputSize(H, W, kernel, stride) {
    if (kernel[0] > H || kernel[1] > W) {
      throw new Error("kernel_size (KH, KW) = (" + kernel.join(", ") + ") is larger than the input " +
                      "(H, W) = (" + H + ", " + W + ")");
    }
    return [Math.floor((H - kernel[0]) / stride[0]) + 1, Math.floor((W - kernel[1]) / stride[1]) + 1];
  }

  /* out[n][c][i][j] is the maximum of window (i, j) (eq-maxpool-forward); argmax the offset
   * p KW + q of its first maximum in row-major order; dx[n][c][SH i + p][SW j + q] collects
   * dout[n][c][i][j] from every window whose maximum sits there (eq-maxpool-dx). */
  function compute(args) {
    if (!args || typeof args !== "object") { throw new Error("compute expects {x, dout, kernel_size, stride}"); }
    var kernel = kit.asPair(args.kernel_size === undefined ? 2 : args.kernel_size, "kernel_size", 1);
    var stride = args.stride === undefined || args.stride === null ? kernel
      : kit.asPair(args.stride, "stride", 1);
    var xs = kit.shapeOf(args.x, 4, "x", "(N, C, H, W)");
    var N = xs[0], C = xs[1], H = xs[2], W = xs[3], KW = kernel[1];
    var size = outputSize(H, W, kernel, stride);
    var x = args.x;
    var out = kit.zeros([N, C, size[0], size[1]]), argmax = kit.zeros([N, C, size[0], size[1]]);
    for (var n = 0; n < N; n += 1) {
      for (var c = 0; c < C; c += 1) {
        for (var i = 0; i < size[0]; i += 1) {
          for (var j = 0; j < size[1]; j += 1) {
            var best = -Infinity, where = 0;
            for (var k = 0; k < kernel[0] * KW; k += 1) {
              var value = x[n][c][i * stride[0] + Math.floor(k / KW)][j * stride[1] + k % KW];
              if (value > best) { best = value; where = k; }  // strictly greater: the first wins
            }
            out[n][c][i][j] = best;
            argmax[n][c][i][j] = where;
          }
        }
      }
    }
    var result = { out: out, argmax: argmax };
    if (args.dout === undefined) { return result; }
    var ds = kit.shapeOf(args.dout, 4, "dout", "(N, C, H_out, W_out)");
    if (ds.join() !== [N, C, size[0], size[1]].join()) {
      throw new Error("dout has shape (" + ds.join(", ") + ") but the forward pass gives " +
                      "(N, C, H_out, W_out) = (" + [N, C, size[0], size[1]].join(", ") + ")");
    }
    result.dx = kit.zeros([N, C, H, W]);
    for (n = 0; n < N; n += 1) {
      for (c = 0; c < C; c += 1) {
        for (i = 0; i < size[0]; i += 1) {
          for (j = 0; j < size[1]; j += 1) {
            var kk = argmax[n][c][i][j];
            result.dx[n][c][i * stride[0] + Math.floor(kk / KW)][j * stride[1] + kk % KW] += args.dout[n][c][i][j];
          }
        }
      }
    }
    return result;
  }

  // -- the interactive explorer (one sample, one channel) -----------------------------------------
  var LIMITS = { H: [2, 6], W: [2, 6], KH: [1, 3], KW: [1, 3], stride: [1, 3] };
  var LABELS = { H: "Input rows H", W: "Input columns W", KH: "Window rows KH", KW: "Window columns KW",
                 stride: "Stride S" };
  var TITLES = { out: "out, the pooled output", dout: "dout, the upstream gradient",
                 dx: "dx, the input gradient" };
  // The chapter's example of a tie: the top-left window holds the maximum 5 twice.
  var EXAMPLE = [[1, 5, 2, 0], [5, 3, 1, 4], [0, 2, 7, 1], [6, 1, 3, 2]];

  function Explorer(root, id) {
    this.root = root;
    this.id = "cnn-explorer-" + id;
    this.config = { H: 4, W: 4, KH: 2, KW: 2, stride: 2 };
    this.seed = 1;
    this.x = EXAMPLE.map(function (row) { return row.slice(); });
    this.selection = null;
    this.build();
    this.update();
  }

  Explorer.prototype.build = function () {
    var self = this;
    var parts = kit.frame(this.root, {
      id: this.id, label: "Sizes of the max pooling", fields: kit.sizeFields(LIMITS, LABELS, this.config),
      change: function () { self.readSizes(); },
      reroll: function () { self.seed += 1; self.randomInput(); self.update(); },
      help: "Edit the numbers of x (type the same value twice in a window to make a tie). Select a cell " +
        "of out or dout to see its window, or a cell of dx to see the windows that send it gradient, " +
        "with the mouse, or with Tab, the arrow keys and Enter. The numbers in the corners of a " +
        "window are its offsets p·KW + q in row-major order; the sum is written out below the grids."
    });
    this.inputs = parts.inputs;
    this.error = parts.error;
    this.sum = parts.sum;
    this.grids = parts.add(el("div", { "class": "cnn-explorer-grids" }));
  };

  Explorer.prototype.readSizes = function () {
    var next = kit.readSizes(this.inputs, LIMITS, LABELS, this.error, function (n) {
      outputSize(n.H, n.W, [n.KH, n.KW], [n.stride, n.stride]);
    });
    if (!next) { return; }
    var resized = next.H !== this.config.H || next.W !== this.config.W;
    this.config = next;
    this.selection = null;
    if (resized) { this.randomInput(); }
    this.update();
  };

  // Small integers, so that ties are common.
  Explorer.prototype.randomInput = function () {
    var random = kit.generator(this.seed * 7919 + this.config.H * 100 + this.config.W);
    this.x = kit.randomGrid(this.config.H, this.config.W, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], random);
  };

  Explorer.prototype.readCell = function (input) {
    var r = Number(input.getAttribute("data-row")), c = Number(input.getAttribute("data-col"));
    var value = input.value.trim() === "" ? NaN : Number(input.value);
    if (!isFinite(value)) {
      this.error.textContent = "x[" + r + ", " + c + "] must be a number; it keeps its last value, " +
        fmt(this.x[r][c]) + ".";
      input.value = this.x[r][c];
      return;
    }
    this.error.textContent = "";
    this.x[r][c] = value;
    this.update();
  };

  Explorer.prototype.update = function () {
    var cfg = this.config;
    var size = outputSize(cfg.H, cfg.W, [cfg.KH, cfg.KW], [cfg.stride, cfg.stride]);
    this.Ho = size[0];
    this.Wo = size[1];
    if (!this.dout || this.dout.length !== size[0] || this.dout[0].length !== size[1] || this.doutSeed !== this.seed) {
      var random = kit.generator(this.seed * 104729 + size[0] * 10 + size[1]);
      this.dout = kit.randomGrid(size[0], size[1], [-2, -1, 1, 2, 3], random);
      this.doutSeed = this.seed;
    }
    var result = compute({ x: [[this.x]], dout: [[this.dout]], kernel_size: [cfg.KH, cfg.KW],
                           stride: [cfg.stride, cfg.stride] });
    this.out = result.out[0][0];
    this.argmax = result.argmax[0][0];
    this.dx = result.dx[0][0];
    this.draw();
    if (!this.selection) { this.selection = { grid: "out", row: 0, col: 0 }; }
    this.select(this.selection.grid, this.selection.row, this.selection.col);
  };

  /* The grids of out, dout and dx are drawn anew; the fields of x only when the sizes change,
   * so that a field keeps the focus while the reader edits the input. */
  Explorer.prototype.draw = function () {
    var cfg = this.config, shape = [cfg.H, cfg.W, cfg.KH, cfg.KW, cfg.stride, this.Ho, this.Wo].join(",");
    var old = this.cells || {};
    this.cells = {};
    if (this.grids.getAttribute("data-shape") !== shape) {
      this.grids.textContent = "";
      var forward = el("div", { "class": "cnn-explorer-row", role: "group", "aria-label": "Forward pass" });
      forward.appendChild(this.drawInput());
      forward.appendChild(this.drawGrid("out"));
      var backward = el("div", { "class": "cnn-explorer-row", role: "group", "aria-label": "Backward pass" });
      backward.appendChild(this.drawGrid("dout"));
      backward.appendChild(this.drawGrid("dx"));
      this.grids.appendChild(forward);
      this.grids.appendChild(backward);
      this.grids.setAttribute("data-shape", shape);
      return;
    }
    var self = this;
    this.xInputs.forEach(function (row, r) {
      row.forEach(function (cell, c) {
        var input = cell.querySelector("input");
        if (Number(input.value) !== self.x[r][c] || input.value.trim() === "") { input.value = self.x[r][c]; }
      });
    });
    ["out", "dout", "dx"].forEach(function (name) {
      var figure = old[name][0][0].closest("figure");
      figure.parentNode.replaceChild(self.drawGrid(name), figure);
    });
  };

  // x as a grid of number fields: the reader types the input, ties included.
  Explorer.prototype.drawInput = function () {
    var self = this, cfg = this.config;
    var figure = el("figure", { "class": "cnn-explorer-panel", "data-panel": "x" });
    var captionId = this.id + "-caption-x";
    figure.appendChild(el("figcaption", { id: captionId }, "x, the input (" + cfg.H + " × " + cfg.W + ")"));
    var grid = el("div", { "class": "cnn-pool-input", role: "group", "aria-labelledby": captionId,
                           style: "grid-template-columns: repeat(" + cfg.W + ", auto)" });
    this.xInputs = [];
    for (var r = 0; r < cfg.H; r += 1) {
      this.xInputs.push([]);
      for (var c = 0; c < cfg.W; c += 1) {
        var cell = el("span", { "class": "cnn-pool-cell", "data-grid": "x", "data-row": r, "data-col": c });
        var input = el("input", { type: "number", step: "any", inputmode: "decimal", value: this.x[r][c],
                                  "data-row": r, "data-col": c, "aria-label": "x[" + r + ", " + c + "]" });
        input.addEventListener("change", function (event) { self.readCell(event.target); });
        cell.appendChild(input);
        cell.appendChild(el("span", { "class": "cnn-pool-badge", "aria-hidden": "true" }, ""));
        grid.appendChild(cell);
        this.xInputs[r].push(cell);
      }
    }
    figure.appendChild(grid);
    return figure;
  };

  Explorer.prototype.values = function (name) { return this[name]; };

  Explorer.prototype.cellLabel = function (name, r, c) {
    var text = name + "[" + r + ", " + c + "] = " + fmt(this[name][r][c]);
    if (name === "out") { text += ", the maximum of window (" + r + ", " + c + "), offset " + this.argmax[r][c]; }
    return text;
  };

  Explorer.prototype.drawGrid = function (name) {
    var self = this;
    var grid = kit.svgGrid({
      id: this.id, name: name, title: TITLES[name], values: this[name],
      label: function (r, c) { return self.cellLabel(name, r, c); },
      selectable: true, describedBy: this.id + "-help",
      activate: function (cell) {
        var r = Number(cell.getAttribute("data-row")), c = Number(cell.getAttribute("data-col"));
        kit.focusCell(self.cells[name], r, c);
        self.select(name, r, c);
      }
    });
    this.cells[name] = grid.cells;
    return grid.figure;
  };

  // The window of output (i, j): its cells in row-major order, with their offsets.
  Explorer.prototype.window = function (i, j) {
    var cfg = this.config, list = [];
    for (var p = 0; p < cfg.KH; p += 1) {
      for (var q = 0; q < cfg.KW; q += 1) {
        var r = i * cfg.stride + p, s = j * cfg.stride + q;
        list.push({ k: p * cfg.KW + q, p: p, q: q, r: r, s: s, value: this.x[r][s] });
      }
    }
    return list;
  };

  Explorer.prototype.winner = function (i, j) {
    var k = this.argmax[i][j], cfg = this.config;
    return { k: k, r: i * cfg.stride + Math.floor(k / cfg.KW), s: j * cfg.stride + k % cfg.KW };
  };

  Explorer.prototype.clearInputMarks = function () {
    this.xInputs.forEach(function (row) {
      row.forEach(function (cell) {
        cell.classList.remove("is-window", "is-winner", "is-tied");
        cell.querySelector(".cnn-pool-badge").textContent = "";
      });
    });
  };

  Explorer.prototype.select = function (name, r, c) {
    var self = this;
    kit.clearMarks(this.cells);
    this.clearInputMarks();
    this.selection = { grid: name, row: r, col: c };
    var cell = this.cells[name][r][c];
    cell.classList.add("is-selected");
    cell.setAttribute("aria-selected", "true");
    this.sum.textContent = name === "dx" ? this.explainDx(r, c) : this.explainWindow(name, r, c);
  };

  Explorer.prototype.explainWindow = function (name, i, j) {
    var self = this, cfg = this.config;
    var list = this.window(i, j), win = this.winner(i, j), best = this.out[i][j];
    kit.mark(this.cells[name === "out" ? "dout" : "out"][i][j], "is-term");
    kit.mark(this.cells.dx[win.r][win.s], "is-term");
    var tied = list.filter(function (t) { return t.value === best; });
    list.forEach(function (t) {
      var cell = self.xInputs[t.r][t.s];
      cell.classList.add("is-window");
      cell.querySelector(".cnn-pool-badge").textContent = String(t.k);
      if (t.k === win.k) { cell.classList.add("is-winner"); } else if (t.value === best) { cell.classList.add("is-tied"); }
    });
    var where = function (t) { return "x[" + t.r + ", " + t.s + "] (offset " + t.k + ")"; };
    var text = "Window (" + i + ", " + j + ") reads x[" + (i * cfg.stride) + "…" + (i * cfg.stride + cfg.KH - 1) +
      ", " + (j * cfg.stride) + "…" + (j * cfg.stride + cfg.KW - 1) + "]: out[" + i + ", " + j + "] = max(" +
      list.map(function (t) { return fmt(t.value); }).join(", ") + ") = " + fmt(best) + ". ";
    if (tied.length > 1) {
      text += "A tie: the maximum " + fmt(best) + " is at " + tied.map(where).join(" and ") +
        "; the package's rule (numpy.argmax) picks the first in row-major order, " + where(tied[0]) +
        ", and never splits the gradient. ";
    } else {
      text += "The maximum is at " + where(list[win.k]) + ". ";
    }
    return text + "The backward pass sends dout[" + i + ", " + j + "] = " + fmt(this.dout[i][j]) + " to dx[" +
      win.r + ", " + win.s + "] alone; every other entry of the window gets nothing from it.";
  };

  Explorer.prototype.explainDx = function (r, s) {
    var self = this, from = [];
    for (var i = 0; i < this.Ho; i += 1) {
      for (var j = 0; j < this.Wo; j += 1) {
        var win = this.winner(i, j);
        if (win.r === r && win.s === s) { from.push({ i: i, j: j }); }
      }
    }
    from.forEach(function (t, k) {
      kit.mark(self.cells.dout[t.i][t.j], "is-term", k + 1);
      kit.mark(self.cells.out[t.i][t.j], "is-term", k + 1);
    });
    this.xInputs[r][s].classList.add("is-winner");
    if (!from.length) {
      return "dx[" + r + ", " + s + "] = 0: x[" + r + ", " + s + "] is the chosen maximum of no window, " +
        "so no upstream gradient reaches it.";
    }
    return "dx[" + r + ", " + s + "] = " +
      from.map(function (t) { return "dout[" + t.i + ", " + t.j + "]"; }).join(" + ") + " = " +
      from.map(function (t) { return paren(self.dout[t.i][t.j]); }).join(" + ") + " = " + fmt(this.dx[r][s]) +
      ": x[" + r + ", " + s + "] is the chosen maximum of " + (from.length === 1 ? "window " : from.length + " windows ") +
      from.map(function (t) { return "(" + t.i + ", " + t.j + ")"; }).join(", ") +
      (from.length > 1 ? ", which overlap there, so their gradients add up." : ".");
  };

  Explorer.prototype.state = function () {
    var cfg = this.config;
    return { H: cfg.H, W: cfg.W, KH: cfg.KH, KW: cfg.KW, stride: cfg.stride, Ho: this.Ho, Wo: this.Wo,
             x: this.x, dout: this.dout, out: this.out, argmax: this.argmax, dx: this.dx,
             selection: this.selection };
  };

  var explorers = kit.starter("maxpool2d", Explorer);

  window.cnnPoolExplorer = {
    compute: compute,
    // The first max-pooling explorer of the page: its sizes, numbers and selection.
    state: function () { return explorers.length ? explorers[0].state() : null; },
    explorers: explorers
  };
}());
