// RecurrentInspect.render(element, data): draws a language model's inspection
// of a text into `element`. The shape of `data` is documented in
// crates/report/src/html/mod.rs. Plain browser JavaScript, no libraries.
var RecurrentInspect = (function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var WHITE = [255, 255, 255], RED = [203, 24, 29], BLUE = [33, 102, 172];
  var GATE_COLORS = { input: "#1f77b4", forget: "#2ca02c", output: "#d62728",
                      reset: "#9467bd", update: "#ff7f0e" };

  // An HTML element with attributes and children (strings become text).
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // How a token's text is drawn: newlines and tabs made visible.
  function shown(text) {
    return text.replace(/\t/g, "\u2192\t").replace(/\n/g, "\u21b5\n");
  }

  // A token's text on one line, for tooltips and lists.
  function label(text) {
    return text.replace(/\n/g, "\u21b5").replace(/\t/g, "\u2192").replace(/ /g, "\u2423") || "\u2205";
  }

  // `a` of the way from colour `c0` to `c1`, as CSS.
  function mix(c0, c1, a) {
    a = Math.max(0, Math.min(1, a));
    var c = c0.map(function (v, i) { return Math.round(v + (c1[i] - v) * a); });
    return "rgb(" + c.join(",") + ")";
  }

  function diverging(v, range) {
    if (v === null || !isFinite(v)) return "transparent";
    return v >= 0 ? mix(WHITE, RED, v / range) : mix(WHITE, BLUE, -v / range);
  }

  function fmt(x, digits) { return x === null || x === undefined ? "\u2013" : x.toFixed(digits); }

  // The value below which fraction `q` of `values` lie.
  function quantile(values, q) {
    var v = values.filter(function (x) { return x !== null && isFinite(x); }).sort(function (a, b) { return a - b; });
    return v.length ? v[Math.min(v.length - 1, Math.floor(q * v.length))] : 0;
  }

  // The text as one span per token in `box`; `tipOf(i)` gives a token's
  // tooltip content. Returns `paint(colorOf)`, which recolours the spans.
  function tokenText(box, tokens, tip, tipOf) {
    var spans = tokens.map(function (t, i) {
      var s = el("span", { "data-i": i }, [shown(t.text)]);
      box.appendChild(s);
      return s;
    });
    box.addEventListener("mousemove", function (e) {
      var i = e.target.getAttribute && e.target.getAttribute("data-i");
      if (i === null || i === undefined) { tip.style.display = "none"; return; }
      tip.textContent = "";
      tip.appendChild(tipOf(+i));
      tip.style.display = "block";
      var x = Math.min(e.clientX + 12, window.innerWidth - tip.offsetWidth - 8);
      var y = e.clientY + 16 + tip.offsetHeight > window.innerHeight ? e.clientY - tip.offsetHeight - 8 : e.clientY + 16;
      tip.style.left = x + "px";
      tip.style.top = y + "px";
    });
    box.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    return function paint(colorOf) {
      spans.forEach(function (s, i) { s.style.background = colorOf(i); });
    };
  }

  function legend(c0, c1, c2) {
    return el("span", { "class": "legend",
      style: "background: linear-gradient(to right," + c0 + "," + c1 + (c2 ? "," + c2 : "") + ")" });
  }

  // Tooltip of the surprisal view: the token, its surprisal, the next-token candidates.
  function surprisalTip(t) {
    var rows = t.next.map(function (n) {
      return el("tr", {}, [
        el("td", {}, [label(n.text)]),
        el("td", {}, [fmt(n.p, 3)]),
        el("td", {}, [el("span", { "class": "bar", style: "width:" + Math.round(80 * n.p) + "px" })])
      ]);
    });
    return el("div", {}, [
      el("div", {}, [el("b", {}, [label(t.text)]), "  surprisal " + fmt(t.surprisal, 2) + " bits"]),
      el("div", { "class": "muted" }, ["next:"]),
      el("table", {}, rows)
    ]);
  }

  function surprisalSection(root, data, tip) {
    var bits = data.tokens.map(function (t) { return t.surprisal; });
    var max = Math.max(1, quantile(bits, 0.98));
    root.appendChild(el("h2", {}, ["Surprisal"]));
    root.appendChild(el("div", { "class": "controls" }, [
      "0 bits", legend("#fff", mix(WHITE, RED, 1)), fmt(max, 1) + "+ bits  ",
      el("span", { "class": "muted" }, ["(hover a token for the most likely next tokens)"])
    ]));
    var box = el("div", { "class": "text" });
    root.appendChild(box);
    var paint = tokenText(box, data.tokens, tip, function (i) { return surprisalTip(data.tokens[i]); });
    paint(function (i) { return bits[i] === null ? "transparent" : mix(WHITE, RED, bits[i] / max); });
  }

  // One unit's activation after every token.
  function series(layer, state, unit) {
    var v = state === "c" ? layer.c : layer.h, h = layer.hidden, out = [];
    for (var t = 0; v && t * h + unit < v.length; t++) out.push(v[t * h + unit]);
    return out;
  }

  function unitsSection(root, data, tip) {
    root.appendChild(el("h2", {}, ["Hidden units"]));
    if (!data.layers.length) { root.appendChild(el("p", { "class": "muted" }, ["no layers"])); return; }
    var layerPick = el("select", {}, data.layers.map(function (l, k) {
      return el("option", { value: k }, ["layer " + k + " (" + l.hidden + " units)"]);
    }));
    var statePick = el("select", {}, []);
    var unitPick = el("input", { type: "number", min: 0, value: 0 });
    var about = el("span", { "class": "muted" });
    root.appendChild(el("div", { "class": "controls" }, [
      el("label", {}, ["Layer ", layerPick]), el("label", {}, ["State ", statePick]),
      el("label", {}, ["Unit ", unitPick]), "-1", legend(mix(WHITE, BLUE, 1), "#fff", mix(WHITE, RED, 1)), "+1  ", about
    ]));
    var row = el("div", { "class": "row" });
    var box = el("div", { "class": "text grow" });
    var ranks = el("div", { "class": "ranks" });
    row.appendChild(box);
    row.appendChild(ranks);
    root.appendChild(row);

    var current = [];
    var paint = tokenText(box, data.tokens, tip, function (i) {
      return el("div", {}, [el("b", {}, [label(data.tokens[i].text)]), "  activation " + fmt(current[i], 3)]);
    });
    var items = [];

    function fillStates() {
      var layer = data.layers[+layerPick.value], keep = statePick.value;
      statePick.textContent = "";
      statePick.appendChild(el("option", { value: "h" }, ["h (output)"]));
      if (layer.c) statePick.appendChild(el("option", { value: "c" }, ["c (cell)"]));
      statePick.value = layer.c && keep === "c" ? "c" : "h";
      unitPick.max = layer.hidden - 1;
    }

    function show() {
      var layer = data.layers[+layerPick.value];
      var unit = Math.max(0, Math.min(layer.hidden - 1, Math.floor(+unitPick.value || 0)));
      unitPick.value = unit;
      current = series(layer, statePick.value, unit);
      // h lies in -1..1; a cell state is scaled by its largest magnitude.
      var range = statePick.value === "c"
        ? Math.max(1e-6, Math.max.apply(null, current.map(Math.abs))) : 1;
      about.textContent = statePick.value === "c" ? "(scaled to \u00b1" + fmt(range, 2) + ")" : "";
      paint(function (i) { return diverging(current[i], range); });
      items.forEach(function (it) {
        var u = it.unit;
        it.node.className = u.layer === +layerPick.value && u.state === statePick.value && u.unit === unit ? "picked" : "";
      });
    }

    function pick(u) {
      layerPick.value = u.layer;
      fillStates();
      statePick.value = u.state;
      unitPick.value = u.unit;
      show();
    }

    data.properties.forEach(function (p) {
      var list = el("ol", {}, []);
      p.units.forEach(function (u) {
        var node = el("li", { title: "click to show this unit" },
          ["L" + u.layer + " " + u.state + u.unit + "  " + (u.correlation >= 0 ? "+" : "") + fmt(u.correlation, 2)]);
        node.addEventListener("click", function () { pick(u); });
        items.push({ node: node, unit: u });
        list.appendChild(node);
      });
      if (!p.units.length) list.appendChild(el("li", { "class": "muted" }, ["(does not vary here)"]));
      ranks.appendChild(el("div", { "class": "rank" }, [
        el("h3", {}, [p.name.replace(/_/g, " ")]), el("div", { "class": "about" }, [p.description]), list
      ]));
    });

    layerPick.addEventListener("change", function () { fillStates(); show(); });
    statePick.addEventListener("change", show);
    unitPick.addEventListener("input", show);
    fillStates();
    var best = data.properties.map(function (p) { return p.units[0]; }).filter(Boolean)[0];
    if (best) pick(best); else show();
  }

  // Karpathy et al.'s saturation plot: per unit, the fraction of tokens its
  // gate is left-saturated (x) against right-saturated (y).
  function scatter(layer) {
    var size = 200, pad = 30, plot = size - 2 * pad;
    var s = svg("svg", { width: size, height: size, viewBox: "0 0 " + size + " " + size });
    s.appendChild(svg("rect", { x: pad, y: pad, width: plot, height: plot, fill: "none", stroke: "#999" }));
    s.appendChild(svg("line", { x1: pad, y1: pad, x2: pad + plot, y2: pad + plot, stroke: "#ddd" }));
    s.appendChild(svg("text", { x: pad + plot / 2, y: size - 6, "text-anchor": "middle", "font-size": 10 }, "left-saturated (< 0.1)"));
    s.appendChild(svg("text", { x: 10, y: pad + plot / 2, "text-anchor": "middle", "font-size": 10,
      transform: "rotate(-90 10 " + (pad + plot / 2) + ")" }, "right-saturated (> 0.9)"));
    ["0", "1"].forEach(function (t, i) {
      s.appendChild(svg("text", { x: pad + i * plot, y: pad + plot + 11, "text-anchor": "middle", "font-size": 9 }, t));
      s.appendChild(svg("text", { x: pad - 4, y: pad + plot - i * plot + 3, "text-anchor": "end", "font-size": 9 }, t));
    });
    layer.gates.forEach(function (g) {
      g.left.forEach(function (l, j) {
        s.appendChild(svg("circle", { cx: pad + l * plot, cy: pad + plot - g.right[j] * plot, r: 2.2,
          fill: GATE_COLORS[g.name] || "#555", "fill-opacity": 0.6 }));
      });
    });
    return s;
  }

  // Histogram of one gate's units: how many are left- (blue) and
  // right-saturated (red) for each tenth of the tokens.
  function histogram(gate) {
    var bins = 10, w = 200, hgt = 110, pad = 22, bw = (w - 2 * pad) / bins;
    var count = function (xs) {
      var c = new Array(bins).fill(0);
      xs.forEach(function (x) { c[Math.min(bins - 1, Math.floor(x * bins))]++; });
      return c;
    };
    var left = count(gate.left), right = count(gate.right);
    var top = Math.max.apply(null, left.concat(right).concat([1]));
    var s = svg("svg", { width: w, height: hgt, viewBox: "0 0 " + w + " " + hgt });
    for (var b = 0; b < bins; b++) {
      [[left[b], "#4a7bd0", 0], [right[b], "#d0504a", 1]].forEach(function (bar) {
        var bh = (hgt - 2 * pad) * bar[0] / top;
        var r = svg("rect", { x: pad + b * bw + bar[2] * bw / 2, y: hgt - pad - bh, width: bw / 2 - 1, height: bh, fill: bar[1] });
        r.appendChild(svg("title", {}, bar[0] + " units " + (bar[2] ? "right" : "left") + "-saturated for " +
          b * 10 + "-" + (b + 1) * 10 + "% of tokens"));
        s.appendChild(r);
      });
    }
    s.appendChild(svg("line", { x1: pad, y1: hgt - pad, x2: w - pad, y2: hgt - pad, stroke: "#999" }));
    s.appendChild(svg("text", { x: pad, y: hgt - 8, "font-size": 9 }, "0"));
    s.appendChild(svg("text", { x: w - pad, y: hgt - 8, "font-size": 9, "text-anchor": "end" }, "1"));
    s.appendChild(svg("text", { x: w / 2, y: hgt - 8, "font-size": 9, "text-anchor": "middle" }, "fraction of tokens"));
    s.appendChild(svg("text", { x: pad - 3, y: pad + 3, "font-size": 9, "text-anchor": "end" }, String(top)));
    return s;
  }

  function gatesSection(root, data) {
    root.appendChild(el("h2", {}, ["Gate saturation"]));
    var any = data.layers.some(function (l) { return l.gates.length; });
    if (!any) {
      root.appendChild(el("p", { "class": "muted" }, ["A plain RNN has no gates."]));
      return;
    }
    root.appendChild(el("p", { "class": "muted" }, [
      "Per unit, the fraction of tokens a gate is below 0.1 (left) or above 0.9 (right). Colours: ",
    ].concat(Object.keys(GATE_COLORS).filter(function (name) {
      return data.layers[0].gates.some(function (g) { return g.name === name; });
    }).map(function (name) {
      return el("span", { style: "color:" + GATE_COLORS[name] }, ["\u25cf " + name + " "]);
    }))));
    data.layers.forEach(function (layer, k) {
      var figures = [el("figure", {}, [scatter(layer), el("figcaption", {}, ["layer " + k])])];
      layer.gates.forEach(function (g) {
        figures.push(el("figure", {}, [histogram(g), el("figcaption", {}, [
          "layer " + k + " " + g.name + " gate: ", el("span", { style: "color:#4a7bd0" }, ["left"]), " / ",
          el("span", { style: "color:#d0504a" }, ["right"])
        ])]));
      });
      root.appendChild(el("div", { "class": "gates" }, figures));
    });
  }

  function render(root, data) {
    root.textContent = "";
    var tip = document.getElementById("tip") || el("div", { id: "tip" });
    document.body.appendChild(tip);
    var m = data.model || {};
    root.appendChild(el("div", { "class": "summary" }, [
      [m.cell, m.tokenizer + " tokens", m.vocab_size + " in vocabulary", data.tokens.length + " tokens",
       data.layers.length + " layers", fmt(m.bits_per_token, 3) + " bits per token"].join(" \u00b7 ")
    ]));
    surprisalSection(root, data, tip);
    unitsSection(root, data, tip);
    gatesSection(root, data);
  }

  return { render: render };
})();
