// Text for people, as jobwatch/view/formatting.py writes it, so a job reads the same in
// the notebook, the terminal and these pages. Pure functions; an unknown value is DASH.

export const DASH = "-";

function known(value) {
  return typeof value === "number" && Number.isFinite(value);
}

// `value` with `decimals` decimals as Python's format() writes it: rounded from the
// number's exact binary value, an exact tie to even. (toFixed rounds a tie up, 72.5
// to 73 where Python writes 72; Intl's halfEven rounds the shortest decimal, 12.345
// to 12.34 where Python writes 12.35.) `grouping`: thousands separated by commas.
function fixed(value, decimals, grouping = false) {
  let text = (Object.is(value, -0) ? "-" : "") + value.toFixed(decimals); // Python keeps -0's sign
  if (Math.abs(value) < 1e21) {
    const exact = Math.abs(value).toFixed(100); // a double's decimal expansion ends by then
    const cut = exact.indexOf(".") + (decimals ? decimals + 1 : 0);
    const kept = exact.slice(0, cut);
    if (/^50*$/.test(exact.slice(cut).replace(".", "")) && Number(kept.slice(-1)) % 2 === 0) {
      text = (value < 0 ? "-" : "") + kept; // the tie, to the even side
    }
  }
  if (!grouping) return text;
  const [whole, fraction] = text.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return fraction === undefined ? grouped : `${grouped}.${fraction}`;
}

/** "45s", "3m 12s", "1h 02m", "2d 03h" from seconds; "<1s" between 0 and 1; DASH when unknown. */
export function formatDuration(seconds) {
  if (!known(seconds)) return DASH;
  if (seconds > 0 && seconds < 1) return "<1s"; // time remaining never reads 0 before the end
  const total = Math.max(0, Number(fixed(seconds, 0)));
  if (total < 60) return `${total}s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes}m ${String(total % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${String(hours % 24).padStart(2, "0")}h`;
}

const COST_DIGITS = 3; // significant digits: enough to see a young job's cost move
const COST_DECIMALS = [2, 8]; // fewest and most decimals

/** "0.000694 QUBIC", "0.420 QUBIC", "1,234.50 QUBIC"; DASH when unknown. */
export function formatCost(value, currency) {
  if (!known(value)) return DASH;
  const [fewest, most] = COST_DECIMALS;
  let decimals = fewest;
  if (value !== 0) {
    const rounded = Number(Math.abs(value).toExponential(COST_DIGITS - 1)); // the digits shown
    const magnitude = Math.floor(Math.log10(rounded));
    decimals = Math.min(most, Math.max(fewest, COST_DIGITS - 1 - magnitude));
  }
  let text = fixed(value, decimals, true);
  if (value !== 0 && Number(text.replace(/,/g, "")) === 0) text = `<${(10 ** -most).toFixed(most)}`;
  return currency ? `${text} ${currency}` : text;
}

/** Costs in several currencies: "3.20 QUBIC + 1.10 USD"; DASH when there are none. */
export function formatMoney(amounts) {
  const parts = Object.entries(amounts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([currency, value]) => formatCost(value, currency));
  return parts.length ? parts.join(" + ") : DASH;
}

/** "87%", "72°C", "350 W": the value rounded to a whole number, then `unit`. */
export function formatMetric(value, unit) {
  return known(value) ? `${fixed(value, 0)}${unit}` : DASH;
}

/** "17.6/23.4 GiB" from MiB; one decimal from 1 GiB, two below. */
export function formatMemory(used, total) {
  if (!known(used) && !known(total)) return DASH;
  const digits = (known(total) ? total : used || 0) >= 1024 ? 1 : 2;
  const part = (value) => (known(value) ? fixed(value / 1024, digits) : DASH);
  return `${part(used)}/${part(total)} GiB`;
}

const RATE_UNITS = ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"];

/** "512 B/s", "1.5 KiB/s", "12.3 MiB/s": bytes per second in binary units, one decimal
 * from KiB/s (jobwatch/view/formatting.py format_rate); DASH when unknown. */
