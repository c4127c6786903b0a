// striatum web UI: live refresh of a run page. The page works without this file;
// with it, the server's events (SSE) swap the graph, the tables and the actions
// as the run moves, with no reload.
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
    live.dataset.seq = update.seq;
    if (["completed", "failed", "cancelled"].indexOf(update.status) >= 0) {
      source.close();
    }
  });
  source.addEventListener("failed", function () {
    source.close();
  });
})();
