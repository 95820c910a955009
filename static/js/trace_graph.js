// The trace page's lineage graph, drawn when its panel is first opened (no inline
// script: the Content-Security-Policy allows none).
(() => {

  const panel = document.getElementById("graph-panel");
  let drawn = false;
  panel.addEventListener("toggle", () => {
    if (!panel.open || drawn) return;
    drawn = true;
    drawFigure("lineage-graph", "figure-data").then((gd) => {
      gd.on("plotly_click", (ev) => {
        const id = ev.points[0] && ev.points[0].customdata;
        const card = id && document.getElementById("link-" + id);
        if (card) { card.scrollIntoView({behavior: "smooth", block: "center"}); card.animate([{outline: "3px solid #0969da"}, {outline: "0"}], 1600); }
      });
    });
  });
  if (location.hash === "#graph") panel.open = true;
})();
