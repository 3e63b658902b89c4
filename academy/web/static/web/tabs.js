// One event stream per browser: the page's open tabs (of one signed-in person) elect a
// leader with the Web Locks API; only the leader holds GET /api/jobbox/stream and shares each
// event with the other tabs over a BroadcastChannel. When the leader tab closes, the browser
// hands the lock to a waiting tab at once, which opens the stream from the last event id it
// was shared, so nothing is missed. A browser without Web Locks or BroadcastChannel gives each
// tab its own stream, as before. The tabs also tell each other whether they are visible, so a
// notification is shown only when no tab of the page is.
(() => {
  "use strict";

  const tabId = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : `${Date.now()}-${Math.random()}`;

  // `scope` names the person (two people signed in in turn must not share a stream);
  // handlers: lead() when this tab becomes the leader, event(message) for a shared event,
  // mode(name) for the leader's connection mode.
  function join(scope, handlers) {
    const shared = "BroadcastChannel" in window && navigator.locks;
    const channel = shared ? new BroadcastChannel(`jobbox-stream:${scope}`) : null;
    const visibleElsewhere = new Set();
    let leader = false;
    let leaderMode = null; // the leader's connection mode, told to tabs that join later

    function post(message) {
      if (channel) channel.postMessage({ ...message, from: tabId });
    }

    function announceVisibility() {
      post({ type: "visibility", visible: !document.hidden });
    }

    if (channel) {
      channel.onmessage = ({ data }) => {
        if (!data || data.from === tabId) return;
        if (data.type === "event" && !leader) handlers.event(data.event);
        else if (data.type === "mode" && !leader) handlers.mode(data.mode);
        else if (data.type === "visibility") {
          if (data.visible) visibleElsewhere.add(data.from);
          else visibleElsewhere.delete(data.from);
        } else if (data.type === "hello") {
          announceVisibility();
          if (leader && leaderMode) post({ type: "mode", mode: leaderMode });
        }
        else if (data.type === "bye") visibleElsewhere.delete(data.from);
      };
      document.addEventListener("visibilitychange", announceVisibility);
      window.addEventListener("pagehide", () => post({ type: "bye" }));
    }

    return {
      start() {
        if (!shared) {
          leader = true;
          handlers.lead();
          return;
        }
        post({ type: "hello" });
        announceVisibility();
        // Held for the tab's life: the promise never settles, the browser releases the lock
        // when the tab closes or navigates away.
        navigator.locks.request(`jobbox-stream:${scope}`, () => {
          leader = true;
          handlers.lead();
          return new Promise(() => {});
        });
      },
      isLeader: () => leader,
      shareEvent(event) { post({ type: "event", event }); },
      shareMode(mode) {
        leaderMode = mode;
        post({ type: "mode", mode });
      },
      // True when no tab of the page (this one included) can be seen.
      allHidden: () => document.hidden && visibleElsewhere.size === 0,
    };
  }

  // A system notification for a job that ended while nobody was looking. Permission is asked
  // only from a click (`askPermission`), never on load.
  function notifier(labels) {
    const supported = "Notification" in window;
    return {
      supported,
      granted: () => supported && Notification.permission === "granted",
      askPermission: () => (supported ? Notification.requestPermission() : Promise.resolve("denied")),
      show(key, title, body, onClick) {
        if (!supported || Notification.permission !== "granted") return null;
        const note = new Notification(title, { body, tag: key, lang: labels.lang });
        note.onclick = () => {
          window.focus();
          onClick();
          note.close();
        };
        return note;
      },
    };
  }

  window.JobboxTabs = { join, notifier };
})();
