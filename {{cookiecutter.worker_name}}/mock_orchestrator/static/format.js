// Formatting shared by the dashboard's views; `duration` is the CLI's human_duration (cli_format.py).
"use strict";

(() => {
  // Rounded to the smallest unit shown first, then split: 299.6 s is "5 min 0 s", never "4 min 60 s".
  function duration(value) {
    const v = Math.max(0, value);
    const millis = Math.round(v * 1000);
    if (millis < 1000) return `${millis} ms`;
    const tenths = Math.round(v * 10);
    if (tenths < 100) return `${(tenths / 10).toFixed(1)} s`;
    const seconds = Math.round(v);
    if (seconds < 60) return `${seconds} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
    const minutes = Math.round(v / 60);
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  // How long ago, in whole seconds below a minute; from a minute on, the same rule as `duration`.
  function ago(epoch, now = Date.now() / 1000) {
    const age = Math.max(0, now - epoch);
    if (age < 2) return "just now";
    const seconds = Math.round(age);
    return seconds < 60 ? `${seconds} s ago` : `${duration(age)} ago`;
  }

  window.MockFormat = Object.freeze({ duration, ago });
})();
