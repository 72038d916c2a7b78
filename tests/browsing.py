"""Browser helpers for the widget tests: Chromium's flags, contrast and visibility measured
from what the browser computes, and a place to write the figures the tests measure."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP *.test 127.0.0.1, EXCLUDE localhost",
]


def require_chromium() -> None:
    """Fail (never skip) when the browser is missing: setup.sh --test installs it."""
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: run bash scripts/setup.sh --test"


# Every visible element with its own text (and every placeholder shown), with the contrast of
# its text colour against the background it is painted on (ancestors' backgrounds composited,
# opacity included), per WCAG 2: (L1 + 0.05) / (L2 + 0.05).
CONTRAST_JS = """
(base) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([\\d.]+)[, ]+([\\d.]+)[, ]+([\\d.]+)(?:[,/ ]+([\\d.]+%?))?\\)/);
    if (!m) return null;
    let a = m[4] === undefined ? 1 : parseFloat(m[4]) / (m[4].endsWith('%') ? 100 : 1);
    return [+m[1], +m[2], +m[3], a];
  };
  const over = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => {
    const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const background = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = parse(base) || [255, 255, 255, 1];
    for (const layer of layers.reverse()) bg = over(layer, bg);
    return bg;
  };
  const opacity = (el) => {
    let o = 1;
    for (let n = el; n; n = n.parentElement) o *= parseFloat(getComputedStyle(n).opacity);
    return o;
  };
  const visible = (el) => {
    const s = getComputedStyle(el);
    return el.getClientRects().length && s.visibility !== 'hidden' && s.display !== 'none';
  };
  const out = [];
  const check = (el, text, colour) => {
    const bg = background(el);
    let fg = parse(colour);
    if (!fg) { out.push({text, fg: colour, bg: String(bg), ratio: 0}); return; }
    fg = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
    out.push({text: text.slice(0, 40), tag: el.tagName, cls: String(el.className).slice(0, 60),
              fg: colour, bg: 'rgb(' + bg.slice(0, 3).map(Math.round).join(',') + ')',
              ratio: Math.round(ratio(fg, bg) * 100) / 100});
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el) || ['SCRIPT', 'STYLE', 'NOSCRIPT'].includes(el.tagName)) continue;
    const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim());
    const text = own.map((n) => n.textContent.trim()).join(' ');
    if (own.length) check(el, text, getComputedStyle(el).color);
    if ((el.tagName === 'TEXTAREA' || el.tagName === 'INPUT') && el.placeholder && !el.value)
      check(el, el.placeholder, getComputedStyle(el, '::placeholder').color);
  }
  return out;
}
"""

# How much of an element is inside the top window's viewport (0..1), through any iframes.
VISIBLE_SHARE_JS = """
(el) => {
  let r = el.getBoundingClientRect();
  let top = r.top, bottom = r.bottom;
  let win = el.ownerDocument.defaultView;
  while (win.frameElement) {
    const f = win.frameElement.getBoundingClientRect();
    top += f.top; bottom += f.top;
    win = win.parent;
  }
  const h = bottom - top;
  if (h <= 0) return 0;
  const seen = Math.max(0, Math.min(bottom, win.innerHeight) - Math.max(top, 0));
  return Math.round(seen / h * 1000) / 1000;
}
"""


def contrasts(root: Any, base: str = "rgb(255, 255, 255)") -> list[dict[str, Any]]:
    """Every text's contrast in `root` (a Page or Frame)."""
    return list(root.evaluate(CONTRAST_JS, base))


def worst(found: list[dict[str, Any]]) -> dict[str, Any]:
    return min(found, key=lambda item: item["ratio"])


def figures_file() -> Path:
    """Where the tests write the figures they measure ($QA_FIGURES, or none)."""
    return Path(os.environ.get("QA_FIGURES", "/dev/null"))


def record(name: str, value: Any) -> None:
    """Add one figure to $QA_FIGURES (a JSON object), for the report; no-op without it."""
    path = figures_file()
    if str(path) == "/dev/null":
        return
    data = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