export function formatRate(value) {
  if (!known(value)) return DASH;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < RATE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${fixed(value, 0)} B/s` : `${fixed(value, 1)} ${RATE_UNITS[unit]}`;
}

/** "2.3 GiB", "0.45 GiB" from MiB: one decimal from 1 GiB, two below; DASH when unknown. */
export function formatSize(value) {
  return known(value) ? `${fixed(value / 1024, value >= 1024 ? 1 : 2)} GiB` : DASH;
}

/** The system line (jobwatch/view/formatting.py format_system): "CPU 45%  mem 12.1/31.2 GiB
 * process 2.3 GiB  disk 120.4/500.0 GiB  read 1.5 MiB/s write 0 B/s  net in 2.0 KiB/s out 512 B/s". */
export function formatSystem(m) {
  return (
    `CPU ${formatMetric(m.cpuUtilization, "%")}  ` +
    `mem ${formatMemory(m.memoryUsed, m.memoryTotal)}  ` +
    `process ${formatSize(m.processMemory)}  ` +
    `disk ${formatMemory(m.diskUsed, m.diskTotal)}  ` +
    `read ${formatRate(m.diskRead)} write ${formatRate(m.diskWrite)}  ` +
    `net in ${formatRate(m.networkIn)} out ${formatRate(m.networkOut)}`
  );
}

/** "99.9%": cut, not rounded, to one decimal, so 99.96 % never reads 100.0 %. */
export function formatPercent(progress) {
  const value = known(progress) ? Math.min(Math.max(progress, 0), 100) : 0;
  const tenths = Math.floor(value * 10 + 1e-9);
  return `${(tenths / 10).toFixed(1)}%`;
}

/** A training-metric value: 4 significant digits, as Python's "{:.4g}" ("0.2313",
 * "98.5", "1.2e-05", "1.235e+04"). */
export function formatNumber(value) {
  if (!known(value)) return DASH;
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const exponent = Math.floor(Math.log10(Math.abs(Number(value.toPrecision(4)))));
  const strip = (digits) => (digits.includes(".") ? digits.replace(/\.?0+$/, "") : digits);
  if (exponent < -4 || exponent >= 4) {
    const [mantissa, power] = value.toExponential(3).split("e");
    const sign = power.startsWith("-") ? "-" : "+";
    return `${strip(mantissa)}e${sign}${power.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  return strip(fixed(value, 3 - exponent));
}

/** Seconds since the epoch from an ISO 8601 timestamp; null when there is none. */
export function parseTime(text) {
  if (typeof text !== "string") return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms / 1000;
}

export const MAX_SHOWN_VALUE = 200; // jobwatch/view/config.py's MAX_SHOWN_VALUE

// A job's config as [key, value text] rows, sorted by key, as jobwatch/view/config.py's
// config_rows writes them: nested objects flattened to dotted keys, strings as they
// are, other values as JSON (Python's json.dumps spacing; numbers as JavaScript writes them,
// 1e-7 where Python writes 1e-07), each cut to MAX_SHOWN_VALUE.
export function configRows(config) {
  const rows = [];
  const walk = (prefix, value) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) {
      for (const [key, item] of Object.entries(value)) walk(prefix ? `${prefix}.${key}` : key, item);
    } else {
      rows.push([prefix, configValue(value)]);
    }
  };
  if (config !== null && typeof config === "object" && !Array.isArray(config)) {
    for (const [key, value] of Object.entries(config)) walk(key, value);
  }
  return rows.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function pythonJson(value) {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v)}`).join(", ")}}`;
  }
  if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) return String(BigInt(value));
  return JSON.stringify(value);
}

function configValue(value) {
  const text = typeof value === "string" ? value : pythonJson(value);
  const chars = Array.from(text); // code points, as Python counts
  return chars.length <= MAX_SHOWN_VALUE ? text : `${chars.slice(0, MAX_SHOWN_VALUE - 1).join("")}…`;
}
