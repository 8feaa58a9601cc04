// The call page's recording parts (templates/board/_recording_segments.html) play in
// order: when one part ends, the next one that can play starts.
(function () {
  "use strict";
  function chain(list) {
    var players = Array.prototype.slice.call(list.querySelectorAll("audio"));
    players.forEach(function (player, index) {
      player.addEventListener("ended", function () {
        var next = players[index + 1];
        if (next) {
          next.play().catch(function () { /* the browser refused: the person presses play */ });
        }
      });
    });
  }
  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-play-in-order]"), chain);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
