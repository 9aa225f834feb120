/*! hotlead tracking script: page views with a first-party anonymous id, and the anonymous
 * id added to the forms that post to this API, so that a visitor's earlier behaviour joins
 * the lead they become.
 *
 *   <script src="https://API/hotlead.js" data-write-key="KEY" async></script>
 *
 * Attributes of the script tag:
 *   data-write-key     the write key, sent in each call's body.
 *   data-api           the API's base URL (default: where this script was loaded from).
 *   data-consent="required"
 *                      no cookie and no calls until the site calls hotlead.consent(true).
 *                      Calls made before that are held in this page's memory only (at most
 *                      50, never in a cookie or storage) and sent once consent is given;
 *                      hotlead.consent(false) drops them. Consent is not remembered: call
 *                      hotlead.consent(true) on every page where the visitor has consented.
 *   data-respect-privacy-signals="false"
 *                      send even when the browser says Do Not Track (navigator.doNotTrack,
 *                      window.doNotTrack, navigator.msDoNotTrack "1") or Global Privacy
 *                      Control (navigator.globalPrivacyControl true). By default either
 *                      signal means no cookie and no calls at all, and hotlead.consent(true)
 *                      does not change that; with this attribute the site takes
 *                      responsibility for ignoring the visitor's signal.
 *   data-keep-params   the query parameters kept in the page URL and referrer that are
 *                      sent: comma-separated names, or prefixes ending in "*" (default
 *                      "utm_*"; "" keeps none). Other parameters and fragments are dropped.
 *
 * Each call carries timestamp (when it was made) and sentAt (when it was sent).
 *
 * API: hotlead.page(name, properties), hotlead.track(name, properties),
 * hotlead.identify(userId, traits), hotlead.consent(granted) (true: start, false: stop
 * and delete the cookie; answers whether the script now sends), hotlead.anonymousId()
 * (null while the script may not send), hotlead.attachForms(root).
 * Before the script has loaded, calls can be queued:
 *   window.hotlead = window.hotlead || []; hotlead.push(["consent", true]);
 */
