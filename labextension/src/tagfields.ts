/**
 * The Cell section's fields for a stage's policy: upstream stages (after:),
 * resources and cache:off. Each change goes back through `actions`, which
 * writes the tags into the cell model.
 */
import { h } from './dom';
import { ICellTags, RESOURCE_KEYS, ResourceKey, setAfter, setCacheOff } from './tags';

export interface IPolicyActions {
  /** Rewrite the active cell's tags. */
  edit: (edit: (tags: string[]) => string[]) => void;
  /** Set one resource (validated by the caller, which shows a problem). */
  setResource: (key: ResourceKey, value: string) => void;
}

/** The fields for `tags`; `afterChoices`: the other stages, which this one may follow. */
export function policyFields(tags: ICellTags, afterChoices: string[], actions: IPolicyActions): Node[] {
  const fields: Node[] = [];
  if (afterChoices.length || tags.after.length) {
    const names = [...afterChoices, ...tags.after.filter(a => !afterChoices.includes(a))];
    fields.push(
      h(
        'div',
        { className: 'nbops-Row nbops-After' },
        h('label', {}, 'After'),
        h(
          'div',
          { className: 'nbops-Checks' },
          ...names.map(name =>
            h(
              'label',
              { className: 'nbops-Check' },
              h('input', {
                type: 'checkbox',
                'aria-label': `after ${name}`,
                'data-field': `after-${name}`,
                checked: tags.after.includes(name),
                onchange: (e: Event) => {
                  const on = (e.target as HTMLInputElement).checked;
                  const next = on ? [...tags.after, name] : tags.after.filter(a => a !== name);
                  actions.edit(t => setAfter(t, next));
                }
              }),
              name
            )
          )
        )
      )
    );
  }

  const grid = h('div', { className: 'nbops-Resources' });
  for (const key of RESOURCE_KEYS) {
    const input = h('input', {
      className: 'jp-mod-styled nbops-Input',
      type: 'text',
      'aria-label': key,
      'data-field': key,
      value: tags.resources[key] ?? '',
      placeholder: key === 'memory' ? '4Gi' : key === 'timeout' ? '600' : '',
      title: key === 'timeout' ? 'timeout in seconds' : key === 'memory' ? 'memory, e.g. 512M or 4Gi' : key,
      onkeydown: (e: Event) => {
        if ((e as KeyboardEvent).key === 'Enter') {
          (e.target as HTMLInputElement).blur();
        }
      },
      onchange: (e: Event) => actions.setResource(key, (e.target as HTMLInputElement).value)
    });
    grid.append(h('label', { className: 'nbops-ResourceLabel' }, key), input);
  }
  fields.push(grid);

  fields.push(
    h(
      'label',
      { className: 'nbops-Check' },
      h('input', {
        type: 'checkbox',
        'aria-label': 'cache:off',
        'data-field': 'cache',
        checked: tags.cacheOff,
        onchange: (e: Event) => {
          const off = (e.target as HTMLInputElement).checked;
          actions.edit(t => setCacheOff(t, off));
        }
      }),
      'cache:off (always rerun this stage)'
    )
  );
  return fields;
}
