// striatum web UI: live refresh of a run page or a job page. The page works without
// this file; with it, the server's events (SSE) swap its live part (the graph, the
// tables, the actions; a job's state and log tail) as it moves, with no reload.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource || live.dataset.ended) {
    return;
  }
  var source = new EventSource(live.dataset.stream);
  source.addEventListener("update", function (message) {
    var update = JSON.parse(message.data);
    live.innerHTML = update.html;
    if (update.done) {
      source.close();
    }
  });
  source.addEventListener("failed", function () {
    source.close();
  });
})();
