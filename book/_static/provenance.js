/* "Cite this equation": copy the citation under an equation (provenance.py writes the markup). */
(function () {
  "use strict";
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // http:// pages (a local preview) have no clipboard API: select the text and copy it.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".cnn-cite-copy");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-cite"));
    if (!source) { return; }
    function done(label) {
      button.textContent = label;
      window.clearTimeout(button.cnnReset);
      button.cnnReset = window.setTimeout(function () { button.textContent = "Copy"; }, 2500);
    }
    copyText(source.textContent).then(function () {
      done("Copied");
    }, function () {
      // Leave the text selected so that the reader can copy it by hand.
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      done("Press Ctrl+C");
    });
  });
}());
