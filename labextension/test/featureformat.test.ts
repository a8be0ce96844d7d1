import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import { formatLag, freshnessLabel, timeRange } from '../src/featureformat';
import type { IFreshness } from '../src/tokens';

const never: IFreshness = {
  name: 'orders',
  online: '/work/.nbops/online.db',
  materialized: false,
  status: 'never',
  materialized_at: null,
  age_seconds: null,
  version: null,
  latest_version: 1,
  versions_behind: null,
  max_ts: null,
  offline_max_ts: '2026-11-02T00:00:00+00:00',
  lag_seconds: null,
  rows: null,
  summary: 'not materialized in /work/.nbops/online.db: nbops features materialize orders'
};

test('lags read in the largest unit that fits', () => {
  assert.equal(formatLag(null), '');
  assert.equal(formatLag(44.6), '45 s');
  assert.equal(formatLag(720), '12 min');
  assert.equal(formatLag(3.5 * 3600), '3.5 h');
  assert.equal(formatLag(86400), '1 d');
});

test('freshness in a word or three', () => {
  assert.equal(freshnessLabel(never), 'not materialized');
  const behind = {
    ...never,
    materialized: true,
    status: 'behind' as const,
    version: 1,
    latest_version: 3,
    versions_behind: 2
  };
  assert.equal(freshnessLabel(behind), '2 versions behind');
  assert.equal(freshnessLabel({ ...behind, versions_behind: 1 }), '1 version behind');
  assert.equal(freshnessLabel({ ...behind, status: 'fresh', versions_behind: 0 }), 'fresh');
});

test('a time range shows dates alone at midnight UTC', () => {
  assert.equal(timeRange('2026-11-01T00:00:00+00:00', '2026-11-02T00:00:00+00:00'), '2026-11-01 → 2026-11-02');
  assert.equal(timeRange('2026-11-01T08:30:00', '2026-11-01T08:30:00'), '2026-11-01T08:30:00');
  assert.equal(timeRange(null, '2026-11-01'), '');
});
