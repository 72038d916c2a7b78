/* qa wiki widget loader: turns every <div class="qa-widget"> on the page into the chat.
 *
 *   <script src="https://qa.example.org/widget.js" async></script>
 *   <div class="qa-widget" data-theme="light"></div>     (light | dark | auto)
 *
 * Page-aware: data-page="this" (the page the widget is on: MediaWiki's page name, else the
 * canonical link, else the address) or a page's title or URL; data-scope="prefer" (that page
 * first, then the whole knowledge base), "only" (that page alone) or "namespace" (its namespace).
 *
 * Placeholders added later (by the wiki, a gadget, a script) are found too; call
 * window.qaWidget.scan() to mount at once. The chat runs in an iframe of the app's own origin
 * that reports its height, so it never shows an inner scrollbar nor a blank band; after a reply
 * the host page scrolls to put the question and its answer in view.
 */
(function () {
  "use strict";
  if (window.qaWidget) { window.qaWidget.scan(); return; }
  var script = document.currentScript || document.querySelector("script[src*='/widget.js']");
  if (!script) { console.error("qa widget: cannot tell where widget.js came from"); return; }
  var base = new URL(".", script.src).href;          // the app's root, e.g. https://qa.example.org/
  var appOrigin = new URL(base).origin;
  var frames = [];                                   // {el, iframe}
  var THEMES = ["light", "dark", "auto"];
  var SCOPES = ["prefer", "only", "namespace"];

  // The page a placeholder names: "this" is the page around it, told the wiki's way if it can.
  function pageOf(el) {
    var page = (el.getAttribute("data-page") || "").trim();
    if (page !== "this") return page.slice(0, 2048);
    var mw = window.mw;
    var name = mw && mw.config && typeof mw.config.get === "function" && mw.config.get("wgPageName");
    if (typeof name === "string" && name) return name;
    var canonical = document.querySelector("link[rel='canonical']");
    if (canonical && canonical.href) return canonical.href;
    return location.href.split("#")[0];
  }

  function say(el, text) {
    el.textContent = "";
    var p = document.createElement("p");
    p.className = "qa-widget-note";
    p.setAttribute("role", "status");
    p.style.cssText = "margin:.5em 0;padding:.6em .8em;border:1px solid #9ca3af;" +
      "border-radius:6px;background:#ffffff;color:#1f2937;font:inherit;";
    p.textContent = text;
    el.appendChild(p);
  }

  // Why the app did not answer this page: not allowed (CORS refused, app up) or down.
  function probe() {
    return fetch(base + "widget/hello", { mode: "cors", credentials: "omit", cache: "no-store" })
      .then(function () { return "ok"; }, function () {
        return fetch(base + "healthz", { mode: "no-cors", cache: "no-store" })
          .then(function () { return "refused"; }, function () { return "down"; });
      });
  }

  function mount(el) {
    if (el.getAttribute("data-qa-mounted")) return;
    el.setAttribute("data-qa-mounted", "1");
    probe().then(function (result) {
      if (result === "ok") return attach(el);
      if (result === "refused") {
        console.error("qa widget: " + appOrigin + " does not allow this site (" +
          location.origin + ") to embed it; its administrator must add " + location.origin +
          " to QA_ALLOWED_ORIGINS");
        return say(el, "The assistant is not available on this site (it is not allowed here).");
      }
      say(el, "The assistant is unavailable, try again later. (Retrying by itself.)");
      setTimeout(function () { el.removeAttribute("data-qa-mounted"); mount(el); }, 5000);
    });
  }

  function attach(el) {
    var theme = el.getAttribute("data-theme");
    var query = new URLSearchParams({
      theme: THEMES.indexOf(theme) >= 0 ? theme : "light",
      host: location.origin,
    });
    var page = pageOf(el);
    if (page) {
      var scope = el.getAttribute("data-scope");
      query.set("page", page);
      query.set("scope", SCOPES.indexOf(scope) >= 0 ? scope : "prefer");
    }
    var signin = el.getAttribute("data-signin-url");
    if (signin) query.set("signin", new URL(signin, location.href).href);
    var iframe = document.createElement("iframe");
    iframe.src = base + "widget/?" + query.toString();
    iframe.title = el.getAttribute("data-title") || "Ask the documents";
    iframe.setAttribute("scrolling", "no");
    iframe.style.cssText = "display:block;width:100%;height:180px;border:0;overflow:hidden;" +
      "color-scheme:normal;background:transparent;";
    el.textContent = "";
    el.appendChild(iframe);
    frames.push({ el: el, iframe: iframe });
  }

  // Fixed or sticky bars at the top of the page (a wiki's sticky header) that would hide text.
  function topCover() {
    var bottom = 0;
    var seen = [];
    document.elementsFromPoint(window.innerWidth / 2, 2).forEach(function (node) {
      for (; node && node !== document.body; node = node.parentElement) {
        if (seen.indexOf(node) >= 0) break;
        seen.push(node);
        var position = getComputedStyle(node).position;
        if (position === "fixed" || position === "sticky") {
          bottom = Math.max(bottom, node.getBoundingClientRect().bottom);
        }
      }
    });
    return Math.min(bottom, window.innerHeight / 3);
  }

  function reveal(iframe, top, height) {
    function place() {
      var margin = topCover() + 12;
      var y = iframe.getBoundingClientRect().top + top;
      if (y < margin || y + height > window.innerHeight) window.scrollBy(0, y - margin);
    }
    place();
    requestAnimationFrame(function () { requestAnimationFrame(place); });  // headers that appear
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== appOrigin || !event.data || typeof event.data !== "object") return;
    var frame = frames.filter(function (f) { return f.iframe.contentWindow === event.source; })[0];
    if (!frame) return;
    var data = event.data;
    if (data.type === "qa:size" && data.height > 0) {
      frame.iframe.style.height = Math.ceil(Math.min(data.height, 100000)) + "px";
    } else if (data.type === "qa:reveal") {
      if (data.height > 0) frame.iframe.style.height = Math.ceil(data.height) + "px";
      reveal(frame.iframe, Number(data.top) || 0, Number(data.turn) || 0);
    }
  });

  function scan(root) {
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches(".qa-widget")) mount(scope);
    Array.prototype.forEach.call(scope.querySelectorAll(".qa-widget"), mount);
  }

  window.qaWidget = { scan: function (root) { scan(root); } };
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      Array.prototype.forEach.call(change.addedNodes, function (node) {
        if (node.nodeType === 1) scan(node);
      });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { scan(); });
  } else {
    scan();
  }
})();
