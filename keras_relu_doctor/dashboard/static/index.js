// The ReLU Doctor dashboard: runs (problems first), a run's findings and fixes, and per layer
// which unit died when. Plain JavaScript and SVG; the data come from this plugin's routes.

const SVG = 'http://www.w3.org/2000/svg';
const COLORS = {dead: '#c62828', near: '#ef8f00', live: [222, 235, 247], active: [33, 102, 172]};
const VERDICT_COLORS = {healthy: '#2e7d32', no_data: '#757575'};
const INFO_SHOWN = 3; // info findings listed one by one; past this they fold

export async function render() {
  addStyle();
  const page = el('div', {class: 'rd'});
  const list = el('nav', {class: 'runs'}, [el('p', {}, 'Reading the logdir…')]);
  const detail = el('main', {class: 'detail'});
  page.append(list, detail);
  document.body.appendChild(page);
  let runs;
  try {
    runs = await getJson('./runs');
  } catch (error) {
    list.replaceChildren(el('p', {class: 'error'}, `Could not read the runs: ${error.message}`));
    return;
  }
  if (!runs.length) {
    list.replaceChildren(el('p', {}, 'No run with ReluDoctor records in this logdir.'));
    return;
  }
  // Runs without records (Keras' validation folders: loss curves only) fold under the others.
  const measured = runs.filter((run) => run.verdict !== 'no_data');
  const empty = runs.filter((run) => run.verdict === 'no_data');
  const problems = measured.filter((run) => run.problems.length).length;
  const entry = (run) => runEntry(run, () => showRun(detail, run.run, list));
  list.replaceChildren(
    el('p', {class: 'count'}, `${measured.length} runs: ${problems} with problems`),
    ...measured.map(entry),
    empty.length ? el('details', {}, [el('summary', {}, `${empty.length} runs without ReluDoctor records`), ...empty.map(entry)]) : []
  );
  showRun(detail, (measured[0] || runs[0]).run, list);
}

function runEntry(run, onClick) {
  const entry = el('button', {class: 'run', 'data-run': run.run, title: run.run}, [
    badge(run.verdict),
    el('span', {class: 'name'}, run.run),
  ]);
  entry.addEventListener('click', onClick);
  return entry;
}

async function showRun(detail, name, list) {
  for (const button of list.querySelectorAll('button.run')) {
    button.classList.toggle('selected', button.dataset.run === name);
  }
  detail.replaceChildren(el('p', {}, `Reading ${name}…`));
  const run = await getJson('./run?' + new URLSearchParams({run: name}));
  const parts = [el('h2', {}, [badge(run.verdict), ' ', run.run])];
  const facts = factsLine(run.facts || {});
  if (facts) parts.push(el('p', {class: 'facts'}, facts));
  if (run.findings.length) {
    // Problems first; past INFO_SHOWN, the info lines fold (a network with partial deaths in every block).
    const rank = {error: 0, warning: 1, info: 2};
    const findings = [...run.findings].sort((a, b) => rank[a.severity] - rank[b.severity]);
    const infos = findings.filter((finding) => finding.severity === 'info');
    const shown = infos.length > INFO_SHOWN ? findings.filter((finding) => finding.severity !== 'info') : findings;
    parts.push(el('h3', {}, 'Findings'));
    parts.push(el('ul', {class: 'findings'}, shown.map(findingItem)));
    if (shown.length < findings.length) {
      parts.push(el('details', {}, [el('summary', {}, `${infos.length} info findings (partial deaths and other notes)`),
        el('ul', {class: 'findings'}, infos.map(findingItem))]));
    }
  }
  if (run.fixes.length) {
    parts.push(el('h3', {}, 'Fixes, best first'));
    parts.push(el('ol', {class: 'fixes'}, run.fixes.map((fix) => el('li', {}, [
      fix.text, ' ', el('small', {}, `(${[fix.layers.slice(0, 4).join(', '), fix.kinds.join(', ')].filter(Boolean).join(': ')})`),
    ]))));
  }
  const layerView = el('div', {class: 'layer'});
  // The chosen layer's pictures first, then the table to choose another.
  parts.push(layerView, el('h3', {}, `Layers (${run.layers.length}; click one)`), layersTable(run, layerView));
  detail.replaceChildren(...parts);
  // The layer the first problem is about (its root cause), else the first with something to say.
  const rooted = run.findings.find((finding) => finding.severity !== 'info' && finding.layer);
  const first = (rooted && run.layers.find((layer) => layer.name === rooted.layer)) ||
    run.layers.find((layer) => layer.noteworthy) || run.layers[0];
  if (first) showLayer(layerView, run.run, first.name, detail);
}

