import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import { REASON_LABEL, stageMarks } from '../src/marks';
import { COLOUR, ICON, STAGE_STATUSES } from '../src/status';
import type { IPlan, IRun, IStageRun, ReasonKind } from '../src/tokens';

function stage(name: string, status: IStageRun['status'], kind: ReasonKind = 'first-run'): IStageRun {
  return {
    name,
    status,
    started_at: '2026-11-30T10:00:00',
    ended_at: '2026-11-30T10:00:02',
    duration_s: 2,
    metrics: {},
    error: null,
    has_notebook: true,
    reason: { kind, detail: `${name} because ${kind}` }
  };
}

function run(status: IRun['status'], stages: IStageRun[]): IRun {
  return {
    id: '20261130-100000-ab12cd',
    status,
    started_at: '2026-11-30T10:00:00',
    ended_at: null,
    notebook: 'nb.ipynb',
    params: {},
    metrics: {},
    duration_s: null,
    executor: 'local',
    stages
  };
}

const plan: IPlan = {
  notebook: 'nb.ipynb',
  stages: [
    { name: 'a', action: 'reuse', reason: { kind: 'cached', detail: 'same key' }, reads: [] },
    { name: 'b', action: 'run', reason: { kind: 'code', detail: 'cell 5 (x = 1) changed' }, reads: [] },
    { name: 'c', action: 'run', reason: { kind: 'upstream', detail: "upstream stage 'b' runs first" }, reads: [] }
  ]
};

test('stages the plan would run are stale, with the reason; the others show their last status', () => {
  const marks = stageMarks(
    plan,
    run('succeeded', [stage('a', 'succeeded'), stage('b', 'succeeded'), stage('c', 'cached')])
  );
  assert.equal(marks.get('a')?.mark, 'succeeded');
  assert.match(marks.get('a')?.label ?? '', /^✓ succeeded/);
  assert.equal(marks.get('b')?.mark, 'stale');
  assert.equal(marks.get('b')?.label, 'stale · code changed');
  assert.match(marks.get('b')?.title ?? '', /cell 5 \(x = 1\) changed/);
  assert.equal(marks.get('c')?.label, 'stale · upstream changed');
});

test('a stage that failed keeps its failed mark (it runs again anyway), and a new stage has none', () => {
  const marks = stageMarks(plan, run('failed', [stage('a', 'succeeded'), stage('b', 'failed')]));
  assert.equal(marks.get('b')?.mark, 'failed');
  assert.match(marks.get('b')?.label ?? '', /^✗ failed/);
  assert.equal(marks.has('c'), false);
});

test('nothing is marked before the first run, and a run in progress shows its statuses, not the plan', () => {
  assert.equal(stageMarks(plan, null).size, 0);
  const marks = stageMarks(plan, run('running', [stage('a', 'cached'), stage('b', 'running'), stage('c', 'pending')]));
  assert.deepEqual(
    [...marks.values()].map(m => m.mark),
    ['cached', 'running', 'pending']
  );
  assert.match(marks.get('a')?.title ?? '', /cached at .*\(first-run: a because first-run\)/);
});

test('the status table mirrors nbops/status.py', () => {
  assert.deepEqual([...STAGE_STATUSES], ['pending', 'running', 'succeeded', 'failed', 'cached', 'skipped']);
  assert.equal(ICON.cached, '↺');
  assert.equal(COLOUR.failed, '#c62828');
  assert.equal(Object.keys(REASON_LABEL).length, 10);
});
