import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import { formatAuthor, formatStore } from '../src/format';
import type { IRunList } from '../src/tokens';

// The shape `GET /nbops/runs` answers with over a team store.
const answer: IRunList = {
  store: {
    location: 'postgresql://alice:***@db.internal:5432/runs + s3://team-bucket',
    kind: 'postgresql',
    objects: 's3://team-bucket',
    shared_objects: true,
    source: 'NBOPS_STORE'
  },
  runs: [
    {
      id: '20261130-100000-ab12cd',
      status: 'succeeded',
      user: 'alice',
      host: 'build-7',
      started_at: '2026-11-30T10:00:00',
      ended_at: '2026-11-30T10:00:05',
      notebook: 'nb.ipynb',
      params: {},
      metrics: {},
      duration_s: 5
    }
  ]
};

test('a run is shown as user@host', () => {
  assert.equal(formatAuthor(answer.runs[0]), 'alice@build-7');
  assert.equal(formatAuthor({ user: 'alice', host: null }), 'alice');
  assert.equal(formatAuthor({ user: null, host: 'build-7' }), '?@build-7');
});

test('a record older than authors shows no author', () => {
  assert.equal(formatAuthor({}), '');
});

test('a team store is named with its kind and its masked location', () => {
  const line = formatStore(answer.store);
  assert.equal(line, 'team (postgresql) postgresql://alice:***@db.internal:5432/runs + s3://team-bucket');
  assert.ok(!line.includes('secret'));
});

test('an embedded store is local', () => {
  assert.equal(
    formatStore({ location: '/work/.nbops', kind: 'sqlite', objects: '/work/.nbops/objects' }),
    'local (sqlite) /work/.nbops'
  );
});
