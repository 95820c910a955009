// Draw a plotly figure serialized by the view with json_script.
function drawFigure(targetId, dataId) {
  const target = document.getElementById(targetId);
  const source = document.getElementById(dataId);
  if (!target || !source || typeof Plotly === "undefined") return null;
  const fig = JSON.parse(source.textContent);
  return Plotly.newPlot(target, fig.data, fig.layout, {displayModeBar: false, responsive: true});
}
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-figure]").forEach((el) => drawFigure(el.id, el.dataset.figure));
});
