// The pages behind authgraph's mail links. The token is in the fragment
// (never sent to any server by the browser, never in a log or a Referer);
// it is read here, removed from the address bar, and sent to authgraph's
// GraphQL endpoint on this same origin.
(function () {
  "use strict";
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  history.replaceState(null, "", location.pathname);
  const status = document.getElementById("status");
  const endpoint = new URL("graphql", location.href).href;

  async function call(query, variables) {
    const response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query, variables }),
    });
    return response.json();
  }

  function show(text, ok) {
    status.textContent = text;
    status.dataset.result = ok ? "ok" : "error";
  }

  if (!token) {
    show("This link is incomplete: open the link from the mail again.", false);
    const form = document.getElementById("form");
    if (form) form.hidden = true;
    return;
  }

  if (document.body.dataset.page === "verify") {
    call("mutation($t: String!) { verifyEmail(token: $t) }", { t: token }).then(
      (body) => body.data && body.data.verifyEmail
        ? show("Your address is confirmed. You can close this page.", true)
        : show("This link has expired or was used already: ask for a new mail.", false),
      () => show("authgraph could not be reached: try again.", false),
    );
    return;
  }

  document.getElementById("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = document.getElementById("password").value;
    try {
      const body = await call(
        "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }",
        { t: token, p: password },
      );
      if (body.data && body.data.resetPassword) {
        document.getElementById("form").hidden = true;
        show("Your password is changed, and you are signed out everywhere: sign in with the new one.", true);
        return;
      }
      const error = (body.errors || [])[0] || {};
      const ext = error.extensions || {};
      if (ext.field === "token") {
        show("This link has expired or was used already: ask for a new mail.", false);
      } else if (ext.field === "newPassword") {
        // Said to a person, not in the API's terms (no field names).
        const why = {
          common: "This password is one of the most common ones: choose another.",
          contains_identity: "This password contains your username or email address: choose another.",
        }[ext.reason];
        show(why || "A password needs 8 to 128 characters: choose another.", false);
      } else {
        show(error.message || "That did not work: try again.", false);
      }
    } catch (err) {
      show("authgraph could not be reached: try again.", false);
    }
  });
})();
