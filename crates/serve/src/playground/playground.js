// The playground: generates through /v1/completions (streamed as Server-Sent
// Events), translates through /v1/translate, and draws /v1/inspect's answer
// with RecurrentInspect.render. Plain browser JavaScript, no libraries.
(function () {
  "use strict";

  // The longest text /v1/inspect takes (InspectOptions' default max_chars).
  var INSPECT_MAX_CHARS = 2000;
  var $ = function (id) { return document.getElementById(id); };
  var models = [];
  var running = null;  // the AbortController of the generation in progress
  var key = sessionStorage.getItem("recurrent-api-key") || "";

  function headers() {
    var h = { "Content-Type": "application/json" };
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  // Rejects with the server's message (OpenAI's error object) for a failed answer.
  function failure(r) {
    return r.text().then(function (body) {
      var message = "HTTP " + r.status;
      try { message = JSON.parse(body).error.message || message; } catch (e) { /* not JSON */ }
      if (r.status === 401) $("key-box").hidden = false;
      var error = new Error(message);
      error.status = r.status;
      throw error;
    });
  }

  function api(path, body) {
    var init = body === undefined ? { headers: headers() }
      : { method: "POST", headers: headers(), body: JSON.stringify(body) };
    return fetch(path, init).then(function (r) { return r.ok ? r.json() : failure(r); });
  }

  function showError(e) { $("error").textContent = e.message; $("error").hidden = false; }
  function clearError() { $("error").hidden = true; }
  function status(text) { $("status").textContent = text; }
  function current() { return models.filter(function (m) { return m.id === $("model").value; })[0]; }

  function loadModels() {
    api("/v1/models").then(function (list) {
      clearError();
      models = list.data;
      var pick = $("model");
      pick.textContent = "";
      models.forEach(function (m) {
        var option = document.createElement("option");
        option.value = m.id;
        option.textContent = m.id + (m.kind === "seq2seq" ? " (translation)" : "");
        pick.appendChild(option);
      });
      var wanted = new URLSearchParams(location.search).get("model");
      if (wanted && models.some(function (m) { return m.id === wanted; })) pick.value = wanted;
      modelChanged();
      document.body.setAttribute("data-ready", "true");
    }, function (e) {
      showError(e);
      if (e.status === 503) setTimeout(loadModels, 1000);  // still loading
    });
  }

  function modelChanged() {
    var m = current();
    var translation = !!m && m.kind === "seq2seq";
    $("compose").hidden = translation;
    $("view").hidden = translation;
    $("translate").hidden = !translation;
    $("model-info").textContent = m ? (translation ? "sequence to sequence" : "language model") : "no model";
  }

  // Each slider shows its value; 0 top-k and 1 top-p mean "off".
  function showSlider(input) {
    var v = +input.value, out = input.nextElementSibling;
    if ((input.id === "top_k" && v === 0) || (input.id === "top_p" && v >= 1)) out.textContent = "off";
    else out.textContent = input.step.indexOf(".") >= 0 ? v.toFixed(2) : String(v);
  }

  // Calls onEvent with each Server-Sent Event's JSON until `data: [DONE]`.
  function readEvents(reader, onEvent) {
    var decoder = new TextDecoder(), pending = "";
    function pump() {
      return reader.read().then(function (part) {
        if (part.done) return undefined;
        pending += decoder.decode(part.value, { stream: true });
        var end;
        while ((end = pending.indexOf("\n\n")) >= 0) {
          var data = pending.slice(0, end).split("\n")
            .filter(function (line) { return line.indexOf("data: ") === 0; })
            .map(function (line) { return line.slice(6); }).join("\n");
          pending = pending.slice(end + 2);
          if (!data) continue;
          if (data === "[DONE]") return reader.cancel();
          onEvent(JSON.parse(data));
        }
        return pump();
      });
    }
    return pump();
  }

  function setRunning(on) {
    $("generate").disabled = on;
    $("inspect").disabled = on;
    $("stop").disabled = !on;
    $("model").disabled = on;
  }

  function generate() {
    if (running || !current()) return;
    clearError();
    var prompt = $("prompt").value;
    var body = {
      model: $("model").value, prompt: prompt, max_tokens: +$("length").value,
      temperature: +$("temperature").value, stream: true, stream_options: { include_usage: true }
    };
    if (+$("top_k").value > 0) body.top_k = +$("top_k").value;
    if (+$("top_p").value < 1) body.top_p = +$("top_p").value;
    if ($("seed").value !== "") body.seed = Math.floor(+$("seed").value);
    $("out-prompt").textContent = prompt;
    $("out-generated").textContent = "";
    running = new AbortController();
    setRunning(true);
    var started = performance.now(), first = null, tokens = 0;
    function progress(how) {
      var parts = [tokens + " tokens"];
      if (first !== null) {
        parts.push("first after " + Math.round(first - started) + " ms");
        var seconds = (performance.now() - first) / 1000;
        if (tokens > 1 && seconds > 0) parts.push(Math.round((tokens - 1) / seconds) + " tokens/s");
      }
      if (how) parts.push(how);
      status(parts.join(" \u00b7 "));
    }
    status("waiting for the first token\u2026");
    fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: running.signal })
      .then(function (r) {
        if (!r.ok) return failure(r);
        return readEvents(r.body.getReader(), function (event) {
          if (event.error) throw new Error(event.error.message);
          var choice = event.choices && event.choices[0];
          if (choice && choice.text) {
            if (first === null) first = performance.now();
            $("out-generated").textContent += choice.text;
            tokens += 1;
          }
          if (event.usage) tokens = event.usage.completion_tokens;
          progress();
        });
      })
      .then(function () { return "done"; }, function (e) {
        if (e.name === "AbortError") return "stopped";
        showError(e);
        return "failed";
      })
      .then(function (how) {
        running = null;
        setRunning(false);
        progress(how);
        var text = prompt + $("out-generated").textContent;
        if (how !== "failed" && $("auto-inspect").checked && text) inspectText(text);
      });
  }

  function stop() { if (running) running.abort(); }

  // Draws the model's view of `text` (its last INSPECT_MAX_CHARS characters).
  function inspectText(text) {
    var chars = Array.from(text);
    var cut = chars.length > INSPECT_MAX_CHARS;
    if (cut) text = chars.slice(chars.length - INSPECT_MAX_CHARS).join("");
    var view = $("view");
    view.setAttribute("aria-busy", "true");
    return api("/v1/inspect", { model: $("model").value, text: text }).then(function (data) {
      RecurrentInspect.render(view, data);
      if (cut) {
        view.insertBefore(document.createElement("p"), view.firstChild).textContent =
          "The last " + INSPECT_MAX_CHARS + " characters of the text:";
      }
      view.setAttribute("aria-busy", "false");
    }, function (e) {
      view.setAttribute("aria-busy", "false");
      showError(e);
    });
  }

  function translate() {
    clearError();
    var lines = $("source").value.split("\n").filter(function (l) { return l.trim(); });
    if (!lines.length) return;
    $("translate-button").disabled = true;
    $("translate-status").textContent = "translating\u2026";
    var started = performance.now();
    api("/v1/translate", { model: $("model").value, input: lines, beam: +$("beam").value })
      .then(function (answer) {
        $("translation").textContent = answer.translations.join("\n");
        $("translate-status").textContent = lines.length + " sentences in " + Math.round(performance.now() - started) + " ms";
      }, function (e) {
        showError(e);
        $("translate-status").textContent = "failed";
      })
      .then(function () { $("translate-button").disabled = false; });
  }

  Array.prototype.forEach.call(document.querySelectorAll("input[type=range]"), function (input) {
    input.addEventListener("input", function () { showSlider(input); });
    showSlider(input);
  });
  $("model").addEventListener("change", modelChanged);
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", stop);
  $("inspect").addEventListener("click", function () {
    clearError();
    if ($("prompt").value) inspectText($("prompt").value);
  });
  $("translate-button").addEventListener("click", translate);
  $("prompt").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); }
  });
  $("key").addEventListener("change", function () {
    key = $("key").value.trim();
    sessionStorage.setItem("recurrent-api-key", key);
    loadModels();
  });
  var prompt = new URLSearchParams(location.search).get("prompt");
  if (prompt !== null) $("prompt").value = prompt;
  loadModels();
})();
