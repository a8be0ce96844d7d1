import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import {
  clearNbopsTags,
  isValidStageName,
  readTags,
  resourceProblem,
  setAfter,
  setCacheOff,
  setResource,
  setRole,
  setStage
} from '../src/tags';

test('readTags reads the nbops vocabulary and Kale aliases', () => {
  const t = readTags([
    'step:train',
    'prev:load',
    'after:features',
    'limit:nvidia.com/gpu:2',
    'memory:4Gi',
    'cache:off',
    'pipeline-metrics',
    'mine'
  ]);
  assert.equal(t.stage, 'train');
  assert.deepEqual(t.after, ['load', 'features']);
  assert.equal(t.resources.gpus, '2');
  assert.equal(t.resources.memory, '4Gi');
  assert.equal(t.role, 'metrics');
  assert.equal(t.cacheOff, true);
  assert.deepEqual(t.other, ['mine']);
});

test('readTags tolerates missing and malformed metadata', () => {
  assert.equal(readTags(undefined).stage, null);
  assert.equal(readTags('stage:x').stage, null);
  assert.equal(readTags([3, null, ' stage:a ']).stage, 'a');
});

test('setStage replaces every stage alias, in place, and keeps other tags', () => {
  assert.deepEqual(setStage(['x', 'block:a', 'y', 'step:b'], 'train'), ['x', 'stage:train', 'y']);
  assert.deepEqual(setStage(['x'], 'load'), ['x', 'stage:load']);
  assert.deepEqual(setStage(['stage:a', 'gpus:1'], null), ['gpus:1']);
});

test('setStage refuses a name the CLI would refuse', () => {
  assert.throws(() => setStage([], '1load'), /not a valid stage name/);
  assert.throws(() => setStage([], 'a-b'), /not a valid stage name/);
  assert.throws(() => setStage([], 'é'), /not a valid stage name/);
  assert.throws(() => setStage([], ''), /not a valid stage name/);
  assert.equal(isValidStageName('_train2'), true);
});

test('Python keywords are stage names, as in nbops/notebook/tags.py (the CLI runs stage:class)', () => {
  assert.equal(isValidStageName('class'), true);
  assert.equal(isValidStageName('lambda'), true);
  assert.deepEqual(setStage([], 'class'), ['stage:class']);
  assert.deepEqual(setAfter([], ['def']), ['after:def']);
  assert.equal(readTags(['step:import']).stage, 'import');
});

test('setRole keeps one role and writes the nbops spelling', () => {
  assert.deepEqual(setRole(['imports', 'x'], 'skip'), ['skip', 'x']);
  assert.deepEqual(setRole(['pipeline-parameters'], 'parameters'), ['parameters']);
  assert.deepEqual(setRole(['setup', 'functions', 'stage:a'], null), ['stage:a']);
  assert.deepEqual(setRole([], 'metrics'), ['metrics']);
});

test('setAfter writes after: tags, deduplicated, replacing prev:', () => {
  assert.deepEqual(setAfter(['prev:a', 'stage:c'], ['a', 'b', 'a']), ['after:a', 'after:b', 'stage:c']);
  assert.deepEqual(setAfter(['after:a', 'stage:c'], []), ['stage:c']);
  assert.throws(() => setAfter([], ['no good']));
});

test('setResource sets, replaces (Kale alias too) and removes', () => {
  assert.deepEqual(setResource(['limit:nvidia.com/gpu:1', 'x'], 'gpus', '2'), ['gpus:2', 'x']);
  assert.deepEqual(setResource(['gpus:2'], 'gpus', ''), []);
  assert.deepEqual(setResource([], 'memory', '512 M'), ['memory:512M']);
  assert.deepEqual(setResource(['cpus:1'], 'cpus', '0.5'), ['cpus:0.5']);
  assert.deepEqual(setResource(['timeout:5'], 'timeout', null), []);
  assert.throws(() => setResource([], 'gpus', '1.5'), /whole number/);
  assert.throws(() => setResource([], 'memory', 'lots'), /size/);
});

test('resourceProblem explains the expected format', () => {
  assert.equal(resourceProblem('retries', '3'), null);
  assert.match(resourceProblem('timeout', '-1') ?? '', /seconds/);
});

test('setCacheOff toggles cache:off', () => {
  assert.deepEqual(setCacheOff(['a'], true), ['a', 'cache:off']);
  assert.deepEqual(setCacheOff(['cache:off', 'cache:off', 'a'], false), ['a']);
  assert.deepEqual(setCacheOff(['cache:off'], true), ['cache:off']);
});

test('the setters round-trip through readTags', () => {
  let tags: string[] = ['other'];
  tags = setStage(tags, 'train');
  tags = setRole(tags, 'setup');
  tags = setAfter(tags, ['load']);
  tags = setResource(tags, 'retries', '2');
  tags = setCacheOff(tags, true);
  const t = readTags(tags);
  assert.equal(t.stage, 'train');
  assert.equal(t.role, 'setup');
  assert.deepEqual(t.after, ['load']);
  assert.equal(t.resources.retries, '2');
  assert.equal(t.cacheOff, true);
  assert.deepEqual(clearNbopsTags(tags), ['other']);
});