function findingItem(finding) {
  return el('li', {}, [
    el('span', {class: `severity ${finding.severity}`}, finding.severity),
    ' ', el('b', {}, finding.kind),
    finding.layer ? [' ', el('code', {}, finding.layer)] : [],
    finding.onset_step !== null ? ` from step ${finding.onset_step}` : '',
    ': ', finding.summary,
  ]);
}

function factsLine(facts) {
  const bits = [];
  if (facts.model) bits.push(`${facts.model.class || ''} ${facts.model.name || ''}, ${facts.model.parameters ?? '?'} parameters`);
  if (facts.optimizer) bits.push(`${facts.optimizer.class} at learning rate ${fmt(facts.optimizer.learning_rate)}`);
  if (facts.probe) bits.push(`probe: ${facts.probe.samples} samples, ${facts.probe.mode} mode, every ${facts.probe.update_freq}`);
  return bits.join(' · ');
}

function layersTable(run, layerView) {
  const shown = run.layers.filter((layer) => layer.noteworthy);
  const rest = run.layers.filter((layer) => !layer.noteworthy);
  const table = el('table', {class: 'layers'}, [
    el('thead', {}, el('tr', {}, ['layer', 'class', 'activation', 'units', 'dead', 'near-dead', 'first dead', 'gradient norm'].map((h) => el('th', {}, h)))),
  ]);
  const body = el('tbody');
  const addRows = (layers) => {
    for (const layer of layers) {
      const cells = layer.cells; // formatted by the report's own code (render/common.layer_row)
      const row = el('tr', {'data-layer': layer.name}, [
        el('td', {}, el('code', {}, layer.name)),
        el('td', {}, layer.class || ''),
        el('td', {}, layer.activation || ''),
        ...['units', 'dead', 'near-dead', 'first dead', 'gradient norm'].map((column) => el('td', {}, cells[column])),
      ]);
      row.addEventListener('click', () => showLayer(layerView, run.run, layer.name, table.parentNode));
      body.appendChild(row);
    }
  };
  addRows(shown);
  table.appendChild(body);
  if (rest.length) {
    const more = el('button', {class: 'more'}, `${rest.length} more layers with nothing to say`);
    more.addEventListener('click', () => { addRows(rest); more.remove(); });
    return el('div', {}, [table, more]);
  }
  return table;
}

async function showLayer(view, run, name, scope) {
  for (const row of (scope || document).querySelectorAll('tr[data-layer]')) {
    row.classList.toggle('selected', row.dataset.layer === name);
  }
  view.replaceChildren(el('p', {}, `Reading ${name}…`));
  const layer = await getJson('./layer?' + new URLSearchParams({run, layer: name}));
  const figures = [];
  if (layer.liveness && layer.liveness.rows.length) {
    figures.push(figure(heatmap(layer.liveness), 'which unit died when: units (first to die on top) by step'));
  } else {
    figures.push(el('p', {}, layer.liveness ? 'no units' : 'no per-unit records for this layer: no heatmap'));
  }
  figures.push(figure(linePlot(layer.steps, layer.dead_fraction, {share: true}), 'dead share of the units'));
  figures.push(figure(linePlot(layer.steps, layer.grad_norm, {log: true}),
    `gradient norm of the layer's ${layer.gradient_of} (log)`));
  view.replaceChildren(el('h3', {}, [el('code', {}, layer.name)]), el('div', {class: 'figures'}, figures));
}

