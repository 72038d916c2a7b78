/* The widget's page (inside the iframe widget.js makes, or a plain iframe): asks the app's
 * own routes (same origin), shows answers with their evidence, keeps the reader told what is
 * happening (getting ready, unavailable, sign in) and records thumbs up/down. No toasts. */
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var theme = params.get("theme");
  var root = document.documentElement;
  root.setAttribute("data-theme", ["light", "dark", "auto"].indexOf(theme) >= 0 ? theme : "light");
  var hostOrigin = params.get("host") || "";
  var hosted = /^https?:\/\/[^/]+$/.test(hostOrigin) && window.parent !== window;
  root.classList.add(hosted ? "qa-hosted" : "qa-alone");
  var signInUrl = /^https?:\/\//.test(params.get("signin") || "") ? params.get("signin") : "";
  var MAX_TURNS = 20;
  // The wiki page the widget sits on (widget.js's data-page), preferred or the only source.
  var page = (params.get("page") || "").slice(0, 2048);
  var scope = ["prefer", "only", "namespace"].indexOf(params.get("scope")) >= 0 ?
    params.get("scope") : "prefer";
  var state = { ready: false, signIn: false, history: [], waiting: null, busy: false, timer: 0 };
  var $ = function (id) { return document.getElementById(id); };

  function post(message) {
    if (hosted) window.parent.postMessage(message, hostOrigin);
  }
  function height() { return Math.ceil(document.querySelector(".qa-w").getBoundingClientRect().height) + 2; }

  function status(text, options) {
    options = options || {};
    $("qa-status").hidden = !text;
    $("qa-status-text").textContent = text || "";
    $("qa-retry").hidden = !options.retry;
    var link = $("qa-signin");
    link.hidden = !(options.signIn && signInUrl);
    if (signInUrl) link.href = signInUrl;
  }

  function request(path, body) {
    var init = { credentials: "same-origin", cache: "no-store", headers: {} };
    if (body) {
      init.method = "POST";
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data };
      });
    }, function () { return { status: 0, data: {} }; });
  }

  // ----- the app's state: ready, getting ready, unavailable, sign in ----------------------------
  function hello() {
    clearTimeout(state.timer);
    return request("hello").then(function (r) {
      if (r.status !== 200) return unavailable();
      var h = r.data;
      $("qa-question").maxLength = h.max_question_chars || 2000;
      if (h.sign_in) return signIn();
      state.signIn = false;
      $("qa-docs").innerHTML = h.documents || "";   // server-made, every text escaped
      examples(h.examples || []);
      state.ready = !!h.ready;
      if (!h.ready) {
        status(h.failed ? "The assistant is unavailable, try again later. (Retrying by itself.)"
          : "The assistant is getting ready…" +
            (state.waiting ? " Your question will be asked as soon as it is." : ""));
        state.timer = setTimeout(hello, 1500);
      } else {
        status("");
        if (state.waiting) send(state.waiting);
      }
      enable();
    });
  }

  function unavailable() {
    state.ready = false;
    status("The assistant is unavailable, try again." +
      (state.waiting ? " Your question is kept and will be asked when it is back." : ""),
      { retry: true });
    clearTimeout(state.timer);
    state.timer = setTimeout(hello, 3000);
    enable();
  }

  function signIn() {
    state.signIn = true;
    state.ready = false;
    status("Sign in to the wiki to ask questions here.", { signIn: true });
    examples([]);
    enable();
  }

  function enable() {
    var off = state.signIn || state.busy;
    $("qa-question").disabled = state.signIn;
    $("qa-ask").disabled = off || !!state.waiting;
    Array.prototype.forEach.call($("qa-examples").querySelectorAll("button"), function (b) {
      b.disabled = off || !!state.waiting;
    });
  }

  function examples(list) {
    var box = $("qa-examples");
    box.textContent = "";
    if (state.history.length) return;
    list.forEach(function (question) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = question;
      b.addEventListener("click", function () { ask(question); });
      box.appendChild(b);
    });
  }

  // ----- asking ---------------------------------------------------------------------------------
  function ask(question) {
    question = question.trim();
    if (!question || state.busy || state.waiting || state.signIn) return;
    var turn = document.createElement("li");
    turn.className = "qa-w-turn";
    var q = document.createElement("div");
    q.className = "qa-w-q";
    q.textContent = question;
    var a = document.createElement("div");
    a.className = "qa-w-a";
    turn.appendChild(q);
    turn.appendChild(a);
    $("qa-log").appendChild(turn);
    $("qa-examples").textContent = "";
    $("qa-question").value = "";
    $("qa-question").style.height = "";
    var item = { question: question, turn: turn, answer: a };
    if (!state.ready) return wait(item);
    send(item);
  }

  function wait(item) {
    state.waiting = item;
    item.answer.innerHTML = '<p class="qa-w-wait">Waiting for the assistant…</p>';
    enable();
    hello();
  }

  function send(item) {
    state.waiting = null;
    state.busy = true;
    enable();
    item.answer.innerHTML = '<p class="qa-w-wait">Looking in the documents…</p>';
    var body = { question: item.question, history: state.history };
    if (page) { body.page = page; body.scope = scope; }
    request("ask", body).then(function (r) {
      state.busy = false;
      if (r.status === 200) return answered(item, r.data);
      if (r.status === 401) { item.turn.remove(); $("qa-question").value = item.question; return signIn(); }
      if (r.status === 503 && r.data.loading) { state.ready = false; return wait(item); }
      if (r.status === 0 || r.status >= 500) {
        state.waiting = item;
        item.answer.innerHTML = '<p class="qa-w-wait">Waiting for the assistant…</p>';
        return unavailable();
      }
      item.answer.innerHTML = "";
      var p = document.createElement("p");
      p.className = "qa-notice";
      p.textContent = r.data.error || "The question could not be answered.";
      item.answer.appendChild(p);
      $("qa-question").value = item.question;   // keep it, to fix or ask again
      enable();
    });
  }

  function answered(item, data) {
    item.answer.innerHTML = data.html;   // server-made, every text escaped (qa/serve/render.py)
    // Citations open in the wiki's own tab when embedded; alone, in a new tab (keeps the chat).
    Array.prototype.forEach.call(item.answer.querySelectorAll("a.qa-link"), function (a) {
      a.target = hosted ? "_top" : "_blank";
    });
    item.answer.appendChild(feedbackRow(data.feedback));
    state.history.push({ role: "user", content: data.question },
      { role: "assistant", content: data.answer });
    state.history = state.history.slice(-2 * MAX_TURNS);
    enable();
    reveal(item.turn);
  }

  function reveal(turn) {
    if (hosted) {
      var top = turn.getBoundingClientRect().top + window.scrollY;
      post({ type: "qa:reveal", top: top, turn: turn.getBoundingClientRect().height, height: height() });
    } else {
      turn.scrollIntoView({ block: "start" });
    }
  }

  // ----- feedback ------------------------------------------------------------------------------
  function feedbackRow(token) {
    var row = document.createElement("div");
    row.className = "qa-w-fb";
    if (!token) return row;
    var label = document.createElement("span");
    label.textContent = "Was this helpful?";
    row.appendChild(label);
    var rating = 0;
    var note = document.createElement("span");
    note.setAttribute("role", "status");
    var form = document.createElement("form");
    form.className = "qa-w-comment";
    form.hidden = true;
    var input = document.createElement("input");
    input.maxLength = 1000;
    input.placeholder = "What was wrong or missing? (optional)";
    input.setAttribute("aria-label", "Comment on this answer");
    var sendButton = document.createElement("button");
    sendButton.type = "submit";
    sendButton.className = "qa-w-small";
    sendButton.textContent = "Send";
    form.appendChild(input);
    form.appendChild(sendButton);
    var buttons = [[1, "Yes"], [-1, "No"]].map(function (choice) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "qa-w-small qa-w-rate";
      b.textContent = choice[1];
      b.setAttribute("aria-pressed", "false");
      b.setAttribute("data-rating", String(choice[0]));
      b.addEventListener("click", function () {
        rating = choice[0];
        buttons.forEach(function (other) { other.setAttribute("aria-pressed", String(other === b)); });
        give({ token: token, rating: rating }, "Thanks: your verdict is kept for the people who look after these documents.");
        form.hidden = false;
      });
      row.appendChild(b);
      return b;
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!input.value.trim()) return;
      give({ token: token, rating: rating, comment: input.value.trim() }, "Thanks: your comment is kept.");
      form.hidden = true;
    });
    function give(body, thanks) {
      request("feedback", body).then(function (r) {
        note.textContent = r.status === 200 ? thanks : (r.data.error || "Not recorded; try again.");
      });
    }
    row.appendChild(form);
    row.appendChild(note);
    return row;
  }

  function start() {
    $("qa-form").addEventListener("submit", function (event) {
      event.preventDefault();
      ask($("qa-question").value);
    });
    $("qa-question").addEventListener("input", function () {   // grows with what is typed
      this.style.height = "auto";
      this.style.height = this.scrollHeight + 2 + "px";
    });
    $("qa-question").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); ask(this.value); }
    });
    $("qa-clear").addEventListener("click", function () {
      if (state.busy) return;
      state.history = [];
      state.waiting = null;
      $("qa-log").textContent = "";
      hello();
    });
    $("qa-retry").addEventListener("click", hello);
    if (hosted && window.ResizeObserver) {
      new ResizeObserver(function () { post({ type: "qa:size", height: height() }); })
        .observe(document.querySelector(".qa-w"));
    }
    hello();
  }
  document.addEventListener("DOMContentLoaded", start);
})();
