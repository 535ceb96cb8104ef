/* Baton's small script: the bpmn-js viewer with an instance's or a lint report's markers, and the upload drop zone.
   Everything it shows is also on the page as text; without it the pages still work.

   The diagram sits in a scrolling frame, drawn at one scale: fitted when that is readable, else at READABLE scale
   around the element that matters (what the instance waits on, a failure, where it ended), with −, + and Fit.
   The frame scrolls natively (touch, wheel, keyboard, scroll bars) and drags with the mouse; bpmn-js' own
   wheel zoom and canvas dragging are switched off, so a wheel over the diagram scrolls the page as it expects. */
(function () {
  "use strict";

  var READABLE = 0.6;  // below this scale the labels cannot be read
  var LARGEST = 2;
  var STEP = 1.25;
  var PAD = 16;  // px around the drawing
  var COLOURS = { "baton-taken": "#1d6b3a", "baton-incident": "#b42318", "baton-error": "#b42318",
                  "baton-warning": "#8a4b00" };  // of marked connections, for their arrowheads (diagram.css: lines)

  function badge(text, kind) {
    var span = document.createElement("span");
    span.className = "diagram-badge diagram-badge-" + kind;
    span.textContent = text;
    return span;
  }

  function middle(connection) {
    var points = connection.waypoints, total = 0, i, lengths = [];
    for (i = 1; i < points.length; i++) {
      lengths.push(Math.hypot(points[i].x - points[i - 1].x, points[i].y - points[i - 1].y));
      total += lengths[i - 1];
    }
    var half = total / 2;
    for (i = 1; i < points.length; i++) {
      if (half <= lengths[i - 1] || i === points.length - 1) {
        var t = lengths[i - 1] ? Math.min(1, half / lengths[i - 1]) : 0;
        return { x: points[i - 1].x + t * (points[i].x - points[i - 1].x),
                 y: points[i - 1].y + t * (points[i].y - points[i - 1].y) };
      }
      half -= lengths[i - 1];
    }
    return points[0];
  }

  function centre(element) {
    return element.waypoints ? middle(element) : { x: element.x + element.width / 2, y: element.y + element.height / 2 };
  }

  /* Where an element's badges go: its corners, top right first, preferring those where the badge covers no boundary
     event and no label; a connection's at its middle. Each place is an overlay position plus the shift that puts the
     badge just outside the corner. */
  var BADGE = { width: 48, height: 30 };  // diagram units a badge takes at the readable scale

  function places(element, labels) {
    if (element.waypoints) {
      var xs = element.waypoints.map(function (p) { return p.x; });
      var ys = element.waypoints.map(function (p) { return p.y; });
      var mid = middle(element);
      return [{ position: { left: mid.x - Math.min.apply(null, xs), top: mid.y - Math.min.apply(null, ys) },
                shift: "translate(-50%, -50%)" }];
    }
    var x = element.x, y = element.y, w = element.width, h = element.height;
    var corners = [[x + w, y, "right", "top", 0.3, 0.7], [x, y, "left", "top", 0.7, 0.7],
                   [x + w, y + h, "right", "bottom", 0.3, 0.3], [x, y + h, "left", "bottom", 0.7, 0.3]];
    corners = corners.map(function (c) {
      var position = {};
      position[c[2]] = 0;
      position[c[3]] = 0;
      return { position: position, shift: "translate(-" + c[4] * 100 + "%, -" + c[5] * 100 + "%)",
               area: { x: c[0] - c[4] * BADGE.width, y: c[1] - c[5] * BADGE.height,
                       width: BADGE.width, height: BADGE.height } };
    });
    function clear(obstacles) {
      return function (c) {
        return obstacles.every(function (o) {
          return o === element || c.area.x > o.x + o.width || c.area.x + c.area.width < o.x ||
            c.area.y > o.y + o.height || c.area.y + c.area.height < o.y;
        });
      };
    }
    var attachers = element.attachers || [];
    var best = corners.filter(clear(attachers.concat(labels)));
    var good = corners.filter(clear(attachers));
    return best.concat(good, corners).filter(function (c, i, all) { return all.indexOf(c) === i; });
  }

  /* A sequence flow was taken when its source completed and its target was reached: completed, waiting or failed. */
  function taken(registry, markers) {
    var done = markers.done || {}, active = markers.active || {}, failed = markers.incidents || {};
    return registry.filter(function (element) {
      var flow = element.businessObject;
      if (element.type !== "bpmn:SequenceFlow" || !flow.sourceRef || !flow.targetRef) { return false; }
      var target = flow.targetRef.id;
      return Boolean(done[flow.sourceRef.id]) && Boolean(done[target] || active[target] || failed[target]);
    });
  }

  /* A connection's arrowhead is an SVG <marker>, which CSS on the line does not reach: point a marked connection
     at a copy of its marker in the marker's colour. */
  function colourArrow(container, element, graphics, marker) {
    var path = element.waypoints && COLOURS[marker] && graphics.querySelector(".djs-visual > path");
    var reference = path && /url\(["']?#([^"')]+)["']?\)/.exec(path.style.markerEnd || path.getAttribute("marker-end") || "");
    var original = reference && document.getElementById(reference[1]);
    if (!original) { return; }
    var id = marker + "-" + (container.id || "diagram") + "-" + reference[1];
    if (!document.getElementById(id)) {
      var copy = original.cloneNode(true);
      copy.id = id;
      Array.prototype.forEach.call(copy.querySelectorAll("*"), function (shape) {
        if (shape.style.fill && shape.style.fill === shape.style.stroke) { shape.style.fill = COLOURS[marker]; }
        shape.style.stroke = COLOURS[marker];
      });
      original.parentNode.appendChild(copy);
    }
    path.style.markerEnd = "url('#" + id + "')";
  }

  function mark(viewer, markers, container) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    var overlays = viewer.get("overlays");
    var badges = {};  // element id -> [[text, kind]], most important first
    function add(id, text, kind) { (badges[id] = badges[id] || []).push([text, kind]); }

    if (markers.done) {  // an instance: its path
      taken(registry, markers).forEach(function (flow) {
        canvas.addMarker(flow.id, "baton-taken");
        colourArrow(container, flow, registry.getGraphics(flow), "baton-taken");
      });
    }
    var groups = [["incidents", "baton-incident"], ["errors", "baton-error"], ["warnings", "baton-warning"],
                  ["active", "baton-active"], ["done", "baton-done"]];
    groups.forEach(function (group) {
      var items = markers[group[0]] || {};
      Object.keys(items).forEach(function (id) {
        var element = registry.get(id);
        if (!element) { return; }
        canvas.addMarker(id, group[1]);
        var graphics = registry.getGraphics(element);
        colourArrow(container, element, graphics, group[1]);
        var value = items[id];
        if (typeof value === "string") {  // a message: the tooltip of the element
          var title = document.createElementNS("http://www.w3.org/2000/svg", "title");
          title.textContent = value;
          graphics.appendChild(title);
        }
        if (group[0] === "incidents" || group[0] === "errors") {
          add(id, "!", "error");
        } else if (group[0] === "warnings") {
          add(id, "?", "warning");
        } else if (value > 1) {  // a count: only worth a badge when it ran (or waits) more than once
          add(id, "×" + value, group[0]);
        }
      });
    });
    var labels = registry.filter(function (element) { return element.type === "label"; });
    Object.keys(badges).forEach(function (id) {
      var element = registry.get(id);
      var spots = places(element, labels);
      badges[id].forEach(function (b, i) {
        var spot = spots[i % spots.length];
        var html = badge(b[0], b[1]);
        html.style.transform = spot.shift;
        overlays.add(element, "baton", { position: spot.position, html: html, scale: { min: 1 } });
      });
    });
  }

  /* The element to open on when the diagram is larger than the frame. */
  function focusOf(registry, markers) {
    var first = function (items) {
      return Object.keys(items || {}).map(function (id) { return registry.get(id); }).filter(Boolean)[0];
    };
    return (markers.focus && registry.get(markers.focus)) || first(markers.incidents) || first(markers.errors) ||
      first(markers.active) || first(markers.warnings) || null;
  }

  function frame(container, viewer, focus) {
    var canvas = viewer.get("canvas");
    var stage = container.querySelector(".bjs-container") || container.firstElementChild;
    var box = canvas.viewbox().inner;  // the drawing, in diagram units
    var scale = 1, view = null, auto = true;

    function room() {  // the frame's inside at its own (CSS) height
      container.style.height = "";
      stage.style.width = "100%";
      stage.style.height = "100%";
      return { width: container.clientWidth, height: container.clientHeight };
    }
    function fitted(space) {  // the scale that shows it all (never above 1: a small diagram is not blown up)
      if (!(box.width > 0 && box.height > 0)) { return 1; }
      return Math.max(0.05, Math.min(1, (space.width - 2 * PAD) / box.width, (space.height - 2 * PAD) / box.height));
    }
    function visibleCentre() {
      return { x: view.x + (container.scrollLeft + container.clientWidth / 2) / scale,
               y: view.y + (container.scrollTop + container.clientHeight / 2) / scale };
    }
    function draw(newScale, point) {
      var space = room();
      var lowest = fitted(space);
      scale = Math.max(Math.min(newScale, LARGEST), lowest);
      var width = Math.max(space.width, Math.round(box.width * scale + 2 * PAD));
      var height = Math.round(box.height * scale + 2 * PAD);
      if (height < space.height && width <= space.width) {  // all of it shows: no need for the empty frame below
        container.style.height = Math.max(height, 160) + container.offsetHeight - container.clientHeight + "px";
        space.height = container.clientHeight;
      }
      height = Math.max(space.height, height);
      stage.style.width = width + "px";
      stage.style.height = height + "px";
      canvas.resized();
      view = { width: width / scale, height: height / scale };
      view.x = box.x - (view.width - box.width) / 2;
      view.y = box.y - (view.height - box.height) / 2;
      canvas.viewbox(view);
      var pannable = width > container.clientWidth || height > container.clientHeight;
      container.classList.toggle("diagram-pannable", pannable);
      if (point) {
        container.scrollLeft = (point.x - view.x) * scale - container.clientWidth / 2;
        container.scrollTop = (point.y - view.y) * scale - container.clientHeight / 2;
      } else {
        container.scrollLeft = 0;
        container.scrollTop = 0;
      }
      container.dataset.scale = scale.toFixed(3);
      zoomOut.disabled = fit.disabled = scale <= lowest + 0.001;
      zoomIn.disabled = scale >= LARGEST - 0.001;
    }
    function start() {
      var readable = fitted(room()) >= READABLE;
      draw(readable ? fitted(room()) : READABLE, readable || !focus ? null : centre(focus));
    }

    // −, + and Fit, above the diagram.
    var tools = document.createElement("div");
    tools.className = "diagram-tools";
    tools.setAttribute("role", "group");
    tools.setAttribute("aria-label", "Diagram zoom");
    function button(text, label, act) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "button small";
      b.textContent = text;
      if (label) { b.setAttribute("aria-label", label); b.title = label; }
      b.addEventListener("click", function () { auto = false; act(); });
      tools.appendChild(b);
      return b;
    }
    var zoomOut = button("−", "Zoom out", function () { draw(scale / STEP, visibleCentre()); });
    var zoomIn = button("+", "Zoom in", function () { draw(scale * STEP, visibleCentre()); });
    var fit = button("Fit", "", function () { draw(fitted(room()), null); });
    container.parentNode.insertBefore(tools, container);

    // The frame scrolls with the keyboard too; a mouse drags it.
    container.tabIndex = 0;
    container.setAttribute("role", "group");
    container.setAttribute("aria-label", "Diagram; when it is larger than its frame, scroll to see the rest");
    var drag = null;
    container.addEventListener("pointerdown", function (event) {
      if (event.pointerType !== "mouse" || event.button !== 0 || !container.classList.contains("diagram-pannable")) {
        return;
      }
      drag = { x: event.clientX, y: event.clientY, left: container.scrollLeft, top: container.scrollTop };
      auto = false;
      container.setPointerCapture(event.pointerId);
      container.classList.add("diagram-dragging");
      event.preventDefault();
      container.focus({ preventScroll: true });
    });
    container.addEventListener("pointermove", function (event) {
      if (!drag) { return; }
      container.scrollLeft = drag.left - (event.clientX - drag.x);
      container.scrollTop = drag.top - (event.clientY - drag.y);
    });
    ["pointerup", "pointercancel", "lostpointercapture"].forEach(function (name) {
      container.addEventListener(name, function () { drag = null; container.classList.remove("diagram-dragging"); });
    });
    // Ctrl (or ⌘) and the wheel zoom, around the pointer.
    container.addEventListener("wheel", function (event) {
      if (!(event.ctrlKey || event.metaKey)) { return; }
      event.preventDefault();
      auto = false;
      var rect = container.getBoundingClientRect();
      var px = event.clientX - rect.left, py = event.clientY - rect.top;
      var point = { x: view.x + (container.scrollLeft + px) / scale, y: view.y + (container.scrollTop + py) / scale };
      draw(event.deltaY < 0 ? scale * STEP : scale / STEP, null);
      container.scrollLeft = (point.x - view.x) * scale - px;
      container.scrollTop = (point.y - view.y) * scale - py;
    }, { passive: false });

    var resizing = null, wide = window.innerWidth;
    window.addEventListener("resize", function () {  // a phone's address bar coming and going changes only the height
      if (window.innerWidth === wide) { return; }
      wide = window.innerWidth;
      clearTimeout(resizing);
      resizing = setTimeout(function () { if (auto) { start(); } else { draw(scale, visibleCentre()); } }, 150);
    });
    start();
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
        var viewer = new window.BpmnJS({
          container: container,
          // The frame scrolls natively instead (see the top of this file).
          additionalModules: [{ zoomScroll: ["value", { toggle: function () {}, reset: function () {} }],
                                moveCanvas: ["value", {}] }]
        });
        return viewer.importXML(xml).then(function () {
          if (fallback) { fallback.remove(); }
          var registry = viewer.get("elementRegistry");
          mark(viewer, markers, container);
          frame(container, viewer, focusOf(registry, markers));
          container.classList.add("diagram-ready");
        });
      })
      .catch(function (error) {
        var svg = container.querySelector(".bjs-container") || container.querySelector(".djs-container");
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
