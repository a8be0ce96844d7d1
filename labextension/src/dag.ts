/**
 * The stage DAG as a small SVG: stages in layers (longest path from a root),
 * top to bottom, each edge labelled with the variables it carries. Enough for
 * the tens of stages a notebook has; no graph library needed.
 */
import { IGraph } from './tokens';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_H = 26;
const LAYER_GAP = 56;
const NODE_GAP = 14;
const CHAR_W = 7;
const MARGIN = 8;
const LANE_GAP = 14;

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  text?: string
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Layer of each stage: 0 for a root, else one below its deepest upstream. */
export function layers(graph: Pick<IGraph, 'stages' | 'edges'>): Map<string, number> {
  const names = graph.stages.map(s => s.name);
  const upstream = new Map<string, Set<string>>(names.map(n => [n, new Set<string>()]));
  for (const s of graph.stages) {
    s.upstream.forEach(u => upstream.get(s.name)?.add(u));
  }
  for (const e of graph.edges) {
    upstream.get(e.target)?.add(e.source);
  }
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (n: string): number => {
    const known = layer.get(n);
    if (known !== undefined) {
      return known;
    }
    if (visiting.has(n)) {
      return 0; // a cycle: the graph reports it as an error; just draw something
    }
    visiting.add(n);
    let l = 0;
    for (const u of upstream.get(n) ?? []) {
      if (upstream.has(u)) {
        l = Math.max(l, visit(u) + 1);
      }
    }
    visiting.delete(n);
    layer.set(n, l);
    return l;
  };
  names.forEach(visit);
  return layer;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, Math.max(1, max - 1)) + '…';
}

/** Render the DAG; `colors` maps stage name to a CSS colour. */
export function renderDag(graph: IGraph, colors: Map<string, string>): SVGSVGElement {
  const layer = layers(graph);
  const rows: string[][] = [];
  for (const s of graph.stages) {
    const l = layer.get(s.name) ?? 0;
    (rows[l] = rows[l] ?? []).push(s.name);
  }
  const nodeW = new Map(graph.stages.map(s => [s.name, Math.max(60, s.name.length * CHAR_W + 20)]));
  const rowWidth = (row: string[]) => row.reduce((w, n) => w + (nodeW.get(n) ?? 60), 0) + NODE_GAP * (row.length - 1);
  const width = Math.max(200, ...rows.filter(Boolean).map(rowWidth)) + 2 * MARGIN;
  const pos = new Map<string, { x: number; y: number; w: number }>();
  rows.forEach((row, l) => {
    if (!row) {
      return;
    }
    let x = (width - rowWidth(row)) / 2;
    for (const n of row) {
      const w = nodeW.get(n) ?? 60;
      pos.set(n, { x, y: MARGIN + l * (NODE_H + LAYER_GAP), w });
      x += w + NODE_GAP;
    }
  });
  const height = MARGIN * 2 + Math.max(1, rows.length) * (NODE_H + LAYER_GAP) - LAYER_GAP;

  const svg = el('svg', {
    class: 'nbops-Dag',
    viewBox: `0 0 ${width} ${height}`,
    width: '100%',
    role: 'img',
    'aria-label': 'Stage graph'
  });
  svg.style.maxHeight = `${Math.max(height, 60) * 1.5}px`;
  const defs = el('defs');
  const marker = el('marker', {
    id: 'nbops-arrow',
    viewBox: '0 0 10 10',
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: 'auto-start-reverse'
  });
  marker.appendChild(el('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'nbops-DagArrow' }));
  defs.appendChild(marker);
  svg.appendChild(defs);

  const edgeLayer = el('g');
  const labelLayer = el('g');
  // An edge that skips a layer would cross the nodes between: it runs in a lane
  // to the right of everything instead.
  const right = Math.max(...[...pos.values()].map(p => p.x + p.w), 0);
  let lanes = 0;
  for (const e of graph.edges) {
    const a = pos.get(e.source);
    const b = pos.get(e.target);
    if (!a || !b) {
      continue;
    }
    const x1 = a.x + a.w / 2;
    const y1 = a.y + NODE_H;
    const x2 = b.x + b.w / 2;
    const y2 = b.y;
    const span = (layer.get(e.target) ?? 0) - (layer.get(e.source) ?? 0);
    let d: string;
    let lx: number;
    let ly: number;
    let anchor = 'middle';
    if (span > 1) {
      const lane = right + LANE_GAP * (1 + lanes++);
      d =
        `M ${x1} ${y1} C ${x1} ${y1 + 18}, ${lane} ${y1 + 6}, ${lane} ${y1 + 30} ` +
        `L ${lane} ${y2 - 30} C ${lane} ${y2 - 6}, ${x2} ${y2 - 18}, ${x2} ${y2 - 2}`;
      lx = lane + 4;
      ly = (y1 + y2) / 2 + 4;
      anchor = 'start';
    } else {
      const dy = Math.max(20, (y2 - y1) / 2);
      d = `M ${x1} ${y1} C ${x1} ${y1 + dy}, ${x2} ${y2 - dy}, ${x2} ${y2 - 2}`;
      lx = (x1 + x2) / 2;
      ly = (y1 + y2) / 2 + 4;
    }
    const g = el('g', { class: 'nbops-DagEdge', 'data-source': e.source, 'data-target': e.target });
    g.appendChild(
      el('path', {
        d,
        class: e.explicit ? 'nbops-DagLine nbops-mod-explicit' : 'nbops-DagLine',
        'marker-end': 'url(#nbops-arrow)'
      })
    );
    g.appendChild(el('title', {}, `${e.source} → ${e.target}: ${e.variables.join(', ') || '(explicit after:)'}`));
    edgeLayer.appendChild(g);
    const label = e.variables.length ? truncate(e.variables.join(', '), 28) : 'after';
    labelLayer.appendChild(
      el(
        'text',
        {
          x: lx,
          y: ly,
          'text-anchor': anchor,
          class: 'nbops-DagLabel',
          'data-source': e.source,
          'data-target': e.target
        },
        label
      )
    );
  }
  const laneWidth = lanes ? LANE_GAP * lanes + 60 : 0;
  svg.setAttribute('viewBox', `0 0 ${width + laneWidth} ${height}`);
  svg.appendChild(edgeLayer);

  for (const s of graph.stages) {
    const p = pos.get(s.name);
    if (!p) {
      continue;
    }
    const g = el('g', { class: 'nbops-DagNode', 'data-stage': s.name });
    g.style.setProperty('--nbops-stage-color', colors.get(s.name) ?? 'var(--jp-border-color1)');
    g.appendChild(el('rect', { x: p.x, y: p.y, width: p.w, height: NODE_H, rx: 5 }));
    g.appendChild(el('text', { x: p.x + p.w / 2, y: p.y + NODE_H / 2 + 4, 'text-anchor': 'middle' }, s.name));
    const res = s.resources;
    const tip = [`stage ${s.name}: cells ${s.cells.join(', ')}`];
    if (res.gpus) {
      tip.push(`gpus ${res.gpus}`);
    }
    if (!s.cache) {
      tip.push('cache off');
    }
    g.appendChild(el('title', {}, tip.join('; ')));
    svg.appendChild(g);
  }
  svg.appendChild(labelLayer);
  return svg;
}