function heatmap(map) {
  const rows = map.rows.length, cols = map.steps.length;
  const cellW = Math.max(3, Math.min(20, Math.floor(420 / cols))), cellH = Math.max(3, Math.min(14, Math.floor(320 / rows)));
  const left = 70, top = 6, width = left + cols * cellW + 8, height = top + rows * cellH + 34;
  const svg = svgEl('svg', {width, height, class: 'heatmap', role: 'img'});
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const dead = map.dead[r][c], near = map.near_dead[r][c], active = map.activity[r][c];
      const rect = svgEl('rect', {x: left + c * cellW, y: top + r * cellH, width: cellW, height: cellH, fill: cellColor(dead, near, active)});
      if (dead > 0) rect.setAttribute('class', 'dead');
      rect.appendChild(svgEl('title', {}, `units ${unitRange(map.rows[r])}, step ${map.steps[c]}: dead ${pct(dead)}` +
        (near > 0 ? `, near-dead ${pct(near)}` : '') + `, active on ${pct(active)} of samples`));
      svg.appendChild(rect);
    }
  }
  svg.appendChild(svgEl('text', {x: left - 4, y: top + 9, 'text-anchor': 'end'}, `unit ${map.rows[0][0]}`));
  svg.appendChild(svgEl('text', {x: left - 4, y: top + rows * cellH, 'text-anchor': 'end'}, `unit ${map.rows[rows - 1].at(-1)}`));
  const every = Math.max(1, Math.ceil(cols / 8));
  for (let c = 0; c < cols; c += every) {
    svg.appendChild(svgEl('text', {x: left + c * cellW + cellW / 2, y: top + rows * cellH + 13, 'text-anchor': 'middle'}, String(map.steps[c])));
  }
  svg.appendChild(svgEl('text', {x: left + (cols * cellW) / 2, y: height - 6, 'text-anchor': 'middle'}, 'step'));
  return svg;
}

function cellColor(dead, near, active) {
  if (dead > 0) return withAlpha(COLORS.dead, 0.35 + 0.65 * dead);
  if (near > 0) return withAlpha(COLORS.near, 0.35 + 0.65 * near);
  const t = Math.max(0, Math.min(1, active));
  const mix = COLORS.live.map((low, i) => Math.round(low + (COLORS.active[i] - low) * t));
  return `rgb(${mix.join(',')})`;
}

