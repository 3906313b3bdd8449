// Shows how many questions are answered; the form works the same without it.
document.querySelectorAll("form[data-progress]").forEach(function (form) {
  var items = form.querySelectorAll("fieldset.item");
  var text = document.getElementById("progress-text");
  var bar = form.querySelector("progress");
  function update() {
    var answered = 0;
    items.forEach(function (item) {
      if (item.querySelector("input[type=radio]:checked")) { answered += 1; }
    });
    bar.value = answered;
    text.textContent = answered + " of " + items.length + " answered";
  }
  form.addEventListener("change", update);
  update();
});
var summary = document.getElementById("error-summary");
if (summary) { summary.focus(); }
