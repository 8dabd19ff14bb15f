// Totals vitest JSON reports plus the step checks into one line: `N passed, N failed`.
// A report that is missing (vitest crashed) or a file that failed to load counts as a failure;
// skipped tests count as neither.
import { existsSync, readFileSync } from 'node:fs';

const [checksPassed, checksFailed, ...reports] = process.argv.slice(2);
let passed = Number(checksPassed);
let failed = Number(checksFailed);
for (const file of reports) {
  if (!existsSync(file)) {
    console.log(`missing report ${file}: counted as one failure`);
    failed += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  // Files that failed outside any test (import errors, hook failures) have no failed test to count.
  const brokenFiles = report.testResults.filter(
    (r) => r.status === 'failed' && r.assertionResults.every((a) => a.status !== 'failed'),
  ).length;
  failed += brokenFiles;
  if (report.numPendingTests + report.numTodoTests > 0) {
    console.log(`${file}: ${report.numPendingTests + report.numTodoTests} skipped (not counted as passed)`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
