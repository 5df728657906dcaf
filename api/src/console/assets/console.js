// Hermod console: the only script. Live template preview; everything else works
// without it (plain forms and links).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const csrf = document.body.dataset.csrf;
  for (const form of document.querySelectorAll("form.preview")) {
    const out = form.querySelector(".preview-out");
    let timer = null;
    const run = async () => {
      let vars = {};
      const raw = form.querySelector("textarea[name=vars]").value.trim();
      if (raw) {
        try { vars = JSON.parse(raw); } catch (e) { out.textContent = "vars: not JSON yet"; return; }
      }
      const locale = form.querySelector("input[name=locale]").value.trim() || undefined;
      const r = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ vars, locale }),
      });
      const body = await r.json();
      if (!r.ok) { out.textContent = body.error ? body.error.message : "error " + r.status; return; }
      const sms = body.sms || {};
      out.textContent = (body.text || "") + "\n\n" +
        "encoding: " + (sms.encoding || "-") + " · segments: " + (sms.segments ?? "-") +
        " · characters: " + (sms.characters ?? "-");
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 250); });
    form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
    run();
  }
});
