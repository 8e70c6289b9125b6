// latchkey: small enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: <button data-copy="ID"> copies the value of #ID.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      };
      target.focus();
      target.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(target.value).then(done, function () {
          if (document.execCommand("copy")) done();
        });
      } else if (document.execCommand("copy")) {
        done();
      }
    });
  });

  // Confirmations: a form with data-confirm asks first, then sends confirm=yes
  // (without this script the server shows a confirmation page instead).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
        return;
      }
      if (!form.querySelector("input[name=confirm]")) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = "confirm";
        input.value = "yes";
        form.appendChild(input);
      }
    });
  });

  // Template picker: picking a template fills the permission grid and, when
  // the name is empty or still the previous suggestion, the name.
  var gridFor = document.getElementById("grid_for");
  var name = document.getElementById("name");
  if (gridFor) {
    var suggested = name ? name.value : "";
    document.querySelectorAll("input[name=template]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        if (!radio.checked) return;
        gridFor.value = radio.value;
        if (radio.value === "custom") return;
        var wanted = (radio.getAttribute("data-permissions") || "").split(" ");
        document.querySelectorAll("input[name=permissions]").forEach(function (box) {
          if (!box.disabled) box.checked = wanted.indexOf(box.value) !== -1;
        });
        if (name && (name.value === "" || name.value === suggested)) {
          name.value = radio.getAttribute("data-name") || "";
          suggested = name.value;
        }
      });
    });
    // Editing the grid by hand makes the key custom.
    document.querySelectorAll("input[name=permissions]").forEach(function (box) {
      box.addEventListener("change", function () {
        var custom = document.querySelector("input[name=template][value=custom]");
        if (custom) { custom.checked = true; gridFor.value = "custom"; }
      });
    });
  }
});