(function () {
  "use strict";
  if (window.hotlead && window.hotlead.loaded) return;
  var queued = Array.isArray(window.hotlead) ? window.hotlead : [];
  var script = document.currentScript || document.querySelector("script[src*='hotlead.js']");
  var attr = function (name) {
    return script ? script.getAttribute(name) : null;
  };
  var apiUrl = new URL(attr("data-api") || (script ? script.src : location.href), location.href);
  // The API's base: origin plus any path prefix given in data-api, without a trailing slash.
  var api = (apiUrl.origin + (attr("data-api") ? apiUrl.pathname : "")).replace(/\/+$/, "");
  var writeKey = attr("data-write-key") || "";
  var consentRequired = attr("data-consent") === "required";
  var respectSignals = attr("data-respect-privacy-signals") !== "false";
  var keepParams = (attr("data-keep-params") === null ? "utm_*" : attr("data-keep-params"))
    .split(",")
    .map(function (p) {
      return p.trim();
    })
    .filter(function (p) {
      return p.length > 0;
    });
  var COOKIE = "hl_anon";
  var HELD_LIMIT = 50;
  // null: not decided on this page; true / false: hotlead.consent(...) was called.
  var consentGiven = null;
  var held = [];

  function privacySignal() {
    var dnt = navigator.doNotTrack || window.doNotTrack || navigator.msDoNotTrack;
    return dnt === "1" || dnt === "yes" || navigator.globalPrivacyControl === true;
  }

  // The visitor's browser signal wins over everything but the site's explicit override.
  function blocked() {
    return respectSignals && privacySignal();
  }

  function allowed() {
    if (blocked()) return false;
    return consentRequired ? consentGiven === true : consentGiven !== false;
  }

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

  function deleteCookie() {
    if (readCookie(COOKIE) !== null) document.cookie = COOKIE + "=; Path=/; Max-Age=0; SameSite=Lax";
  }

  function anonymousId() {
    if (!allowed()) return null;
    var id = readCookie(COOKIE);
    if (!id) {
      id = uuid();
      var secure = location.protocol === "https:" ? "; Secure" : "";
      document.cookie = COOKIE + "=" + encodeURIComponent(id) + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
    }
    return id;
  }

  function keptParam(name) {
    for (var i = 0; i < keepParams.length; i++) {
      var pattern = keepParams[i];
      if (pattern.charAt(pattern.length - 1) === "*") {
        if (name.indexOf(pattern.substring(0, pattern.length - 1)) === 0) return true;
      } else if (name === pattern) return true;
    }
    return false;
  }

  // The URL without its fragment and without the query parameters not kept.
  function cleanUrl(href) {
    if (!href) return href;
    var hash = href.indexOf("#");
    if (hash >= 0) href = href.substring(0, hash);
    var question = href.indexOf("?");
    if (question < 0) return href;
    var kept = href.substring(question + 1).split("&").filter(function (pair) {
      var name = pair.split("=")[0];
      try {
        name = decodeURIComponent(name.replace(/\+/g, " "));
      } catch (e) {
        return false;
      }
      return pair.length > 0 && keptParam(name);
    });
    return href.substring(0, question) + (kept.length ? "?" + kept.join("&") : "");
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

  function done() {
    return window.Promise ? Promise.resolve() : undefined;
  }

  function transmit(body) {
    body.anonymousId = anonymousId();
    body.sentAt = new Date().toISOString();
    // text/plain keeps this a simple request: no CORS preflight, and it survives unload.
    return fetch(api + "/v1/" + body.type, {
      method: "POST",
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify(body),
      keepalive: true,
      credentials: "omit"
    }).catch(function () {});
  }

  function send(type, body) {
    if (blocked()) return done();
    body.type = type;
    body.messageId = uuid();
    body.timestamp = new Date().toISOString();
    body.writeKey = writeKey;
    body.context = body.context || {};
    body.context.page = {
      path: location.pathname,
      url: cleanUrl(location.href),
      referrer: cleanUrl(document.referrer),
      title: document.title
    };
    body.context.userAgent = navigator.userAgent;
    body.context.locale = navigator.language;
    body.context.campaign = campaign();
    body.context.library = { name: "hotlead.js", version: "2" };
    if (allowed()) return transmit(body);
    // Waiting for consent: held in memory only, lost when the visitor leaves the page.
    if (consentRequired && consentGiven === null && held.length < HELD_LIMIT) held.push(body);
    return done();
  }

  function postsToApi(form) {
    var target;
    try {
      target = new URL(form.getAttribute("action") || location.href, document.baseURI || location.href);
    } catch (e) {
      return false;
    }
    return (target.origin + target.pathname).indexOf(api + "/v1/forms/") === 0;
  }

  function attachForms(root) {
    var forms = (root || document).querySelectorAll("form");
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i];
      if (form.hasAttribute("data-hotlead-skip") || !postsToApi(form)) continue;
      var id = anonymousId();
      if (!id) return;
      var input = form.querySelector("input[name='anonymousId']");
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = "anonymousId";
        input.setAttribute("data-hotlead-added", "");
        form.appendChild(input);
      }
      input.setAttribute("data-hotlead-filled", "");
      input.value = id;
    }
  }

  // Takes back the anonymous id from the forms it was put into.
  function detachForms() {
    var inputs = document.querySelectorAll("input[data-hotlead-filled]");
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].hasAttribute("data-hotlead-added")) inputs[i].parentNode.removeChild(inputs[i]);
      else {
        inputs[i].value = "";
        inputs[i].removeAttribute("data-hotlead-filled");
      }
    }
  }

  function consent(granted) {
    consentGiven = granted === true;
    if (!consentGiven) {
      held = [];
      deleteCookie();
      detachForms();
      return false;
    }
    if (!allowed()) {
      held = [];
      return false;
    }
    var waiting = held;
    held = [];
    for (var i = 0; i < waiting.length; i++) transmit(waiting[i]);
    attachForms();
    return true;
  }

  window.hotlead = {
    loaded: true,
    api: api,
    anonymousId: anonymousId,
    attachForms: attachForms,
    consent: consent,
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

  if (blocked()) deleteCookie();
  for (var q = 0; q < queued.length; q++) {
    var call = queued[q];
    if (Array.isArray(call) && typeof window.hotlead[call[0]] === "function") window.hotlead[call[0]].apply(null, call.slice(1));
  }

  function start() {
    attachForms();
    window.hotlead.page();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