function linePlot(steps, values, {share = false, log = false} = {}) {
  const W = 360, H = 150, left = 46, right = 8, top = 8, bottom = 30, zeroBand = log ? 14 : 0;
  const svg = svgEl('svg', {width: W, height: H, class: 'plot', role: 'img'});
  const known = steps.map((s, i) => [s, values[i]]).filter(([, v]) => v !== null && v !== undefined);
  if (!known.length) {
    svg.appendChild(svgEl('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle'}, 'not logged'));
    return svg;
  }
  const x0 = steps[0], x1 = steps.at(-1) === x0 ? x0 + 1 : steps.at(-1);
  const plotH = H - top - bottom - zeroBand;
  const positive = known.filter(([, v]) => v > 0).map(([, v]) => Math.log10(v));
  let lo = 0, hi = 1;
  if (log && positive.length) {
    lo = Math.floor(Math.min(...positive)); hi = Math.ceil(Math.max(...positive));
    if (hi === lo) hi = lo + 1;
  }
  const px = (s) => left + ((s - x0) / (x1 - x0)) * (W - left - right);
  const py = (v) => {
    if (log) return v > 0 ? top + (1 - (Math.log10(v) - lo) / (hi - lo)) * plotH : top + plotH + zeroBand - 4;
    return top + (1 - v) * plotH;
  };
  svg.appendChild(svgEl('rect', {x: left, y: top, width: W - left - right, height: plotH, fill: '#fafafa', stroke: '#ddd'}));
  const ticks = share ? [0, 0.25, 0.5, 0.75, 1] : [];
  if (log && positive.length) for (let d = lo; d <= hi; d += Math.max(1, Math.ceil((hi - lo) / 5))) ticks.push(10 ** d);
  for (const t of ticks) {
    svg.appendChild(svgEl('line', {x1: left, x2: W - right, y1: py(t), y2: py(t), stroke: '#eee'}));
    svg.appendChild(svgEl('text', {x: left - 4, y: py(t) + 4, 'text-anchor': 'end'}, share ? pct(t) : `1e${Math.round(Math.log10(t))}`));
  }
  if (log) {
    svg.appendChild(svgEl('rect', {x: left, y: top + plotH + 2, width: W - left - right, height: zeroBand - 2, fill: '#fde7e7'}));
    svg.appendChild(svgEl('text', {x: left - 4, y: top + plotH + zeroBand - 1, 'text-anchor': 'end'}, '0'));
  }
  svg.appendChild(svgEl('polyline', {fill: 'none', stroke: '#1f5f8b', 'stroke-width': 1.6,
    points: known.map(([s, v]) => `${px(s).toFixed(1)},${py(v).toFixed(1)}`).join(' ')}));
  for (const [s, v] of known.length <= 40 ? known : []) {
    const dot = svgEl('circle', {cx: px(s), cy: py(v), r: 2.5, fill: '#1f5f8b'});
    dot.appendChild(svgEl('title', {}, `step ${s}: ${share ? pct(v) : fmt(v)}`));
    svg.appendChild(dot);
  }
  svg.appendChild(svgEl('text', {x: left, y: H - 8}, `step ${steps[0]}`));
  svg.appendChild(svgEl('text', {x: W - right, y: H - 8, 'text-anchor': 'end'}, String(steps.at(-1))));
  return svg;
}

function figure(content, caption) {
  return el('figure', {}, [content, el('figcaption', {}, caption)]);
}

function badge(verdict) {
  const color = VERDICT_COLORS[verdict] || '#b71c1c';
  return el('span', {class: 'badge', style: `background:${color}`}, verdict);
}

function unitRange(units) {
  return units.length === 1 ? String(units[0]) : `${units[0]}…${units.at(-1)} (${units.length})`;
}

function pct(value) {
  return value === null || value === undefined ? '-' : `${Math.round(value * 100)}%`;
}

function fmt(value) {
  if (value === null || value === undefined) return '-';
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3) ? value.toExponential(2) : String(+value.toPrecision(3));
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha.toFixed(2)})`;
}

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of [children].flat(3)) {
    if (child !== null && child !== undefined && child !== '') node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svgEl(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function addStyle() {
  const style = document.createElement('style');
  style.textContent = `
    body{font-family:Roboto,system-ui,sans-serif;margin:0;color:#212121;font-size:14px}
    .rd{display:flex;min-height:100vh}
    .runs{width:300px;flex:none;border-right:1px solid #e0e0e0;padding:8px;overflow:auto;max-height:100vh;box-sizing:border-box}
    .runs .count{color:#555;margin:4px 0 8px}
    button.run{display:flex;gap:6px;align-items:center;width:100%;text-align:left;border:0;background:none;padding:4px;cursor:pointer;font:inherit}
    button.run.selected,tr.selected{background:#e3f2fd}
    button.run .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
    .detail{flex:1;padding:8px 20px;overflow:auto;max-height:100vh;box-sizing:border-box}
    .badge{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px;font-weight:600;white-space:nowrap}
    .facts{color:#555}
    .severity{font-weight:600}.severity.error{color:#b71c1c}.severity.warning{color:#a15c00}.severity.info{color:#1f5f8b}
    table.layers{border-collapse:collapse}table.layers td,table.layers th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}
    table.layers tbody tr{cursor:pointer}
    button.more{margin:6px 0;font:inherit;cursor:pointer}
    .figures{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
    figure{margin:0;width:min-content;min-width:180px}figcaption{font-size:12px;color:#555}
    svg text{font-size:11px;fill:#444}
    .error{color:#b71c1c}
  `;
  document.head.appendChild(style);
}
