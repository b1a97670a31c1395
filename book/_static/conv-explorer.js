/* The backward pass of a convolution, entry by entry (chapter "Convolution, backward").
 *
 * Plain JavaScript and SVG, no library, served with the site. The arithmetic is exposed as
 *
 *   window.cnnExplorer.compute({x, w, dout, stride, padding}) -> {dx, dw, db}
 *
 * with the shapes and conventions of cnn.conv.conv2d_backward: x (N, C, H, W), w (F, C, KH, KW),
 * dout (N, F, H_out, W_out) as nested arrays; stride and padding an integer or [vertical,
 * horizontal]. The interactive part works on one sample, one channel and one filter: the reader
 * picks a cell of dx, dw, db or dout (mouse, or Tab, arrow keys and Enter) and sees which entries
 * meet in its sum (eq-conv-dx, eq-conv-dw, eq-conv-db) and where an upstream gradient goes.
 */
(function () {
  "use strict";

  var kit = window.cnnExplorerKit;
  var asPair = kit.asPair, shapeOf = kit.shapeOf, zeros = kit.zeros, fmt = kit.fmt, paren = kit.paren,
      el = kit.el;

  // -- arithmetic ------------------------------------------------------------------------------
  // H_out = (H + 2 PH - KH) // SH + 1 (eq-conv-out-size).
  function outputSize(H, W, KH, KW, stride, padding) {
    var s = asPair(stride, "stride", 1);
    var p = asPair(padding, "padding", 0);
    if (KH > H + 2 * p[0] || KW > W + 2 * p[1]) {
      throw new Error("kernel_size (KH, KW) = (" + KH + ", " + KW + ") is larger than the padded " +
                      "input (H + 2 PH, W + 2 PW) = (" + (H + 2 * p[0]) + ", " + (W + 2 * p[1]) + ")");
    }
    return [Math.floor((H + 2 * p[0] - KH) / s[0]) + 1, Math.floor((W + 2 * p[1] - KW) / s[1]) + 1];
  }

  /* Every output position (n, f, i, j) sends dout[n][f][i][j] * w[f] back to the window of the
   * padded input it read (eq-conv-dx), adds dout times that window to dw[f] (eq-conv-dw) and dout
   * to db[f] (eq-conv-db). Padding cells are zeros: they add nothing to dw and are cropped from dx. */
  function compute(args) {
    if (!args || typeof args !== "object") { throw new Error("compute expects {x, w, dout, stride, padding}"); }
    var stride = asPair(args.stride === undefined ? 1 : args.stride, "stride", 1);
    var padding = asPair(args.padding === undefined ? 0 : args.padding, "padding", 0);
    var xs = shapeOf(args.x, 4, "x", "(N, C, H, W)");
    var ws = shapeOf(args.w, 4, "w", "(F, C, KH, KW)");
    var ds = shapeOf(args.dout, 4, "dout", "(N, F, H_out, W_out)");
    var N = xs[0], C = xs[1], H = xs[2], W = xs[3];
    var F = ws[0], KH = ws[2], KW = ws[3];
    if (ws[1] !== C) { throw new Error("w has " + ws[1] + " channels but x has C = " + C); }
    var size = outputSize(H, W, KH, KW, stride, padding);
    var expected = [N, F, size[0], size[1]];
    if (ds.join() !== expected.join()) {
      throw new Error("dout has shape (" + ds.join(", ") + ") but the forward pass gives " +
                      "(N, F, H_out, W_out) = (" + expected.join(", ") + ")");
    }
    var x = args.x, w = args.w, dout = args.dout;
    var dx = zeros([N, C, H, W]), dw = zeros([F, C, KH, KW]), db = zeros([F]);
    for (var n = 0; n < N; n += 1) {
      for (var f = 0; f < F; f += 1) {
        for (var i = 0; i < size[0]; i += 1) {
          for (var j = 0; j < size[1]; j += 1) {
            var g = dout[n][f][i][j];
            db[f] += g;
            for (var c = 0; c < C; c += 1) {
              for (var p = 0; p < KH; p += 1) {
                var r = i * stride[0] + p - padding[0];
                if (r < 0 || r >= H) { continue; }
                for (var q = 0; q < KW; q += 1) {
                  var s = j * stride[1] + q - padding[1];
                  if (s < 0 || s >= W) { continue; }
                  dw[f][c][p][q] += g * x[n][c][r][s];
                  dx[n][c][r][s] += g * w[f][c][p][q];
                }
              }
            }
          }
        }
      }
    }
    return { dx: dx, dw: dw, db: db };
  }

  /* The terms of one sum, for one sample, channel and filter. cfg: {H, W, KH, KW, stride,
   * padding} (stride and padding as pairs or integers). Rows and columns of the padded input
   * are padded coordinates (u, v) = (r + PH, s + PW). */
  function geometry(cfg) {
    var s = asPair(cfg.stride, "stride", 1), p = asPair(cfg.padding, "padding", 0);
    var out = outputSize(cfg.H, cfg.W, cfg.KH, cfg.KW, s, p);
    return { H: cfg.H, W: cfg.W, KH: cfg.KH, KW: cfg.KW, SH: s[0], SW: s[1], PH: p[0], PW: p[1],
             Ho: out[0], Wo: out[1] };
  }

  var terms = {
    // dx[r][s] = sum of dout[i][j] w[p][q] over iS + p = r + P, jS + q = s + P (eq-conv-dx).
    dx: function (cfg, r, s) {
      var g = geometry(cfg), list = [];
      for (var i = 0; i < g.Ho; i += 1) {
        var p = r + g.PH - i * g.SH;
        if (p < 0 || p >= g.KH) { continue; }
        for (var j = 0; j < g.Wo; j += 1) {
          var q = s + g.PW - j * g.SW;
          if (q < 0 || q >= g.KW) { continue; }
          list.push({ i: i, j: j, p: p, q: q });
        }
      }
      return list;
    },
    // dw[p][q] = sum over (i, j) of dout[i][j] x_padded[iS + p][jS + q] (eq-conv-dw).
    dw: function (cfg, p, q) {
      var g = geometry(cfg), list = [];
      for (var i = 0; i < g.Ho; i += 1) {
        for (var j = 0; j < g.Wo; j += 1) {
          var u = i * g.SH + p, v = j * g.SW + q;
          list.push({ i: i, j: j, u: u, v: v,
                      padding: u < g.PH || u >= g.PH + g.H || v < g.PW || v >= g.PW + g.W });
        }
      }
      return list;
    },
    // db = sum over (i, j) of dout[i][j] (eq-conv-db).
    db: function (cfg) {
      var g = geometry(cfg), list = [];
      for (var i = 0; i < g.Ho; i += 1) {
        for (var j = 0; j < g.Wo; j += 1) { list.push({ i: i, j: j }); }
      }
      return list;
    },
    // Where dout[i][j] goes: dx[r][s] += dout w[p][q] inside the input, dw[p][q] += dout x_padded[u][v].
    dout: function (cfg, i, j) {
      var g = geometry(cfg), list = [];
      for (var p = 0; p < g.KH; p += 1) {
        for (var q = 0; q < g.KW; q += 1) {
          var u = i * g.SH + p, v = j * g.SW + q, r = u - g.PH, s = v - g.PW;
          list.push({ p: p, q: q, u: u, v: v, r: r, s: s,
                      padding: r < 0 || r >= g.H || s < 0 || s >= g.W });
        }
      }
      return list;
    }
  };

  // -- the interactive explorer (one sample, one channel, one filter) ---------------------------
  var LIMITS = { H: [2, 8], W: [2, 8], KH: [1, 4], KW: [1, 4], stride: [1, 3], padding: [0, 2] };
  var LABELS = { H: "Input rows H", W: "Input columns W", KH: "Kernel rows KH", KW: "Kernel columns KW",
                 stride: "Stride S", padding: "Padding P" };
  var TITLES = {
    xpad: "x̃, the padded input",
    w: "w, the kernel",
    dout: "dout, the upstream gradient",
    dx: "dx, the input gradient",
    dw: "dw, the weight gradient",
    db: "db"
  };
  var SELECTABLE = { dx: true, dw: true, db: true, dout: true };

  function Explorer(root, index) {
    this.root = root;
    this.id = "cnn-explorer-" + index;
    this.config = { H: 7, W: 6, KH: 3, KW: 2, stride: 2, padding: 1 };
    this.seed = 1;
    this.selection = null;
    this.build();
    this.update();
  }

  Explorer.prototype.build = function () {
    var self = this;
    var parts = kit.frame(this.root, {
      id: this.id, label: "Sizes of the convolution", fields: kit.sizeFields(LIMITS, LABELS, this.config),
      change: function () { self.readInputs(); },
      reroll: function () { self.seed += 1; self.update(); },
      help: "Select a cell of dx, dw, db or dout with the mouse, or move to it with Tab and the arrow keys " +
        "and press Enter: the cells that meet in its sum are numbered term by term, and the sum is " +
        "written out below the grids."
    });
    this.inputs = parts.inputs;
    this.error = parts.error;
    this.sum = parts.sum;
    this.grids = parts.add(el("div", { "class": "cnn-explorer-grids" }));
  };

  Explorer.prototype.readInputs = function () {
    var next = kit.readSizes(this.inputs, LIMITS, LABELS, this.error, function (n) {
      outputSize(n.H, n.W, n.KH, n.KW, n.stride, n.padding);
    });
    if (!next) { return; }
    this.config = next;
    this.selection = null;
    this.update();
  };

  Explorer.prototype.update = function () {
    var g = geometry(this.config);
    this.g = g;
    var random = kit.generator(this.seed * 7919 + g.H * 1000 + g.W * 100 + g.KH * 10 + g.KW);
    this.x = kit.randomGrid(g.H, g.W, [-3, -2, -1, 0, 1, 2, 3], random);
    this.w = kit.randomGrid(g.KH, g.KW, [-2, -1, 1, 2], random);
    this.dout = kit.randomGrid(g.Ho, g.Wo, [-2, -1, 1, 2], random);
    var grads = compute({ x: [[this.x]], w: [[this.w]], dout: [[this.dout]],
                          stride: [g.SH, g.SW], padding: [g.PH, g.PW] });
    this.dx = grads.dx[0][0];
    this.dw = grads.dw[0][0];
    this.db = grads.db[0];
    this.xpad = [];
    for (var u = 0; u < g.H + 2 * g.PH; u += 1) {
      var row = [];
      for (var v = 0; v < g.W + 2 * g.PW; v += 1) {
        var r = u - g.PH, s = v - g.PW;
        row.push(r >= 0 && r < g.H && s >= 0 && s < g.W ? this.x[r][s] : 0);
      }
      this.xpad.push(row);
    }
    this.draw();
    if (!this.selection) { this.selection = { grid: "dx", row: Math.min(1, g.H - 1), col: Math.min(1, g.W - 1) }; }
    this.select(this.selection.grid, this.selection.row, this.selection.col);
  };

  Explorer.prototype.values = function (grid) {
    return grid === "db" ? [[this.db]] : this[grid];
  };

  Explorer.prototype.draw = function () {
    var self = this;
    this.grids.textContent = "";
    this.cells = {};
    var g = this.g;
    var groups = [["Forward pass", ["xpad", "w", "dout"]], ["Backward pass", ["dx", "dw", "db"]]];
    groups.forEach(function (group) {
      var row = el("div", { "class": "cnn-explorer-row", role: "group", "aria-label": group[0] });
      group[1].forEach(function (name) { row.appendChild(self.drawGrid(name)); });
      self.grids.appendChild(row);
    });
    this.grids.setAttribute("data-shape", [g.H, g.W, g.KH, g.KW, g.SH, g.PH, g.Ho, g.Wo].join(","));
  };

  Explorer.prototype.cellLabel = function (name, r, c) {
    var value = this.values(name)[r][c];
    var where = name === "db" ? "db" : name.replace("xpad", "x̃") + "[" + r + ", " + c + "]";
    var note = "";
    if (name === "xpad" && this.isPadding(r, c)) { note = ", padding"; }
    if (name === "xpad" && !this.isPadding(r, c)) { note = ", input pixel x[" + (r - this.g.PH) + ", " + (c - this.g.PW) + "]"; }
    return where + " = " + fmt(value) + note;
  };

  Explorer.prototype.isPadding = function (u, v) {
    var g = this.g;
    return u < g.PH || u >= g.PH + g.H || v < g.PW || v >= g.PW + g.W;
  };

  Explorer.prototype.drawGrid = function (name) {
    var self = this;
    var grid = kit.svgGrid({
      id: this.id, name: name, title: TITLES[name], values: this.values(name),
      label: function (r, c) { return self.cellLabel(name, r, c); },
      classes: function (r, c) { return name === "xpad" && self.isPadding(r, c) ? "is-padding" : ""; },
      selectable: SELECTABLE[name], describedBy: this.id + "-help",
      activate: function (cell) { self.activate(cell); }
    });
    this.cells[name] = grid.cells;
    return grid.figure;
  };

  Explorer.prototype.activate = function (cell) {
    var name = cell.getAttribute("data-grid");
    var r = Number(cell.getAttribute("data-row")), c = Number(cell.getAttribute("data-col"));
    kit.focusCell(this.cells[name], r, c);
    if (SELECTABLE[name]) {
      this.select(name, r, c);
    } else {
      this.sum.textContent = this.cellLabel(name, r, c) + ". " + (name === "w"
        ? "Select a cell of dx, dw, db or dout to see the sums this weight takes part in."
        : "Select a cell of dx, dw, db or dout to see the sums this input takes part in.");
    }
  };

  Explorer.prototype.mark = function (name, r, c, kind, badge) {
    kit.mark(this.cells[name][r][c], kind, badge);
  };

  Explorer.prototype.select = function (name, r, c) {
    var g = this.g, self = this;
    kit.clearMarks(this.cells);
    this.selection = { grid: name, row: r, col: c };
    var cell = this.cells[name][r][c];
    cell.classList.add("is-selected");
    cell.setAttribute("aria-selected", "true");
    var text;
    if (name === "dx") {
      var list = terms.dx(this.config, r, c);
      this.mark("xpad", r + g.PH, c + g.PW, "is-anchor");
      list.forEach(function (t, k) {
        self.mark("dout", t.i, t.j, "is-term", k + 1);
        self.mark("w", t.p, t.q, "is-term", k + 1);
      });
      text = "dx[" + r + ", " + c + "] = " + (list.length
        ? list.map(function (t) { return "dout[" + t.i + ", " + t.j + "]·w[" + t.p + ", " + t.q + "]"; }).join(" + ") +
          " = " + list.map(function (t) { return paren(self.dout[t.i][t.j]) + "·" + paren(self.w[t.p][t.q]); }).join(" + ") +
          " = " + fmt(this.dx[r][c]) + ". Input pixel (" + r + ", " + c + ") is x̃[" + (r + g.PH) + ", " + (c + g.PW) +
          "] of the padded input; " + list.length + (list.length === 1 ? " window reads it" : " windows read it") + "."
        : "0: no window of the forward pass reads input pixel (" + r + ", " + c + "), so its gradient is zero.");
    } else if (name === "dw") {
      var sumTerms = terms.dw(this.config, r, c);
      sumTerms.forEach(function (t, k) {
        self.mark("dout", t.i, t.j, "is-term", k + 1);
        self.mark("xpad", t.u, t.v, "is-term", k + 1);
      });
      text = "dw[" + r + ", " + c + "] = " +
        sumTerms.map(function (t) { return "dout[" + t.i + ", " + t.j + "]·x̃[" + t.u + ", " + t.v + "]"; }).join(" + ") +
        " = " + sumTerms.map(function (t) { return paren(self.dout[t.i][t.j]) + "·" + paren(self.xpad[t.u][t.v]); }).join(" + ") +
        " = " + fmt(this.dw[r][c]) + ": every output position contributes, through the input entry at kernel offset (" +
        r + ", " + c + ") of its window" + (sumTerms.some(function (t) { return t.padding; }) ? " (padding entries are zero)." : ".");
    } else if (name === "db") {
      var all = terms.db(this.config);
      all.forEach(function (t, k) { self.mark("dout", t.i, t.j, "is-term", k + 1); });
      text = "db = the sum of all " + all.length + " entries of dout = " +
        all.map(function (t) { return paren(self.dout[t.i][t.j]); }).join(" + ") + " = " + fmt(this.db) + ".";
    } else {
      var goes = terms.dout(this.config, r, c);
      var inside = goes.filter(function (t) { return !t.padding; });
      var gval = this.dout[r][c];
      goes.forEach(function (t, k) {
        self.mark("xpad", t.u, t.v, "is-term", k + 1);
        self.mark("w", t.p, t.q, "is-term", k + 1);
        if (t.padding) { return; }
        self.mark("dx", t.r, t.s, "is-term", k + 1);
      });
      this.mark("db", 0, 0, "is-term");
      text = "dout[" + r + ", " + c + "] = " + fmt(gval) + " goes back to the window x̃[" + (r * g.SH) + "…" +
        (r * g.SH + g.KH - 1) + ", " + (c * g.SW) + "…" + (c * g.SW + g.KW - 1) + "] that output (" + r + ", " + c +
        ") read: it adds dout·w[p, q] to " + (inside.length
          ? inside.map(function (t) { return "dx[" + t.r + ", " + t.s + "] (" + paren(gval) + "·" + paren(self.w[t.p][t.q]) + ")"; }).join(", ")
          : "no entry of dx") +
        (goes.length > inside.length ? "; the " + (goes.length - inside.length) + " products that fall on padding are dropped" : "") +
        "; it adds dout·x̃ to every dw[p, q] and dout to db.";
    }
    this.sum.textContent = text;
  };

  Explorer.prototype.state = function () {
    var g = this.g;
    return { H: g.H, W: g.W, KH: g.KH, KW: g.KW, stride: g.SH, padding: g.PH, Ho: g.Ho, Wo: g.Wo,
             x: this.x, w: this.w, dout: this.dout, dx: this.dx, dw: this.dw, db: this.db,
             selection: this.selection };
  };

  var explorers = kit.starter("conv2d", Explorer);

  window.cnnExplorer = {
    compute: compute,
    outputSize: outputSize,
    terms: terms,
    // The first explorer of the page: its sizes, numbers and selection.
    state: function () { return explorers.length ? explorers[0].state() : null; },
    explorers: explorers
  };
}());
