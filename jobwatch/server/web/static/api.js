// Talking to the jobwatch server from a page: REST with the token, and a WebSocket
// that reconnects by itself.
//
// The token: when the API answers 401, the page asks for it once (a small form),
// keeps it in sessionStorage (this tab, until it is closed) and sends it as
// "Authorization: Bearer" on REST and as ?token= on the WebSocket, the one place a
// browser cannot send a header and the server takes a query token.

import { element } from "./dom.js";

// The server's root: this module is served at <root>/assets/api.js, so the pages
// also work behind a proxy that serves jobwatch under a path.
export const ROOT = new URL("../", import.meta.url);
const TOKEN_KEY = "jobwatch.token";
// Reconnect delays: doubling from the first, at most the last (seconds), with jitter.
const FIRST_DELAY = 0.5;
const MOST_DELAY = 15;
// Seconds of failed reconnection after which the indicator says offline.
const OFFLINE_AFTER = 10;

/** An answer of the API that is not 2xx: `status`, the envelope's `code` and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let memoryToken = null; // where sessionStorage is unavailable (a locked-down browser)

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return memoryToken;
  }
}

function storeToken(token) {
  memoryToken = token;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // kept in memory for this page only
  }
}

// A share link (/jobs/<id>#share=<token>) carries its token in the fragment, which
// the browser never sends to the server: take it as this tab's token and drop it
// from the address bar, so that it is not copied on by accident.
function takeSharedToken() {
  const match = /^#share=([A-Za-z0-9_.-]+)$/.exec(location.hash);
  if (!match) return;
  storeToken(match[1]);
  history.replaceState(null, "", location.pathname + location.search);
}

takeSharedToken();

let asking = null; // the token form on screen, shared by every request that got 401

// Show the token form (once, however many requests wait) and resolve when a token is given.
function askForToken(refused) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const form = element("form", "jobwatch-token");
    form.setAttribute("aria-label", "Server token");
    const title = element("h2", "", "This jobwatch server needs a token");
    const why = element(
      "p",
      "jobwatch-token-why",
      refused
        ? "The token given was refused (or has expired). Enter a read or write token."
        : "Enter a read or write token. It is kept in this tab only.",
    );
    const input = element("input", "jobwatch-token-input");
    input.type = "password";
    input.name = "token";
    input.autocomplete = "off";
    input.required = true;
    input.setAttribute("aria-label", "Token");
    const button = element("button", "jobwatch-token-submit", "Connect");
    button.type = "submit";
    form.append(title, why, input, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      storeToken(token);
      form.remove();
      asking = null;
      resolve(token);
    });
    document.body.append(form);
    input.focus();
  });
  return asking;
}

function apiError(status, body) {
  const error = body && typeof body === "object" ? body.error || {} : {};
  const message = typeof error.message === "string" ? error.message : `HTTP ${status}`;
  return new ApiError(status, typeof error.code === "string" ? error.code : "", message);
}

/**
 * GET `path` (relative to the server's root, e.g. "api/jobs?limit=1") and return its
 * JSON. A 401 asks for the token and tries again with it.
 * Throws ApiError for another error answer, TypeError when the server cannot be reached.
 */
export async function getJson(path) {
  for (;;) {
    const token = storedToken();
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(new URL(path, ROOT), { headers, cache: "no-store" });
    if (response.status === 401) {
      await askForToken(Boolean(token));
      continue;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw apiError(response.status, body);
    return body;
  }
}

function socketUrl() {
  const url = new URL("ws", ROOT);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const token = storedToken();
  if (token) url.searchParams.set("token", token);
  return url;
}

/**
 * A WebSocket subscription that reconnects with backoff and resumes.
 *
 * subscribe(): the message to send on each (re)connection (it carries the newest
 *   `since` the page holds, so nothing is missed or seen twice).
 * onMessage(message): each message from the server, parsed.
 * onState(state): "connecting", "live" (subscribed), "reconnecting", "offline" or "closed".
 * check(): awaited before a reconnection, to ask for the token if the server now
 *   wants one (a browser does not tell why a WebSocket was refused).
 */
export class Stream {
  constructor({ subscribe, onMessage, onState, check }) {
    this.subscribe = subscribe;
    this.onMessage = onMessage;
    this.onState = onState;
    this.check = check;
    this.socket = null;
    this.failures = 0;
    this.failingSince = null;
    this.closed = false;
    this.timer = null;
  }

  start() {
    this.onState("connecting");
    this.connect();
  }

  /** Send the subscribe message again on the open socket (the page changed what it asks
   * the server for); a closed one asks for it when it reconnects. */
  resubscribe() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(this.subscribe()));
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "page closed the stream");
    this.onState("closed");
  }

  connect() {
    const socket = new WebSocket(socketUrl());
    this.socket = socket;
    socket.addEventListener("open", () => socket.send(JSON.stringify(this.subscribe())));
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours: the server only sends JSON
      }
      if (message.type === "subscribed") {
        this.failures = 0;
        this.failingSince = null;
        this.onState("live");
      }
      this.onMessage(message);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket || this.closed) return;
      this.retry();
    });
  }

  retry() {
    this.failures += 1;
    const now = performance.now() / 1000;
    this.failingSince = this.failingSince ?? now;
    this.onState(now - this.failingSince > OFFLINE_AFTER ? "offline" : "reconnecting");
    const delay = Math.min(MOST_DELAY, FIRST_DELAY * 2 ** (this.failures - 1));
    this.timer = setTimeout(async () => {
      if (this.closed) return;
      try {
        await this.check();
      } catch {
        // the server is away: the socket will fail too, and count as one more failure
      }
      if (!this.closed) this.connect();
    }, delay * (0.75 + Math.random() * 0.5) * 1000);
  }
}
