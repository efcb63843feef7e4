import { h } from '../dom.js';

export const title = 'Not found';

export function render(root, params) {
  root.append(
    h(
      'section',
      { class: 'panel' },
      h('h1', null, 'No such page'),
      h('p', null, `${params.path ?? location.pathname} is not a page of the console. `, h('a', { href: '/' }, 'Back to the overview'), '.'),
    ),
  );
}
