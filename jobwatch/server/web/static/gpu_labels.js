// Which GPU a per-GPU sample is: its key (for chart lines) and its label (for
// people), by the rules of jobwatch/contract/gpu_identity.py. A GPU is keyed by its uuid
// (a MIG slice by its MIG UUID), by its index only without one, by its place in
// the list without either: a MIG GPU's slices all report their parent's index,
// and keyed by index they would merge into one line. Labels read "GPU 0" while no
// other GPU shown has index 0; GPUs sharing an index get their MIG profile, else
// or also the first 8 hex digits of their uuid (the whole uuid where those are
// shared), else their place among them ("#1", "#2").

const MIG_PROFILE = /\bMIG\s+(\d+g\.\d+gb)\b/i;
const SHORT_UUID = 8;

function text(value) {
  return typeof value === "string" && value ? value : null;
}

/** The identity {key, number, uuid, name} of each entry of a sample's `gpus` list. */
export function gpuIds(gpus) {
  const seen = new Map();
  return gpus.map((gpu, position) => {
    const hasIndex = Number.isInteger(gpu.index);
    const uuid = text(gpu.uuid);
    let key = uuid ?? (hasIndex ? `index:${gpu.index}` : `position:${position}`);
    const count = (seen.get(key) ?? 0) + 1;
    seen.set(key, count);
    if (count > 1) key = `${key}#${count}`;
    return { key, number: hasIndex ? gpu.index : position, uuid, name: text(gpu.name) };
  });
}

function order(a, b) {
  return a.number - b.number || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

function migProfile(name) {
  const found = MIG_PROFILE.exec(name ?? "");
  return found ? found[1] : null;
}

function shortUuid(uuid) {
  if (uuid === null) return null;
  const dash = uuid.indexOf("-");
  if (dash < 0) return uuid.slice(0, SHORT_UUID);
  return uuid.slice(0, dash + 1) + uuid.slice(dash + 1, dash + 1 + SHORT_UUID);
}

/** [{key, label}] of the GPUs shown together, in display order; labels all differ. */
export function gpuLabels(ids) {
  const unique = new Map();
  for (const id of ids) if (!unique.has(id.key)) unique.set(id.key, id);
  const groups = new Map();
  for (const id of [...unique.values()].sort(order)) {
    if (!groups.has(id.number)) groups.set(id.number, []);
    groups.get(id.number).push(id);
  }
  const lines = [];
  for (const [number, group] of groups) {
    if (group.length === 1) {
      lines.push({ key: group[0].key, label: `GPU ${number}` });
      continue;
    }
    const profiles = group.map((id) => migProfile(id.name));
    const profilesDiffer = !profiles.includes(null) && new Set(profiles).size === profiles.length;
    const shorts = group.map((id) => shortUuid(id.uuid));
    const shortsDiffer = new Set(shorts).size === shorts.length;
    group.forEach((id, place) => {
      const parts = profiles[place] ? [`MIG ${profiles[place]}`] : [];
      if (!profilesDiffer) {
        if (id.uuid === null) parts.push(`#${place + 1}`);
        else parts.push(shortsDiffer ? shorts[place] : id.uuid);
      }
      lines.push({ key: id.key, label: `GPU ${number} (${parts.join(", ")})` });
    });
  }
  // a label met again (two GPUs of one uuid) gets " #2", " #3"...
  const seen = new Map();
  const taken = new Set(lines.map((line) => line.label));
  for (const line of lines) {
    const count = (seen.get(line.label) ?? 0) + 1;
    seen.set(line.label, count);
    if (count > 1) {
      let n = count;
      while (taken.has(`${line.label} #${n}`)) n += 1;
      line.label = `${line.label} #${n}`;
      taken.add(line.label);
    }
  }
  return lines;
}

/** The GPUs of JobState samples, one line each ({key, label}), numbered as the newest says. */
export function gpuLines(samples) {
  const newest = new Map();
  for (const s of samples) for (const [key, id] of Object.entries(s.ids)) newest.set(key, id);
  return gpuLabels(newest.values());
}
