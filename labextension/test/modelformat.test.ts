import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import { gateText, modelNameFor, moveText, parseGates } from '../src/modelformat';

test('gates typed in the promote form become the list the server reads', () => {
  assert.deepEqual(parseGates('accuracy>=0.8, f1>0.7;auc > 0.9\n'), ['accuracy>=0.8', 'f1>0.7', 'auc > 0.9']);
  assert.deepEqual(parseGates('  '), []);
});

test('a gate shows its verdict and the values compared', () => {
  assert.equal(
    gateText({ gate: 'accuracy>=0.8', metric: 'accuracy', value: 0.91234, bound: 0.8, passed: true }),
    'accuracy>=0.8 ✓ (0.9123)'
  );
  assert.equal(
    gateText({
      gate: 'accuracy better than production',
      metric: 'accuracy',
      value: 0.5,
      other: 0.9,
      other_version: 2,
      passed: false
    }),
    'accuracy better than production ✗ (0.5 vs v2 0.9)'
  );
  assert.equal(
    gateText({ gate: 'better than production', passed: true, note: 'no version holds production yet' }),
    'better than production ✓ (no version holds production yet)'
  );
});

test('alias moves and default model names', () => {
  assert.equal(moveText(null, 1), '– → v1');
  assert.equal(moveText(2, 1), 'v2 → v1');
  assert.equal(modelNameFor('work/churn v2.ipynb'), 'churn_v2');
  assert.equal(modelNameFor('_x.ipynb'), 'x');
  assert.equal(modelNameFor('!!!.ipynb'), 'model');
});
