// Live updates of a namespace's dashboard by server-sent events: incident rows are added or
// changed in place (text only, never HTML from the wire), graphs are redrawn by the server.
(function () {
  "use strict";
  var section = document.getElementById("incidents-section");
  if (!section || !window.EventSource) { return; }
  var ns = section.getAttribute("data-namespace");
  var canRespond = section.getAttribute("data-can-respond") === "true";
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var body = document.querySelector("#incidents tbody");
  var empty = section.querySelector(".empty");

  function button(id, action, label) {
    var form = document.createElement("form");
    form.method = "post";
    form.className = "inline";
    form.action = "/dashboard/" + ns + "/incidents/" + encodeURIComponent(id) + "/" + action;
    var hidden = document.createElement("input");
    hidden.type = "hidden"; hidden.name = "csrf_token"; hidden.value = csrf;
    var b = document.createElement("button");
    b.type = "submit"; b.className = "action"; b.setAttribute("data-action", action);
    b.textContent = label;
    form.appendChild(hidden); form.appendChild(b);
    return form;
  }

  function cell(text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text;
    return td;
  }

  function upsert(inc) {
    var row = body.querySelector('tr[data-id="' + CSS.escape(inc.incident_id) + '"]');
    var fresh = document.createElement("tr");
    fresh.setAttribute("data-id", inc.incident_id);
    var what = document.createElement("td");
    var link = document.createElement("a");
    link.href = "/dashboard/" + ns + "/incidents/" + encodeURIComponent(inc.incident_id);
    link.textContent = inc.title;
    what.appendChild(link);
    fresh.appendChild(what);
    fresh.appendChild(cell(inc.severity, "sev-" + inc.severity));
    fresh.appendChild(cell(inc.status_text, "status"));
    fresh.appendChild(cell(inc.opened_at.replace("T", " ").slice(0, 16) + " UTC"));
    var actions = cell("", "actions");
    if (canRespond && !inc.closed_at) {
      actions.appendChild(button(inc.incident_id, "ack", "Acknowledge"));
      actions.appendChild(button(inc.incident_id, "resolve", "Resolve"));
    }
    fresh.appendChild(actions);
    if (row) { body.replaceChild(fresh, row); } else { body.insertBefore(fresh, body.firstChild); }
    if (empty) { empty.hidden = true; }
  }

  var pending = {};
  var timer = null;
  function redraw() {
    timer = null;
    Object.keys(pending).forEach(function (metric) {
      var fig = document.querySelector('figure.graph[data-metric="' + CSS.escape(metric) + '"] .svg');
      if (!fig) { return; }
      fetch("/dashboard/" + ns + "/graph.svg?metric=" + encodeURIComponent(metric), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (!text) { return; }
          var doc = new DOMParser().parseFromString(text, "image/svg+xml");
          var svg = doc.documentElement;
          if (svg && svg.nodeName === "svg") { fig.replaceChildren(document.importNode(svg, true)); }
        });
    });
    pending = {};
  }

  var source = new EventSource("/dashboard/" + ns + "/live");
  source.addEventListener("incident", function (e) { upsert(JSON.parse(e.data)); });
  source.addEventListener("metrics", function (e) {
    JSON.parse(e.data).names.forEach(function (n) { pending[n] = true; });
    if (!timer) { timer = setTimeout(redraw, 2000); }
  });
  source.addEventListener("alert", function (e) {
    var a = JSON.parse(e.data);
    var list = document.getElementById("alerts");
    if (!list) { return; }
    var li = document.createElement("li");
    li.className = "alert-" + a.state;
    var strong = document.createElement("strong");
    strong.textContent = a.state;
    li.appendChild(strong);
    li.appendChild(document.createTextNode(" " + a.summary + " " + a.at));
    list.insertBefore(li, list.firstChild);
  });
})();
