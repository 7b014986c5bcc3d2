// Loomworks console: confirmations before destructive actions, and upload progress for forms that send a file.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) {
    return;
  }
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  if (form.dataset.progress && window.XMLHttpRequest && window.FormData) {
    event.preventDefault();
    upload(form, document.getElementById(form.dataset.progress));
  }
});

// Sends the form with its file and shows how much has gone; then shows the page it led to, or the refusal's text.
function upload(form, progress) {
  const request = new XMLHttpRequest();
  const status = document.getElementById(form.dataset.progress + "-status");
  const button = form.querySelector("button[type=submit]");
  if (button) {
    button.disabled = true;
  }
  if (progress) {
    progress.hidden = false;
    progress.value = 0;
  }
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable && progress) {
      progress.max = e.total;
      progress.value = e.loaded;
      if (status) {
        status.textContent = "Uploaded " + Math.floor((100 * e.loaded) / e.total) + "%";
      }
    }
  });
  request.upload.addEventListener("load", () => {
    if (status) {
      status.textContent = "Uploaded; restoring…";
    }
  });
  request.addEventListener("load", () => {
    if (request.status < 400) {
      const name = form.querySelector("input[name=name]");
      const done = new URL(request.responseURL || window.location.href);
      if (name) {
        done.searchParams.set("restored", name.value);
      }
      window.location.assign(done.toString());
      return;
    }
    if (status) {
      status.textContent = request.responseText;
      status.setAttribute("role", "alert");
    }
    if (progress) {
      progress.hidden = true;
    }
    if (button) {
      button.disabled = false;
    }
  });
  request.addEventListener("error", () => {
    if (status) {
      status.textContent = "The upload failed: the connection was lost.";
    }
    if (button) {
      button.disabled = false;
    }
  });
  request.open("POST", form.action);
  const token = form.querySelector("input[name=__RequestVerificationToken]");
  if (token) {
    request.setRequestHeader("RequestVerificationToken", token.value);
  }
  request.send(new FormData(form));
}
