// The flow page: renders each challenge of the flow executor and posts responses.
// Its own query string is passed, unchanged, as the `query` parameter of every call.
(function () {
  "use strict";
  const slug = decodeURIComponent(location.pathname.split("/")[3] || "");
  const api = "/api/v3/flows/executor/" + encodeURIComponent(slug) + "/?query=" +
    encodeURIComponent(location.search.replace(/^\?/, ""));
  const stage = document.getElementById("stage");
  const title = document.getElementById("title");
  const messages = document.getElementById("messages");

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function csrf() {
    const c = document.cookie.split("; ").find((x) => x.startsWith("ih_csrf="));
    return c ? c.slice("ih_csrf=".length) : "";
  }

  async function call(method, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrf();
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(api, init); // follows the executor's 302 with a GET
    } catch (e) {
      return render({ component: "x-network-error" });
    }
    if (resp.status === 404) return render({ component: "x-not-found" });
    let data = {};
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) return render({ component: "x-http-error", error: data.error || resp.statusText });
    render(data);
  }

  function errorsFor(c, key) {
    const errs = (c.response_errors || {})[key] || [];
    return errs.map((e) => el("p", { class: "error", role: "alert" }, e.string));
  }

  function form(onSubmit, children, button) {
    const f = el("form", { novalidate: "" });
    children.forEach((ch) => f.append(ch));
    f.append(el("button", { type: "submit" }, button));
    f.addEventListener("submit", (ev) => { ev.preventDefault(); onSubmit(new FormData(f)); });
    return f;
  }

  function field(id, label, type, autocomplete) {
    const wrap = el("div");
    wrap.append(el("label", { for: id }, label));
    const input = el("input", { id, name: id, type, autocomplete: autocomplete || "off" });
    wrap.append(input);
    return wrap;
  }

  // The generic challenge `xak-form` (plugin_api::form): heading, text, typed
  // fields, buttons (a named one posts its value) and errors by field name.
  function genericForm(c) {
    const types = { text: "text", password: "password", email: "email", number: "number", code: "text", checkbox: "checkbox", hidden: "hidden" };
    const f = el("form", { novalidate: "" });
    if (c.title) f.append(el("h2", {}, c.title));
    if (c.text) f.append(el("p", {}, c.text));
    const inputs = [];
    for (const d of c.fields || []) {
      const type = types[d.type] || "text";
      const input = el("input", { id: "field-" + d.name, name: d.name, type });
      if (type === "checkbox") input.checked = d.value === "true"; else input.value = d.value || "";
      if (d.type === "code") { input.setAttribute("inputmode", "numeric"); input.setAttribute("autocomplete", "one-time-code"); }
      if (d.required) input.required = true;
      inputs.push([d, input]);
      const wrap = el("div");
      const label = el("label", { for: input.id }, d.label || d.name);
      if (type === "checkbox") wrap.append(input, label);
      else if (type === "hidden") wrap.append(input);
      else wrap.append(label, input);
      wrap.append(...errorsFor(c, d.name));
      f.append(wrap);
    }
    f.append(...errorsFor(c, "non_field_errors"));
    const buttons = (c.buttons && c.buttons.length) ? c.buttons : [{ label: "Continue" }];
    for (const b of buttons) {
      const btn = el("button", { type: "submit" }, b.label);
      if (b.name) { btn.name = b.name; btn.value = b.value || ""; }
      f.append(btn);
    }
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const by = ev.submitter;
      const named = by && by.name;
      if (!named && inputs.some(([d, i]) => d.required && i.type !== "checkbox" && !i.value)) return;
      const body = { component: c.component };
      for (const [d, i] of inputs) body[d.name] = i.type === "checkbox" ? i.checked : i.value;
      if (named) body[by.name] = by.value;
      call("POST", body);
    });
    return f;
  }

  function render(c) {
    stage.replaceChildren();
    messages.replaceChildren();
    for (const m of c.messages || []) messages.append(el("li", { class: m.level }, m.message));
    const info = c.flow_info || {};
    title.textContent = info.title || "";
    document.title = info.title || "Flow";
    switch (c.component) {
      case "ak-stage-identification":
        stage.append(form((d) => call("POST", { component: c.component, uid_field: d.get("uid_field") }),
          [field("uid_field", "Email or username", "text", "username"), ...errorsFor(c, "uid_field"), ...errorsFor(c, "non_field_errors")],
          c.primary_action || "Continue"));
        break;
      case "ak-stage-prompt": {
        const inputs = [];
        for (const f of c.fields || []) {
          const type = f.type === "password" ? "password" : f.type === "email" ? "email" : "text";
          inputs.push(field(f.field_key, f.label || f.field_key, type));
          inputs.push(...errorsFor(c, f.field_key));
        }
        stage.append(form((d) => {
          const body = { component: c.component };
          for (const f of c.fields || []) body[f.field_key] = d.get(f.field_key) || "";
          call("POST", body);
        }, inputs, "Continue"));
        break;
      }
      case "ak-stage-email":
        stage.append(el("p", {}, "Check your Inbox for a verification email."));
        stage.append(form(() => call("POST", { component: c.component }), [], "Send Email again."));
        break;
      case "ak-stage-consent":
        stage.append(el("p", {}, c.header_text || ""));
        stage.append(form(() => call("POST", { component: c.component, token: c.token }), [], "Continue"));
        break;
      case "ak-stage-terms": {
        stage.append(el("p", {}, c.text || ""));
        const box = el("div");
        const cb = el("input", { type: "checkbox", id: "accepted", name: "accepted" });
        box.append(cb, el("label", { for: "accepted" }, "I accept the terms (" + (c.version || "") + ")"));
        stage.append(form(() => call("POST", { component: c.component, accepted: cb.checked }), [box, ...errorsFor(c, "accepted")], "Continue"));
        break;
      }
      case "ak-stage-access-denied":
        stage.append(el("p", { class: "error", role: "alert" }, c.error_message || "Unknown error"));
        break;
      case "ak-stage-flow-error":
        stage.append(el("p", { class: "error", role: "alert" }, (c.error || "Something went wrong.") + " Request ID: " + (c.request_id || "")));
        break;
      case "xak-flow-redirect":
        title.textContent = "Done";
        stage.append(el("p", { id: "done" }, "Redirecting…"));
        setTimeout(() => location.assign(c.to || "/"), 600);
        break;
      case "xak-form":
        stage.append(genericForm(c));
        break;
      case "x-not-found":
        title.textContent = "Not found";
        break;
      case "x-network-error":
      case "x-http-error":
        stage.append(el("p", { class: "error", role: "alert" }, c.error || "Unexpected answer from the server."));
        break;
      default:
        stage.append(el("p", { class: "error", role: "alert" }, c.component
          ? "This page cannot show the step \"" + c.component + "\": it renders the built-in stages and xak-form."
          : "Unexpected answer from the server."));
    }
    const first = stage.querySelector("input, button");
    if (first) first.focus();
  }

  call("GET");
})();
