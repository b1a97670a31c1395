/* Batch normalisation of one channel and the three paths of its input gradient (chapter
 * "Batch normalisation").
 *
 * Plain JavaScript, no library, served with the site; built on explorer-kit.js. The arithmetic
 * is exposed as
 *
 *   window.cnnBnExplorer.compute({x, gamma, beta, dout, eps}) -> {mean, var, inv_std, x_hat,
 *       out, dx_hat, dvar, dmean, dmean_terms, path1, path2, path3, dx, dgamma, dbeta}
 *
 * with the shapes and conventions of cnn.norm.batchnorm_forward and batchnorm_backward_naive
 * in training mode: x and dout (N, C) as nested arrays, gamma and beta (C,), eps > 0 (by
 * default the package's 1e-5); the statistics are taken over the N samples of each channel.
 * dmean_terms holds the two terms of eq-bn-dmu (the second is zero up to rounding);
 * path1, path2 and path3 are the three terms of eq-bn-dx-paths (through x_hat directly,
 * through the variance, through the mean); dx is their sum. The interactive part shows one
 * channel: the reader edits the batch, the upstream gradient, gamma and beta, and selects an
 * entry of dx to see its three paths written out.
 */
(function () {
  "use strict";

  var kit = window.cnnExplorerKit;
  var fmt = kit.fmt, paren = kit.paren, el = kit.el;

  // -- arithmetic ------------------------------------------------------------------------------
  function vector(value, name, C) {
    if (!Array.isArray(value) || value.length !== C ||
        !value.every(function (v) { return typeof v === "number" && isFinite(v); })) {
      throw new Error(name + " must be " + C + " finite numbers (shape (C,) with C = " + C + ")");
    }
    return value;
  }

  /* eq-bn-mean, eq-bn-var, eq-bn-xhat and eq-bn-forward per channel; then, from the loss back,
   * eq-bn-dbeta, eq-bn-dgamma, eq-bn-dxhat, eq-bn-dvar, eq-bn-dmu and the three paths of
   * eq-bn-dx-paths. */
  function compute(args) {
    if (!args || typeof args !== "object") { throw new Error("compute expects {x, gamma, beta, dout, eps}"); }
    var shape = kit.shapeOf(args.x, 2, "x", "(N, C)");
    var N = shape[0], C = shape[1];
    if (N < 2) { throw new Error("x has one value per channel; batch statistics need at least two"); }
    var ds = kit.shapeOf(args.dout, 2, "dout", "(N, C)");
    if (ds.join() !== shape.join()) {
      throw new Error("dout has shape (" + ds.join(", ") + ") but x has shape (" + shape.join(", ") + ")");
    }
    var gamma = vector(args.gamma, "gamma", C), beta = vector(args.beta, "beta", C);
    var eps = args.eps === undefined ? 1e-5 : args.eps;
    if (typeof eps !== "number" || !(eps > 0) || !isFinite(eps)) { throw new Error("eps must be a number > 0, got " + eps); }
    var x = args.x, dout = args.dout, m = N;
    var r = { mean: [], var: [], inv_std: [], dvar: [], dmean: [], dmean_terms: [], dgamma: [], dbeta: [],
              x_hat: kit.zeros([N, C]), out: kit.zeros([N, C]), dx_hat: kit.zeros([N, C]),
              path1: kit.zeros([N, C]), path2: kit.zeros([N, C]), path3: kit.zeros([N, C]),
              dx: kit.zeros([N, C]) };
    for (var c = 0; c < C; c += 1) {
      var i, sum = 0, squares = 0, centredSum = 0, dxhatSum = 0, dxhatCentred = 0, dgamma = 0, dbeta = 0;
      for (i = 0; i < N; i += 1) { sum += x[i][c]; }
      var mean = sum / m;
      for (i = 0; i < N; i += 1) { squares += (x[i][c] - mean) * (x[i][c] - mean); }
      var variance = squares / m;  // biased: divided by m
      var invStd = 1 / Math.sqrt(variance + eps);
      for (i = 0; i < N; i += 1) {
        var centred = x[i][c] - mean;
        r.x_hat[i][c] = centred * invStd;
        r.out[i][c] = gamma[c] * r.x_hat[i][c] + beta[c];
        r.dx_hat[i][c] = gamma[c] * dout[i][c];
        dbeta += dout[i][c];
        dgamma += dout[i][c] * r.x_hat[i][c];
        dxhatSum += r.dx_hat[i][c];
        dxhatCentred += r.dx_hat[i][c] * centred;
        centredSum += centred;
      }
      var dvar = -0.5 * dxhatCentred * Math.pow(invStd, 3);
      // The second term is zero in exact arithmetic; the chain rule has it, as the chapter does.
      var dmeanTerms = [-dxhatSum * invStd, dvar * (-2 / m) * centredSum];
      var dmean = dmeanTerms[0] + dmeanTerms[1];
      for (i = 0; i < N; i += 1) {
        r.path1[i][c] = r.dx_hat[i][c] * invStd;
        r.path2[i][c] = dvar * 2 * (x[i][c] - mean) / m;
        r.path3[i][c] = dmean / m;
        r.dx[i][c] = r.path1[i][c] + r.path2[i][c] + r.path3[i][c];
      }
      r.mean.push(mean);
      r.var.push(variance);
      r.inv_std.push(invStd);
      r.dvar.push(dvar);
      r.dmean.push(dmean);
      r.dmean_terms.push(dmeanTerms);
      r.dgamma.push(dgamma);
      r.dbeta.push(dbeta);
    }
    return r;
  }

  // -- the interactive explorer (one channel) -----------------------------------------------------
  var EPS = 1e-5;
  var SIZE = [2, 6];
  // The rows of the table: [key, the chapter's symbol (HTML), what it is].
  var ROWS = [
    ["x", "x<sub>i</sub>", "the batch (edit it)"],
    ["dout", "<span class=\"cnn-bar\">out</span><sub>i</sub>", "the upstream gradient dout (edit it)"],
    ["centred", "x<sub>i</sub> − μ", "deviation from the mean"],
    ["x_hat", "x̂<sub>i</sub>", "normalised"],
    ["out", "out<sub>i</sub>", "γ x̂<sub>i</sub> + β"],
    ["dx_hat", "<span class=\"cnn-bar\">x̂</span><sub>i</sub>", "γ times the upstream gradient"],
    ["path1", "<span class=\"cnn-bar\">x̂</span><sub>i</sub> / √(σ² + ε)", "path 1, through x̂ directly"],
    ["path2", "<span class=\"cnn-bar\">σ²</span> · 2(x<sub>i</sub> − μ) / m", "path 2, through the variance"],
    ["path3", "<span class=\"cnn-bar\">μ</span> / m", "path 3, through the mean"],
    ["dx", "<span class=\"cnn-bar\">x</span><sub>i</sub>", "the sum of the three paths (select one)"]
  ];

  // Text forms of the symbols, for the written-out sums (combining macron and circumflex).
  var BAR = "\u0304";
  var OUT_BAR = "o\u0305u\u0305t\u0305";
  function sub(i) { return String(i).split("").map(function (d) { return String.fromCharCode(0x2080 + Number(d)); }).join(""); }

  function Explorer(root, id) {
    this.root = root;
    this.id = "cnn-explorer-" + id;
    this.seed = 1;
    this.m = 4;
    this.gamma = 2;
    this.beta = 0.5;
    // A batch with an outlier, so that the paths through the statistics are visible.
    this.x = [1, 2, 4, 9];
    this.dout = [1, -1, 0.5, 2];
    this.selected = 0;
    this.build();
    this.update();
  }

  Explorer.prototype.build = function () {
    var self = this;
    var parts = kit.frame(this.root, {
      id: this.id, label: "Size and parameters of the batch norm",
      fields: [{ key: "m", label: "Batch size m", value: this.m, attrs: { min: SIZE[0], max: SIZE[1], step: 1 } },
               { key: "gamma", label: "Scale γ", value: this.gamma, attrs: { step: "any" } },
               { key: "beta", label: "Shift β", value: this.beta, attrs: { step: "any" } }],
      change: function () { self.readSettings(); },
      reroll: function () { self.seed += 1; self.randomBatch(); self.update(true); },
      help: "One channel of a batch of m values, ε = 10⁻⁵. Edit x and the upstream gradient; select an " +
        "entry of x̄ (the last row) to see its three paths written out below the table."
    });
    this.fields = parts.inputs;
    this.error = parts.error;
    this.sum = parts.sum;
    this.scroller = parts.add(el("div", { "class": "cnn-bn-scroll" }));
    this.stats = parts.add(el("div", { "class": "cnn-bn-stats" }));
  };

  Explorer.prototype.randomBatch = function () {
    var random = kit.generator(this.seed * 7919 + this.m);
    this.x = kit.randomGrid(1, this.m, [-3, -2, -1, 0, 1, 2, 3, 5, 8], random)[0];
    this.dout = kit.randomGrid(1, this.m, [-2, -1, -0.5, 0.5, 1, 2], random)[0];
  };

  Explorer.prototype.readSettings = function () {
    var m = Number(this.fields.m.value), gamma = Number(this.fields.gamma.value), beta = Number(this.fields.beta.value);
    var problems = [];
    if (!Number.isInteger(m) || m < SIZE[0] || m > SIZE[1]) {
      problems.push("Batch size m must be a whole number from " + SIZE[0] + " to " + SIZE[1]);
    }
    if (this.fields.gamma.value.trim() === "" || !isFinite(gamma)) { problems.push("Scale γ must be a number"); }
    if (this.fields.beta.value.trim() === "" || !isFinite(beta)) { problems.push("Shift β must be a number"); }
    if (problems.length) {
      this.error.textContent = problems.join(". ") + ". The table still shows the last valid settings.";
      return;
    }
    this.error.textContent = "";
    this.gamma = gamma;
    this.beta = beta;
    if (m !== this.m) {
      this.m = m;
      this.selected = Math.min(this.selected, m - 1);
      this.randomBatch();
      this.update(true);
    } else {
      this.update(false);
    }
  };

  Explorer.prototype.readEntry = function (input) {
    var key = input.getAttribute("data-row"), i = Number(input.getAttribute("data-col"));
    var value = input.value.trim() === "" ? NaN : Number(input.value);
    if (!isFinite(value)) {
      this.error.textContent = (key === "x" ? "x" : "dout") + "[" + i + "] must be a number; it keeps its " +
        "last value, " + fmt(this[key][i]) + ".";
      input.value = this[key][i];
      return;
    }
    this.error.textContent = "";
    this[key][i] = value;
    this.update(false);
  };

  // rebuild: a new table (the size or the batch changed); otherwise the fields stay, with focus.
  Explorer.prototype.update = function (rebuild) {
    var column = function (values) { return values.map(function (v) { return [v]; }); };
    var row = function (values) { return values.map(function (v) { return v[0]; }); };
    var r = compute({ x: column(this.x), dout: column(this.dout), gamma: [this.gamma], beta: [this.beta], eps: EPS });
    this.result = {};
    var self = this;
    ["x_hat", "out", "dx_hat", "path1", "path2", "path3", "dx"].forEach(function (key) { self.result[key] = row(r[key]); });
    ["mean", "var", "inv_std", "dvar", "dmean", "dmean_terms", "dgamma", "dbeta"].forEach(function (key) { self.result[key] = r[key][0]; });
    this.result.x = this.x.slice();
    this.result.dout = this.dout.slice();
    this.result.centred = this.x.map(function (v) { return v - r.mean[0]; });
    if (rebuild || !this.table) { this.drawTable(); } else { this.fillTable(); }
    this.drawStats();
    this.select(this.selected, false);
  };

  Explorer.prototype.drawTable = function () {
    var self = this;
    this.scroller.textContent = "";
    var table = el("table", { "class": "cnn-bn-table" });
    table.appendChild(el("caption", {}, "One channel, entry by entry (values rounded to three decimals)"));
    var head = el("tr");
    head.appendChild(el("th", { scope: "col" }, "i"));
    for (var i = 0; i < this.m; i += 1) { head.appendChild(el("th", { scope: "col", "data-col": i }, String(i))); }
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    this.cellsByRow = {};
    ROWS.forEach(function (spec) {
      var tr = el("tr", { "data-row": spec[0] });
      var th = el("th", { scope: "row" });
      var minor = /^(path\d|dx)$/.test(spec[0]) ? "" : " is-minor";
      th.innerHTML = "<span class=\"cnn-bn-symbol\">" + spec[1] + "</span> <span class=\"cnn-bn-what" + minor + "\">" +
        spec[2] + "</span>";
      tr.appendChild(th);
      self.cellsByRow[spec[0]] = [];
      for (var i = 0; i < self.m; i += 1) {
        var td = el("td", { "data-row": spec[0], "data-col": i });
        if (spec[0] === "x" || spec[0] === "dout") {
          var input = el("input", { type: "number", step: "any", inputmode: "decimal", value: self[spec[0]][i],
                                    "data-row": spec[0], "data-col": i,
                                    "aria-label": (spec[0] === "x" ? "x" : "upstream gradient dout") + "[" + i + "]" });
          input.addEventListener("change", function (event) { self.readEntry(event.target); });
          td.appendChild(input);
        } else if (spec[0] === "dx") {
          var button = el("button", { type: "button", "data-col": i, "aria-describedby": self.id + "-help" });
          button.addEventListener("click", function (event) {
            self.select(Number(event.currentTarget.getAttribute("data-col")), true);
          });
          td.appendChild(button);
        }
        tr.appendChild(td);
        self.cellsByRow[spec[0]].push(td);
      }
      body.appendChild(tr);
    });
    this.table = table;
    this.scroller.appendChild(table);
    this.fillTable();
    if (window.cnnReader && window.cnnReader.updateCues) { window.cnnReader.updateCues(); }
  };

  // Every computed cell shows its rounded value and keeps the exact one in data-value.
  Explorer.prototype.fillTable = function () {
    var self = this;
    ROWS.forEach(function (spec) {
      self.cellsByRow[spec[0]].forEach(function (td, i) {
        var value = self.result[spec[0]][i];
        td.setAttribute("data-value", value);
        if (spec[0] === "x" || spec[0] === "dout") { return; }
        var target = spec[0] === "dx" ? td.querySelector("button") : td;
        target.textContent = fmt(value);
        if (spec[0] === "dx") { target.setAttribute("aria-label", "x̄[" + i + "] = " + fmt(value) + ": show its three paths"); }
      });
    });
  };

  Explorer.prototype.drawStats = function () {
    var r = this.result, m = this.m, self = this;
    var xs = this.x.map(paren).join(" + ");
    var lines = [
      ["mean", "μ = Σ xᵢ / m", "(" + xs + ") / " + m + " = " + fmt(r.mean)],
      ["var", "σ² = Σ (xᵢ − μ)² / m", fmt(r.var)],
      ["inv_std", "1 / √(σ² + ε)", fmt(r.inv_std)],
      ["dvar", "σ" + BAR + "² = −½ (σ² + ε)^(−3/2) Σ x̂" + BAR + "ᵢ (xᵢ − μ)", fmt(r.dvar)],
      ["dmean", "μ" + BAR + " = −Σ x̂" + BAR + "ᵢ / √(σ² + ε) + σ" + BAR + "² · (−2/m) Σ (xᵢ − μ)",
       fmt(r.dmean_terms[0]) + " + " + paren(r.dmean_terms[1]) + " = " + fmt(r.dmean) +
       " (the second term is zero up to rounding)"],
      ["dbeta", "β" + BAR + " = Σ " + OUT_BAR + "ᵢ", fmt(r.dbeta)],
      ["dgamma", "γ" + BAR + " = Σ " + OUT_BAR + "ᵢ x̂ᵢ", fmt(r.dgamma)]
    ];
    this.stats.textContent = "";
    lines.forEach(function (line) {
      var wrap = el("p", { "data-stat": line[0], "data-value": self.result[line[0]] });
      wrap.appendChild(el("span", { "class": "cnn-bn-stat-name" }, line[1]));
      wrap.appendChild(document.createTextNode(" = " + line[2]));
      self.stats.appendChild(wrap);
    });
  };

  Explorer.prototype.select = function (i, focus) {
    var self = this, r = this.result, m = this.m;
    this.selected = i;
    Object.keys(this.cellsByRow).forEach(function (key) {
      self.cellsByRow[key].forEach(function (td, col) { td.classList.toggle("is-selected", col === i); });
    });
    this.table.querySelectorAll("thead th[data-col]").forEach(function (th) {
      th.classList.toggle("is-selected", Number(th.getAttribute("data-col")) === i);
    });
    this.cellsByRow.dx.forEach(function (td, col) {
      td.querySelector("button").setAttribute("aria-pressed", col === i ? "true" : "false");
    });
    if (focus) { this.cellsByRow.dx[i].querySelector("button").focus(); }
    var s = sub(i);
    this.sum.textContent = "x" + BAR + s + " = x̂" + BAR + s + " / √(σ² + ε) + σ" + BAR + "² · 2(x" + s +
      " − μ) / m + μ" + BAR + " / m = " + paren(r.dx_hat[i]) + " · " + fmt(r.inv_std) + " + " + paren(r.dvar) +
      " · 2 · " + paren(r.centred[i]) + " / " + m + " + " + paren(r.dmean) + " / " + m + " = " +
      fmt(r.path1[i]) + " (path 1, through x̂) + " + paren(r.path2[i]) + " (path 2, through the variance) + " +
      paren(r.path3[i]) + " (path 3, through the mean) = " + fmt(r.dx[i]) + ".";
  };

  Explorer.prototype.state = function () {
    var r = this.result;
    return { m: this.m, gamma: this.gamma, beta: this.beta, eps: EPS, x: this.x.slice(), dout: this.dout.slice(),
             mean: r.mean, var: r.var, inv_std: r.inv_std, x_hat: r.x_hat, out: r.out, dx_hat: r.dx_hat,
             dvar: r.dvar, dmean: r.dmean, path1: r.path1, path2: r.path2, path3: r.path3, dx: r.dx,
             dgamma: r.dgamma, dbeta: r.dbeta, selected: this.selected };
  };

  var explorers = kit.starter("batchnorm", Explorer);

  window.cnnBnExplorer = {
    compute: compute,
    // The first batch-norm explorer of the page: its settings, numbers and selected entry.
    state: function () { return explorers.length ? explorers[0].state() : null; },
    explorers: explorers
  };
}());
