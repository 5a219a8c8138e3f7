// Terminal text as a terminal shows it: the rules of jobwatch/view/ansi.py, in the browser.
//
// The notebook's log view gets lines already parsed by Python (jobwatch.view.ansi.spans
// and spans_to_wire); the web page gets them raw from the API, so it parses them
// here into the same wire form, {message, spans}, that logview.js draws. Keep the
// two in step: tests/browser/test_pages_rules.py runs both on the same texts and
// requires identical results.
//
// - SGR (ESC [ ... m) sets colours and bold/dim/italic/underline/inverse: 16
//   palette colours, 256 indexed and 24-bit colours, ";" or ":" separated.
// - "\r" returns to the start of the line: the text after a line's last "\r"
//   replaces what was before it (tqdm's frames); a "\r" with nothing after it
//   changes nothing.
// - Every other escape sequence and every other C0/C1 control but tab and
//   newline is removed.
// Why not a library: the ones that parse SGR in JavaScript emit HTML strings
// (which the page must never parse) or follow other rules than the notebook's.

const TOKEN = new RegExp(
  [
    "(?<csi>(?:\\x1b\\[|\\x9b)(?<params>[0-?]*)(?<inter>[ -/]*)(?<final>[@-~])?)",
    "(?<string>(?:\\x1b[\\]PX^_]|[\\x90\\x98\\x9d\\x9e\\x9f])[^\\x07\\x1b\\x9c]*(?:\\x07|\\x1b\\\\|\\x9c)?)",
    "(?<esc>\\x1b[ -/]*[0-~]?)",
    "(?<cr>\\r)",
    "(?<control>[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f])",
    "(?<text>[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]+)",
  ].join("|"),
  "gu",
);

// The six levels of xterm's 6x6x6 colour cube (indexed colours 16-231).
const CUBE = [0, 95, 135, 175, 215, 255];
const FLAGS = ["bold", "dim", "italic", "underline"];
const DEFAULT = Object.freeze({
  fg: null, // null (the default colour), a palette index 0-15 or "#rrggbb"
  bg: null,
  bold: false,
  dim: false,
  italic: false,
  underline: false,
  inverse: false,
});
const SIMPLE = {
  1: { bold: true },
  2: { dim: true },
  3: { italic: true },
  7: { inverse: true },
  21: { underline: true }, // doubly underlined, drawn as underlined
  22: { bold: false, dim: false },
  23: { italic: false },
  24: { underline: false },
  27: { inverse: false },
  39: { fg: null },
  49: { bg: null },
};

function sameStyle(a, b) {
  return Object.keys(DEFAULT).every((key) => a[key] === b[key]);
}

function isPlain(style) {
  return sameStyle(style, DEFAULT);
}

// An SGR parameter; empty (or garbage) counts as 0, as terminals do.
function parameter(text) {
  return /^[0-9]+$/.test(text) ? Number(text) : 0;
}

function hex(rgb) {
  return "#" + rgb.map((c) => Math.min(Math.max(c, 0), 255).toString(16).padStart(2, "0")).join("");
}

// xterm's 256-colour index: 0-15 the palette, 16-231 the cube, 232-255 greys.
function indexed(n) {
  if (!(n >= 0 && n <= 255)) return null;
  if (n < 16) return n;
  if (n < 232) {
    const m = n - 16;
    return hex([CUBE[Math.floor(m / 36)], CUBE[Math.floor(m / 6) % 6], CUBE[m % 6]]);
  }
  const grey = 8 + 10 * (n - 232);
  return hex([grey, grey, grey]);
}

// [5, n] or [2, (colourspace,) r, g, b] as a palette index or "#rrggbb".
function extended(parts, colon) {
  if (parts[0] === 5 && parts.length >= 2) return indexed(parts[1]);
  if (parts[0] === 2) {
    const rgb = colon && parts.length >= 5 ? parts.slice(2, 5) : parts.slice(1, 4);
    if (rgb.length === 3) return hex(rgb);
  }
  return null;
}

// The colour after "38;"/"48;" and how many parameters it took.
function extendedSemicolon(rest) {
  if (rest[0] === 5) return [extended(rest.slice(0, 2), false), Math.min(2, rest.length)];
  if (rest[0] === 2) return [extended(rest.slice(0, 4), false), Math.min(4, rest.length)];
  return [null, 0];
}

