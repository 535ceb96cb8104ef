/* Baton's small script: the bpmn-js viewer with an instance's or a lint report's markers, and the upload drop zone.
   Everything it shows is also on the page as text; without it the pages still work. */
(function () {
  "use strict";

  function badge(text, kind) {
    var span = document.createElement("span");
    span.className = "diagram-badge diagram-badge-" + kind;
    span.textContent = text;
    return span;
  }

  function mark(viewer, markers) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    var overlays = viewer.get("overlays");
    var groups = [["done", "baton-done"], ["active", "baton-active"], ["incidents", "baton-incident"],
                  ["errors", "baton-error"], ["warnings", "baton-warning"]];
    groups.forEach(function (group) {
      var items = markers[group[0]] || {};
      Object.keys(items).forEach(function (id) {
        var element = registry.get(id);
        if (!element) { return; }
        canvas.addMarker(id, group[1]);
        var value = items[id];
        var gfx = registry.getGraphics(element);
        if (typeof value === "string") {  // a message: the tooltip of the element
          var title = document.createElementNS("http://www.w3.org/2000/svg", "title");
          title.textContent = value;
          gfx.appendChild(title);
        }
        var position = element.waypoints ? { top: -10, left: 0 } : { top: -10, right: 10 };
        if (group[0] === "done" && value > 1) {
          overlays.add(id, { position: position, html: badge("×" + value, "done") });
        } else if (group[0] === "active") {
          overlays.add(id, { position: position, html: badge(String(value), "active") });
        } else if (group[0] === "incidents" || group[0] === "errors") {
          overlays.add(id, { position: position, html: badge("!", "error") });
        } else if (group[0] === "warnings") {
          overlays.add(id, { position: position, html: badge("?", "warning") });
        }
      });
    });
  }

  function show(container) {
    var fallback = container.querySelector(".diagram-fallback");
    var markers = JSON.parse(document.getElementById(container.dataset.diagram).textContent);
    function fail(text) {
      if (fallback) { fallback.textContent = text; }
      container.classList.add("diagram-failed");
    }
    if (!window.BpmnJS) {
      fail("The diagram viewer is not installed on this server (run .ci/vendor).");
      return;
    }
    fetch(markers.xml, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("the diagram could not be loaded (" + response.status + ")"); }
        return response.text();
      })
      .then(function (xml) {
        var viewer = new window.BpmnJS({ container: container });
        return viewer.importXML(xml).then(function () {
          if (fallback) { fallback.remove(); }
          viewer.get("canvas").zoom("fit-viewport", "auto");
          mark(viewer, markers);
          container.classList.add("diagram-ready");
        });
      })
      .catch(function (error) {
        var svg = container.querySelector(".djs-container");
        if (svg) { svg.remove(); }
        fail("The diagram cannot be shown: " + error.message);
      });
  }

  function dropzone(zone) {
    var input = zone.querySelector("input[type=file]");
    var list = zone.querySelector("[data-dropzone-list]");
    function listed() {
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      list.textContent = names.length ? "Chosen: " + names.join(", ") : "";
    }
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dropzone-over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dropzone-over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var files = new DataTransfer();
      Array.prototype.forEach.call(event.dataTransfer.files, function (f) {
        if (/\.(bpmn|dmn|json)$/i.test(f.name)) { files.items.add(f); }
      });
      input.files = files.files;
      listed();
    });
    input.addEventListener("change", listed);
  }

  document.querySelectorAll("[data-diagram]").forEach(show);
  document.querySelectorAll("[data-dropzone]").forEach(dropzone);
})();
