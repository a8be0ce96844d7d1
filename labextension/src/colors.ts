/**
 * One colour per stage, from JupyterLab's theme variables so that light and
 * dark themes both give readable, distinct colours.
 */
const PALETTE = [
  '--jp-brand-color1',
  '--jp-accent-color1',
  '--jp-warn-color1',
  '--jp-mirror-editor-meta-color',
  '--jp-info-color1',
  '--jp-mirror-editor-string-color',
  '--jp-mirror-editor-keyword-color',
  '--jp-error-color1'
];

/** The CSS colour of the stage at `index` in stage order. */
export function stageColor(index: number): string {
  return `var(${PALETTE[((index % PALETTE.length) + PALETTE.length) % PALETTE.length]})`;
}

/** name -> colour for the stages of a graph, in their order. */
export function stageColors(names: readonly string[]): Map<string, string> {
  return new Map(names.map((n, i) => [n, stageColor(i)]));
}