function simpleSgr(style, code, group) {
  if (code === 0) return DEFAULT;
  let changes = SIMPLE[code] || null;
  if (code === 4) changes = { underline: group.length < 2 || parameter(group[1]) !== 0 };
  else if (code >= 30 && code <= 37) changes = { fg: code - 30 };
  else if (code >= 40 && code <= 47) changes = { bg: code - 40 };
  else if (code >= 90 && code <= 97) changes = { fg: code - 90 + 8 };
  else if (code >= 100 && code <= 107) changes = { bg: code - 100 + 8 };
  return changes ? { ...style, ...changes } : style;
}

// `style` after one SGR sequence with parameter string `params`.
function applySgr(style, params) {
  if (params && !/[0-9;:]/.test(params[0])) return style; // private parameters (<=>?): not SGR
  const groups = params ? params.split(";").map((group) => group.split(":")) : [["0"]];
  const codes = groups.map((group) => parameter(group[0]));
  for (let i = 0; i < groups.length; i += 1) {
    const code = codes[i];
    const group = groups[i];
    if (code === 38 || code === 48) {
      let colour;
      if (group.length > 1) {
        colour = extended(group.slice(1).map(parameter), true); // all in one group
      } else {
        let used;
        [colour, used] = extendedSemicolon(codes.slice(i + 1));
        i += used;
      }
      if (colour !== null) style = { ...style, [code === 38 ? "fg" : "bg"]: colour };
    } else {
      style = simpleSgr(style, code, group);
    }
  }
  return style;
}

// Append a run; merge into the last one when in the same style (never across a
// line start, which a later "\r" must find at its own index).
function add(runs, text, style, merge) {
  if (!text) return;
  const last = runs[runs.length - 1];
  if (merge && sameStyle(last.style, style)) last.text += text;
  else runs.push({ text, style });
}

/**
 * `text` as a terminal shows it, in styled runs [{text, style}] (adjacent runs
 * differ in style); jobwatch.view.ansi.spans in Python.
 */
export function spans(text) {
  const runs = [];
  let lineStart = 0; // index in runs where the current line starts
  let style = DEFAULT;
  let carriage = false; // a \r seen: the next text on this line replaces the line
  for (const match of String(text).matchAll(TOKEN)) {
    const token = match.groups;
    if (token.cr !== undefined) {
      carriage = true;
    } else if (token.csi !== undefined) {
      if (token.final === "m" && !token.inter) style = applySgr(style, token.params);
    } else if (token.text !== undefined) {
      let chunk = token.text;
      while (chunk) {
        const end = chunk.indexOf("\n");
        const head = end < 0 ? chunk : chunk.slice(0, end);
        const newline = end < 0 ? "" : "\n";
        chunk = end < 0 ? "" : chunk.slice(end + 1);
        if (head && carriage) {
          runs.length = lineStart;
          carriage = false;
        }
        add(runs, head + newline, style, runs.length > lineStart);
        if (newline) {
          lineStart = runs.length;
          carriage = false;
        }
      }
    }
  }
  return runs;
}

/**
 * Runs as the log view's JSON, [{text, fg?, bg?, bold?, dim?, italic?, underline?}]:
 * bold text in one of the first 8 colours takes its bright one (8-15), as JupyterLab
 * draws a cell's output; then inverse is resolved (a default colour swapped becomes
 * "inverse"); null when no run is styled. jobwatch.view.ansi.spans_to_wire in Python.
 */
export function spansToWire(runs) {
  if (runs.every((run) => isPlain(run.style))) return null;
  return runs.map(({ text, style }) => {
    const item = { text };
    let fg = style.fg;
    if (style.bold && Number.isInteger(fg) && fg < 8) fg += 8;
    let bg = style.bg;
    if (style.inverse) [fg, bg] = [bg, fg];
    if (style.inverse) {
      fg = fg === null ? "inverse" : fg;
      bg = bg === null ? "inverse" : bg;
    }
    if (fg !== null) item.fg = fg;
    if (bg !== null) item.bg = bg;
    for (const flag of FLAGS) if (style[flag]) item[flag] = true;
    return item;
  });
}

/**
 * A log line from the API ({id, level, timestamp, message}) as the log view draws
 * it: `message` as a terminal shows it and, for a line with colours, `spans`.
 */
export function drawnLine(line) {
  const runs = spans(line.message);
  const drawn = {
    id: line.id,
    level: String(line.level).toLowerCase(),
    timestamp: line.timestamp,
    message: runs.map((run) => run.text).join(""),
  };
  const styled = spansToWire(runs);
  if (styled) drawn.spans = styled;
  if (Number.isInteger(line.rank)) {
    drawn.rank = line.rank; // a distributed job's line: its rank and node
    if (typeof line.node === "string") drawn.node = line.node;
  }
  return drawn;
}
