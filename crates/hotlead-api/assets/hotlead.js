/*! hotlead tracking script: page views with a first-party anonymous id, and the anonymous
 * id added to forms so that a visitor's earlier behaviour joins the lead they become.
 *
 *   <script src="https://API/hotlead.js" data-write-key="KEY" async></script>
 *
 * API: hotlead.page(), hotlead.track(name, properties), hotlead.identify(userId, traits),
 * hotlead.anonymousId(), hotlead.attachForms().
 */
(function () {
  "use strict";
  if (window.hotlead && window.hotlead.loaded) return;
  var script = document.currentScript || document.querySelector("script[src*='hotlead.js']");
  var api = script ? new URL(script.src, location.href).origin : location.origin;
  if (script && script.getAttribute("data-api")) api = script.getAttribute("data-api").replace(/\/$/, "");
  var writeKey = script ? script.getAttribute("data-write-key") || "" : "";
  var COOKIE = "hl_anon";

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].substring(0, eq) === name) return decodeURIComponent(parts[i].substring(eq + 1));
    }
    return null;
  }

  function anonymousId() {
    var id = readCookie(COOKIE);
    if (!id) {
      id = uuid();
      var secure = location.protocol === "https:" ? "; Secure" : "";
      document.cookie = COOKIE + "=" + encodeURIComponent(id) + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
    }
    return id;
  }

  function campaign() {
    var params = new URLSearchParams(location.search);
    var out = {};
    [["source", "utm_source"], ["medium", "utm_medium"], ["name", "utm_campaign"], ["term", "utm_term"], ["content", "utm_content"]]
      .forEach(function (pair) {
        var value = params.get(pair[1]);
        if (value) out[pair[0]] = value;
      });
    return out;
  }

  function send(type, body) {
    body.type = type;
    body.messageId = uuid();
    body.anonymousId = anonymousId();
    body.timestamp = new Date().toISOString();
    body.writeKey = writeKey;
    body.context = body.context || {};
    body.context.page = { path: location.pathname, url: location.href, referrer: document.referrer, title: document.title };
    body.context.userAgent = navigator.userAgent;
    body.context.locale = navigator.language;
    body.context.campaign = campaign();
    body.context.library = { name: "hotlead.js", version: "1" };
    // text/plain keeps this a simple request: no CORS preflight, and it survives unload.
    return fetch(api + "/v1/" + type, {
      method: "POST",
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify(body),
      keepalive: true,
      credentials: "omit"
    }).catch(function () {});
  }

  function attachForms(root) {
    var forms = (root || document).querySelectorAll("form");
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i];
      if (form.hasAttribute("data-hotlead-skip")) continue;
      var input = form.querySelector("input[name='anonymousId']");
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = "anonymousId";
        form.appendChild(input);
      }
      input.value = anonymousId();
    }
  }

  window.hotlead = {
    loaded: true,
    api: api,
    anonymousId: anonymousId,
    attachForms: attachForms,
    page: function (name, properties) {
      return send("page", { name: name || document.title, properties: properties || {} });
    },
    track: function (event, properties) {
      return send("track", { event: event, properties: properties || {} });
    },
    identify: function (userId, traits) {
      var body = { traits: traits || {} };
      if (userId) body.userId = String(userId);
      return send("identify", body);
    }
  };

  function start() {
    attachForms();
    window.hotlead.page();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
