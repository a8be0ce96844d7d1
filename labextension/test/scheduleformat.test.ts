import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import {
  cronText,
  firingTime,
  firingTriggerText,
  intervalText,
  parseList,
  parseParams,
  scheduleBadges,
  triggerText
} from '../src/scheduleformat';

test('common cron shapes read as words, the others exactly as written', () => {
  assert.equal(cronText('0 3 * * *'), 'every day at 03:00');
  assert.equal(cronText('30 6 * * 1'), 'every Monday at 06:30');
  assert.equal(cronText('30 6 * * mon,fri'), 'every Monday, Friday at 06:30');
  assert.equal(cronText('0 7 * * 1-5'), 'every weekday at 07:00');
  assert.equal(cronText('*/15 * * * *'), 'every 15 min');
  assert.equal(cronText('5 * * * *'), 'every hour at :05');
  assert.equal(cronText('0 */2 * * *'), 'every 2 h at :00');
  assert.equal(cronText('0 9,17 * * *'), 'every day at 09:00, 17:00');
  assert.equal(cronText('0 0 1 * *'), 'on day 1 of every month at 00:00');
  assert.equal(cronText('@daily'), 'every day at 00:00');
  assert.equal(cronText('0 3 * 1 *'), 'cron 0 3 * 1 *');
  assert.equal(cronText('0 3 1 * 1'), 'cron 0 3 1 * 1');
  assert.equal(cronText('0-10 3 * * *'), 'cron 0-10 3 * * *');
  assert.equal(cronText('nonsense'), 'cron nonsense');
});

test('every trigger kind reads in words', () => {
  assert.equal(
    triggerText({ kind: 'cron', cron: '0 3 * * *', tz: 'Europe/Berlin' }),
    'every day at 03:00 Europe/Berlin'
  );
  assert.equal(triggerText({ kind: 'cron', cron: '0 3 * * *' }), 'every day at 03:00');
  assert.equal(triggerText({ kind: 'every', seconds: 600 }), 'every 10 min');
  assert.equal(triggerText({ kind: 'every', seconds: 86400 }), 'every day');
  assert.equal(triggerText({ kind: 'on_change', watch: ['data/*.csv'] }), 'when data/*.csv changes');
  assert.equal(
    triggerText({ kind: 'on_change', watch: ['a.csv', 'b.csv', 's3://x/y'] }),
    'when a.csv, b.csv or s3://x/y changes'
  );
  assert.equal(triggerText({ kind: 'on_change', watch: ['inputs'] }), 'when its inputs change');
  assert.equal(triggerText({ kind: 'after', schedule: 'nightly' }), 'after nightly');
});

test('intervals use the largest whole unit', () => {
  assert.equal(intervalText(30), '30 s');
  assert.equal(intervalText(90), '90 s');
  assert.equal(intervalText(3600), 'hour');
  assert.equal(intervalText(7200), '2 h');
  assert.equal(intervalText(172800), '2 days');
});

test('firing times keep the schedule zone wall clock', () => {
  assert.equal(firingTime('2026-12-01T03:00:00+01:00'), 'Dec 1 03:00 +01:00');
  assert.equal(firingTime('2026-03-29T03:00:00+00:00'), 'Mar 29 03:00 UTC');
  assert.equal(firingTime('2026-03-29T03:00:30Z'), 'Mar 29 03:00:30 UTC');
  assert.equal(firingTime(null), '');
  assert.equal(firingTime('soon'), 'soon');
});

test('what fired a run: changed files with their hash, run now, or the due time', () => {
  const files = [{ path: 'data/a.csv', hash: '1a2b3c4d5e6f', old: 'ffff' }];
  assert.equal(
    firingTriggerText({ key: 'change:abc', due_at: null, trigger: { files } }),
    'data/a.csv changed (hash 1a2b3c4d)'
  );
  assert.equal(firingTriggerText({ key: 'manual:x1', due_at: null, trigger: {} }), 'run now');
  assert.equal(firingTriggerText({ key: 'after:20261201-x', due_at: null, trigger: {} }), 'after run 20261201-x');
  assert.equal(
    firingTriggerText({ key: 'every:1764558000', due_at: '2026-12-01T03:00:00+00:00', trigger: {} }),
    'due Dec 1 03:00 UTC'
  );
});

test('badges: broken and paused', () => {
  assert.deepEqual(scheduleBadges({ paused: false, broken: null }), []);
  assert.deepEqual(scheduleBadges({ paused: true, broken: 'moved' }), ['broken', 'paused']);
});

test('lists and parameters typed in the form', () => {
  assert.deepEqual(parseList('data/*.csv, raw/*.json\nx.parquet'), ['data/*.csv', 'raw/*.json', 'x.parquet']);
  assert.deepEqual(parseParams('n_rows=1000, model=rf; flag=true, name="a b"'), {
    n_rows: 1000,
    model: 'rf',
    flag: true,
    name: 'a b'
  });
  assert.deepEqual(parseParams(''), {});
  assert.throws(() => parseParams('oops'), /"oops" is not name=value/);
});
